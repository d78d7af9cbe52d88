import type { Queryable } from '../store/db.js';
import { REVOCATION_KINDS, WATERMARK_SCOPES, type HotStore, type WatermarkScope } from '../store/hot/hot-store.js';
import { countAffected } from './affected.js';
import { currentPolicy } from './policy.js';
import { claimLifted, liftRevocations, stepTag, syncRevocations } from './revocations.js';
import { Params, pickedUsers, revokedSessionsWhere, VERIFYING_STATES, type Selection } from './selection.js';
import { clearOwnWatermarks, subjectsSetBy, syncWatermarks } from './watermarks.js';

/**
 * The effects of a forced logout, each set-based (one statement whatever the number of
 * sessions) and idempotent per run and step: rows carry the run and step, inserts skip what an
 * earlier attempt already wrote, and pushes re-send everything the step owns.
 */
export interface StepRef {
  runId: number;
  step: string;
  /** When the step first started: the default cut-off, the same on every resume. */
  startedAt: Date;
  progress(message: string, counts?: { done: number; total: number }): void;
}

export interface LogoutOutcome {
  /** Live sessions and users the step ended (derived from its own rows). */
  sessions: number;
  users: number;
  refreshTokens: number;
  /** Tokens issued before this (epoch-second precision) are ended; null for session revocations only. */
  notBefore: string | null;
}

/** Rows a push sends at a time, so the progress bar moves on large pushes. */
const PUSH_CHUNK = 10_000;

/** Whole seconds, like iat: a token issued in the second of the cut-off stays valid, so logging in again right away works. */
export function cutoffOf(sel: Selection, ref: StepRef): Date {
  if (sel.issuedBefore) return new Date(sel.issuedBefore);
  return new Date(Math.floor(ref.startedAt.getTime() / 1000) * 1000);
}

/** `key` mechanism: kid or cohort watermarks; O(1) to O(100) rows for any number of sessions. */
export async function endByKey(db: Queryable, hot: HotStore, sel: Selection, ref: StepRef): Promise<LogoutOutcome> {
  const notBefore = cutoffOf(sel, ref);
  const scope: WatermarkScope = sel.cohorts.length ? 'cohort' : 'kid';
  const subjects = sel.cohorts.length
    ? sel.cohorts.map((n) => (sel.kid ? `${sel.kid}#${n}` : String(n)))
    : sel.kid
      ? [sel.kid]
      : (await db.query<{ kid: string }>(`SELECT kid FROM keys WHERE state IN ${VERIFYING_STATES} ORDER BY kid`)).map((r) => r.kid);
  await db.query(
    `INSERT INTO watermarks (scope, subject, not_before, run_id, step, reason)
     SELECT $1, subject, $3::timestamptz, $4::bigint, $5, 'forced logout' FROM unnest($2::text[]) AS subject
     ON CONFLICT DO NOTHING`,
    [scope, subjects, notBefore.toISOString(), ref.runId, ref.step],
  );
  return finish(db, hot, ref, notBefore);
}

/** `users` mechanism: one watermark per selected user; their tokens issued before the cut-off end. */
export async function endUsers(db: Queryable, hot: HotStore, sel: Selection, ref: StepRef): Promise<LogoutOutcome> {
  const notBefore = cutoffOf(sel, ref);
  await insertUserWatermarks(db, sel, ref, notBefore);
  return finish(db, hot, ref, notBefore);
}

/**
 * `sessions` mechanism: a session revocation for each matching live session (until its tokens
 * expire, plus the clock tolerance). With --suspicious, only sessions of the ledger that an alert
 * names (see alertedSessions): an alert naming only a user ends nothing.
 */
