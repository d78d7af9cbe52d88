import { z } from 'zod';
import { clearOwnWatermarks, subjectsSetBy, syncWatermarks } from '../../state/watermarks.js';
import { defineAction } from './action.js';

/**
 * Ends the sessions of users holding any of `roles` whose tokens `kid` signed, by a per-user
 * not-before watermark at the step's start: their tokens issued before it stop verifying and
 * they log in again through the normal flow. Set-based: one statement, whatever the count.
 */
export const sessionsEndForRoles = defineAction({
  name: 'sessions.end-for-roles',
  mutates: true,
  outputs: ['users', 'notBefore'],
  input: z.object({ kid: z.string(), roles: z.array(z.string().min(1)) }),
  describe: (i) => `end the ${i.kid} sessions of users with role ${i.roles.join(' or ')} (they log in again)`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    // Whole seconds, like iat: a token issued in the same second as the watermark stays valid, so a user
    // who logs in again right away is not turned back (iat < watermark is what ends a token).
    const notBefore = new Date(Math.floor(ctx.stepStartedAt.getTime() / 1000) * 1000);
    if (i.roles.length > 0) {
      await db.query(
        `INSERT INTO watermarks (scope, subject, not_before, run_id, step, reason)
         SELECT DISTINCT 'user', sub, $3::timestamptz, $4::bigint, $5, 'privileged session on ' || $1
         FROM sessions WHERE kid = $1 AND roles && $2::text[] AND expires_at > $3::timestamptz
         ON CONFLICT DO NOTHING`,
        [i.kid, i.roles, notBefore.toISOString(), ctx.runId, ctx.step],
      );
    }
    const subjects = await subjectsSetBy(db, 'user', ctx.runId, ctx.step);
    ctx.progress(`pushing ${subjects.length} user watermarks to the guards`);
    await syncWatermarks(db, ctx.backends.hot, 'user', subjects);
    return { users: subjects.length, notBefore: notBefore.toISOString() };
  },
  async impact(backends, i) {
    if (!i.kid || !i.roles?.length) return { sessions: 0, users: 0 };
    const [row] = await backends.db.query<{ sessions: number; users: number }>(
      `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM sessions
       WHERE kid = $1 AND roles && $2::text[] AND expires_at > now()`,
      [i.kid, i.roles],
    );
    return { ...row!, note: 'these users must log in again' };
  },
});

/** Undo of any watermark step: removes the rows that step set; earlier watermarks remain. */
export const watermarksClear = defineAction({
  name: 'watermarks.clear',
  mutates: true,
  outputs: [],
  input: z.object({ scope: z.enum(['user', 'kid']) }),
  describe: (i) => `clear the ${i.scope} watermarks this step set`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    await clearOwnWatermarks(db, ctx.runId, ctx.step, i.scope);
    const subjects = await subjectsSetBy(db, i.scope, ctx.runId, ctx.step);
    await syncWatermarks(db, ctx.backends.hot, i.scope, subjects);
    return {};
  },
});