export async function endSessions(db: Queryable, hot: HotStore, sel: Selection, ref: StepRef): Promise<LogoutOutcome> {
  const start = ref.startedAt.toISOString();
  const tolerance = (await currentPolicy(db)).doc.clockToleranceSec;
  const p = new Params([start, ref.runId, ref.step, tolerance]);
  await db.query(
    `INSERT INTO revocations (kind, value, expires_at, run_id, step, reason)
     SELECT 'sid', s.sid, s.expires_at + ($4::int * interval '1 second'), $2::bigint, $3, 'forced logout' FROM sessions s
     WHERE ${revokedSessionsWhere(sel, p)} AND s.issued_at <= $1::timestamptz AND s.expires_at > $1::timestamptz
     ON CONFLICT DO NOTHING`,
    p.values,
  );
  const tag = stepTag(ref.runId, ref.step);
  const q = new Params([tag, start]);
  await db.query(
    `UPDATE refresh_tokens rt SET revoked_at = now(), revoked_by = $1 FROM sessions s
     WHERE rt.sid = s.sid AND rt.revoked_at IS NULL AND rt.expires_at > now() AND s.issued_at <= $2::timestamptz AND ${revokedSessionsWhere(sel, q)}`,
    q.values,
  );
  return finish(db, hot, ref, null);
}

/** One session by id (`sessions revoke`): its access tokens until they expire, and its refresh tokens. */
export async function endSession(db: Queryable, hot: HotStore, sid: string, ref: StepRef): Promise<LogoutOutcome> {
  const tolerance = (await currentPolicy(db)).doc.clockToleranceSec;
  await db.query(
    `INSERT INTO revocations (kind, value, expires_at, run_id, step, reason)
     SELECT 'sid', s.sid, s.expires_at + ($4::int * interval '1 second'), $2::bigint, $3, 'session revoked by an operator' FROM sessions s WHERE s.sid = $1
     ON CONFLICT DO NOTHING`,
    [sid, ref.runId, ref.step, tolerance],
  );
  await db.query(`UPDATE refresh_tokens SET revoked_at = now(), revoked_by = $2 WHERE sid = $1 AND revoked_at IS NULL AND expires_at > now()`, [sid, stepTag(ref.runId, ref.step)]);
  return finish(db, hot, ref, null);
}

async function insertUserWatermarks(db: Queryable, sel: Selection, ref: StepRef, notBefore: Date): Promise<void> {
  const p = new Params([notBefore.toISOString(), ref.runId, ref.step]);
  await db.query(
    `INSERT INTO watermarks (scope, subject, not_before, run_id, step, reason)
     SELECT DISTINCT 'user', u.sub, $1::timestamptz, $2::bigint, $3, 'forced logout'
     FROM (${pickedUsers(sel, p, { liveAt: ref.startedAt.toISOString(), before: notBefore.toISOString() })}) u
     ON CONFLICT DO NOTHING`,
    p.values,
  );
}

/**
 * What every logout step does after writing its rows: end the refresh tokens of the sessions
 * its watermarks cover, revoke the sessions that were refreshed after the cut-off (their newest
 * access token is younger than the watermark), push everything to the guards, and count.
 */
async function finish(db: Queryable, hot: HotStore, ref: StepRef, notBefore: Date | null): Promise<LogoutOutcome> {
  const tag = stepTag(ref.runId, ref.step);
  await revokeRefreshCoveredByWatermarks(db, ref, tag);
  if (notBefore) {
    const tolerance = (await currentPolicy(db)).doc.clockToleranceSec;
    await db.query(
      `INSERT INTO revocations (kind, value, expires_at, run_id, step, reason)
       SELECT 'sid', s.sid, s.expires_at + ($5::int * interval '1 second'), $2::bigint, $3, 'refreshed after the forced logout'
       FROM sessions s WHERE s.expires_at > now()
         AND s.sid IN (SELECT rt.sid FROM refresh_tokens rt WHERE rt.revoked_by = $1 AND rt.issued_at >= $4::timestamptz)
       ON CONFLICT DO NOTHING`,
      [tag, ref.runId, ref.step, notBefore.toISOString(), tolerance],
    );
  }
  await pushStep(db, hot, ref);
  const [rt] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM refresh_tokens WHERE revoked_by = $1', [tag]);
  const affected = await countAffected(db, ref.runId, ref.step);
  return { ...affected, refreshTokens: rt?.n ?? 0, notBefore: notBefore?.toISOString() ?? null };
}

/** One statement per scope, each an equality join, so the planner never pairs every session with every watermark. */
async function revokeRefreshCoveredByWatermarks(db: Queryable, ref: StepRef, tag: string): Promise<void> {
  const covers = [
    `w.scope = 'user' AND s.sub = w.subject`,
    `w.scope = 'kid' AND s.kid = w.subject`,
    `w.scope = 'cohort' AND strpos(w.subject, '#') = 0 AND s.cohort = w.subject::smallint`,
    `w.scope = 'cohort' AND strpos(w.subject, '#') > 0 AND s.kid || '#' || s.cohort = w.subject`,
  ];
  for (const cover of covers) {
    await db.query(
      `UPDATE refresh_tokens rt SET revoked_at = now(), revoked_by = $3
       FROM sessions s JOIN watermarks w ON w.run_id = $1 AND w.step = $2 AND w.cleared_at IS NULL AND s.issued_at < w.not_before AND ${cover}
       WHERE rt.sid = s.sid AND rt.revoked_at IS NULL AND rt.expires_at > now()`,
      [ref.runId, ref.step, tag],
    );
  }
}

/** Pushes every watermark and session revocation the step owns (all of them again on a resume). */
async function pushStep(db: Queryable, hot: HotStore, ref: StepRef): Promise<void> {
  for (const scope of WATERMARK_SCOPES) {
    const subjects = await subjectsSetBy(db, scope, ref.runId, ref.step);
    await inChunks(subjects, `pushing ${scope} watermarks to the guards`, ref, (part) => syncWatermarks(db, hot, scope, part));
  }
  const sids = (await db.query<{ value: string }>(`SELECT value FROM revocations WHERE kind = 'sid' AND run_id = $1 AND step = $2`, [ref.runId, ref.step])).map((r) => r.value);
  await inChunks(sids, 'pushing session revocations to the guards', ref, (part) => syncRevocations(db, hot, 'sid', part));
}

async function inChunks(items: string[], message: string, ref: StepRef, push: (part: string[]) => Promise<void>): Promise<void> {
  if (items.length === 0) return;
  ref.progress(message, { done: 0, total: items.length });
  for (let i = 0; i < items.length; i += PUSH_CHUNK) {
    await push(items.slice(i, i + PUSH_CHUNK));
    ref.progress(message, { done: Math.min(i + PUSH_CHUNK, items.length), total: items.length });
  }
}

/**
 * Undo of any logout step: its watermarks are cleared (not deleted, so a re-run still knows
 * whom to push), its session revocations lifted, and the refresh tokens it revoked revived;
 * what other runs did stays, and what a `blacklist remove` lifted or cleared of this step's
 * rows meanwhile stays undone when that remove is rolled back later. Idempotent.
 */
export async function restoreStep(db: Queryable, hot: HotStore, ref: StepRef): Promise<{ watermarks: number; revocations: number; refreshTokens: number }> {
  await clearOwnWatermarks(db, ref.runId, ref.step, null);
  let watermarks = 0;
  for (const scope of WATERMARK_SCOPES) {
    const subjects = await subjectsSetBy(db, scope, ref.runId, ref.step);
    watermarks += subjects.length;
    await inChunks(subjects, `pushing cleared ${scope} watermarks to the guards`, ref, (part) => syncWatermarks(db, hot, scope, part));
  }
  let revocations = 0;
  const liftTag = stepTag(ref.runId, `undo:${ref.step}`);
  await claimLifted(db, liftTag, ref.runId, ref.step);
  for (const kind of REVOCATION_KINDS) {
    revocations += (await liftRevocations(db, hot, kind, liftTag, 'run_id = $3 AND step = $4', [ref.runId, ref.step])).length;
  }
  const revived = await db.query('UPDATE refresh_tokens SET revoked_at = NULL, revoked_by = NULL WHERE revoked_by = $1 RETURNING hash', [stepTag(ref.runId, ref.step)]);
  return { watermarks, revocations, refreshTokens: revived.length };
}
