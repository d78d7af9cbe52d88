import { z } from 'zod';
import { formatDuration } from '../../config/duration.js';
import { countRules, describeRules, revocationExpiries, userExpiry, type ExpiryBasis } from '../../state/blacklist-expiry.js';
import { INPUT_SET_KIND, KIND_NAMES, valuesOf, type BlacklistEntry } from '../../state/blacklist.js';
import { loadInputSet } from '../../state/input-sets.js';
import { currentPolicy } from '../../state/policy.js';
import { liftRevocations, revoke, stepTag } from '../../state/revocations.js';
import { clearWatermarksBy, restoreCleared, subjectsSetBy, syncWatermarks } from '../../state/watermarks.js';
import type { Queryable } from '../../store/db.js';
import { REVOCATION_KINDS } from '../../store/hot/hot-store.js';
import type { Backends } from '../../store/open.js';
import { defineAction, type Action, type ActionContext, type BlastRadius } from './action.js';

/**
 * The steps of `blacklist add` and `blacklist remove`. Each reads its entries from the run's
 * input set (by hash), so the run and the audit trail hold the hash and counts, not the list.
 */
const SET = z.string().regex(/^[0-9a-f]{64}$/);
const COUNTS = { jtis: z.number().int().nonnegative(), sessions: z.number().int().nonnegative(), devices: z.number().int().nonnegative() };
const addInput = z.object({ set: SET, ...COUNTS, ttlMs: z.number().int().positive().nullable(), reason: z.string().nullable() });
const usersInput = z.object({ set: SET, users: z.number().int().nonnegative(), reason: z.string().nullable() });

const entriesOf = async (db: Queryable, hash: string) => (await loadInputSet<BlacklistEntry>(db, INPUT_SET_KIND, hash)).items;
const short = (hash: string) => `${hash.slice(0, 12)}…`;
const many = (n: number, word: string) => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
const listed = (i: { jtis: number; sessions: number; devices: number }) => `${many(i.jtis, 'jti')}, ${many(i.sessions, 'session')} and ${many(i.devices, 'device')}`;

async function basisOf(db: Queryable, startedAt: Date, ttlMs: number | null): Promise<ExpiryBasis> {
  return { startSec: Math.floor(startedAt.getTime() / 1000), policy: (await currentPolicy(db)).doc, ttlMs };
}

/** Live ledger sessions carrying one of the sessions or devices of a set (jtis the ledger does not know). */
async function revocationImpact(backends: Backends, hash: string | undefined): Promise<BlastRadius & { items: BlacklistEntry[] }> {
  const items = hash ? await entriesOf(backends.db, hash) : [];
  const [row] = await backends.db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM sessions
     WHERE expires_at > now() AND (sid = ANY($1::text[]) OR fph = ANY($2::text[]))`,
    [valuesOf(items, 'sid'), valuesOf(items, 'fph')],
  );
  return { ...row!, items };
}

async function userImpact(backends: Backends, hash: string | undefined): Promise<BlastRadius> {
  const users = hash ? valuesOf(await entriesOf(backends.db, hash), 'user') : [];
  const [row] = await backends.db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM sessions WHERE expires_at > now() AND sub = ANY($1::text[])`,
    [users],
  );
  return row!;
}

/** Denies the set's jtis, sessions and devices until the tokens they cover would have expired. */
export const blacklistRevoke = defineAction({
  name: 'blacklist.revoke',
  mutates: true,
  outputs: ['jtis', 'sessions', 'devices', 'expiry'],
  input: addInput,
  describe: (i) =>
    `deny ${listed(i)} (input set ${short(i.set)})${i.ttlMs ? ` for ${formatDuration(i.ttlMs)} (--ttl)` : ' until the tokens they cover would have expired'}`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const items = await entriesOf(db, i.set);
    const basis = await basisOf(db, ctx.stepStartedAt, i.ttlMs);
    const counts: Record<string, number> = {};
    const rules: ReturnType<typeof countRules> = {};
    for (const kind of REVOCATION_KINDS) {
      const entries = items.filter((e) => e.kind === kind);
      counts[kind] = entries.length;
      if (entries.length === 0) continue;
      const expiries = await revocationExpiries(db, entries, basis);
      for (const [rule, n] of Object.entries(countRules(expiries))) rules[rule as keyof typeof rules] = (rules[rule as keyof typeof rules] ?? 0) + n;
      await revoke(
        db,
        hot,
        kind,
        entries.map((e, j) => ({ value: e.value, expiresAt: expiries[j]!.expiresAt, reason: e.reason ?? null, expiryRule: expiries[j]!.rule })),
        { runId: ctx.runId, step: ctx.step, reason: i.reason ?? 'blacklist', onProgress: pushing(ctx, `${KIND_NAMES[kind]} entries`) },
      );
    }
    return { jtis: counts.jti!, sessions: counts.sid!, devices: counts.fph!, expiry: rules };
  },
  async impact(backends, i) {
    const { items, ...radius } = await revocationImpact(backends, i.set);
    const basis = await basisOf(backends.db, new Date(), i.ttlMs ?? null);
    const expiries = await revocationExpiries(backends.db, items.filter((e) => e.kind !== 'user'), basis);
    const jtis = valuesOf(items, 'jti').length;
    return { ...radius, note: `expiry: ${describeRules(countRules(expiries), basis)}${jtis ? `; the ledger knows no session by jti, so ${many(jtis, 'jti')} count for none here` : ''}` };
  },
});

/**
 * Ends every token of the set's users issued before the step started, by a per-user not-before
 * watermark; each user can log in again at once (a token issued in the watermark's second or
 * later passes, as iat < watermark is what ends a token).
 */
export const blacklistUsers = defineAction({
  name: 'blacklist.users',
  mutates: true,
  outputs: ['users', 'notBefore', 'expiresAt'],
  input: usersInput,
  describe: (i) => `end the tokens of ${many(i.users, 'user')} issued before now (input set ${short(i.set)}); they can log in again`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const users = (await entriesOf(db, i.set)).filter((e) => e.kind === 'user');
    const basis = await basisOf(db, ctx.stepStartedAt, null);
    const notBefore = new Date(basis.startSec * 1000);
    const expiry = userExpiry(basis);
    await db.query(
      `INSERT INTO watermarks (scope, subject, not_before, run_id, step, reason, expires_at, expiry_rule)
       SELECT 'user', s, $3::timestamptz, $4::bigint, $5, coalesce(r, $6), $7::timestamptz, $8 FROM unnest($1::text[], $2::text[]) AS t(s, r)
       ON CONFLICT DO NOTHING`,
      [users.map((u) => u.value), users.map((u) => u.reason ?? null), notBefore.toISOString(), ctx.runId, ctx.step, i.reason ?? 'blacklist', expiry.expiresAt.toISOString(), expiry.rule],
    );
    const subjects = await subjectsSetBy(db, 'user', ctx.runId, ctx.step);
    ctx.progress(`pushing ${subjects.length} user watermarks to the guards`);
    await syncWatermarks(db, hot, 'user', subjects);
    return { users: subjects.length, notBefore: notBefore.toISOString(), expiresAt: expiry.expiresAt.toISOString() };
  },
  async impact(backends, i) {
    return { ...(await userImpact(backends, i.set)), note: 'these users must log in again; tokens issued from now on pass' };
  },
});

/** `blacklist remove`: lifts every live revocation of the set's values, whichever run made it. */
export const blacklistLift = defineAction({
  name: 'blacklist.lift',
  mutates: true,
  outputs: ['jtis', 'sessions', 'devices'],
  input: z.object({ set: SET, ...COUNTS }),
  describe: (i) => `accept ${listed(i)} again (input set ${short(i.set)}): every live blacklist entry for them is lifted`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const items = await entriesOf(db, i.set);
    const lifted: Record<string, number> = {};
    for (const kind of REVOCATION_KINDS) {
      const values = valuesOf(items, kind);
      if (values.length) ctx.progress(`lifting the entries of ${many(values.length, KIND_NAMES[kind])}`);
      lifted[kind] = values.length ? (await liftRevocations(db, hot, kind, stepTag(ctx.runId, ctx.step), 'value = ANY($3::text[])', [values])).length : 0;
    }
    return { jtis: lifted.jti!, sessions: lifted.sid!, devices: lifted.fph! };
  },
  async impact(backends, i) {
    const { items: _items, ...radius } = await revocationImpact(backends, i.set);
    return { ...radius, note: 'tokens of these sessions and devices are accepted again' };
  },
});

/** `blacklist remove --user`: clears every user watermark of the set's users, whichever run set it. */
export const blacklistClearUsers = defineAction({
  name: 'blacklist.clear-users',
  mutates: true,
  outputs: ['users'],
  input: z.object({ set: SET, users: z.number().int().nonnegative() }),
  describe: (i) => `accept the earlier tokens of ${many(i.users, 'user')} again (input set ${short(i.set)}): their user watermarks are cleared`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const users = valuesOf(await entriesOf(db, i.set), 'user');
    const cleared = await clearWatermarksBy(db, hot, 'user', stepTag(ctx.runId, ctx.step), 'subject = ANY($3::text[])', [users]);
    return { users: cleared.length };
  },
  async impact(backends, i) {
    return { ...(await userImpact(backends, i.set)), note: "these users' earlier tokens are accepted again" };
  },
});

/** Undo of a step that cleared other steps' watermarks (`blacklist remove --user`): they apply again. */
export const watermarksRestore = defineAction({
  name: 'watermarks.restore',
  mutates: true,
  outputs: [],
  input: z.object({ scope: z.enum(['user', 'kid', 'cohort']) }),
  describe: (i) => `restore the ${i.scope} watermarks this step cleared`,
  async apply(ctx, i) {
    await restoreCleared(ctx.backends.db, ctx.backends.hot, i.scope, stepTag(ctx.runId, ctx.step));
    return {};
  },
});

function pushing(ctx: ActionContext, what: string) {
  return (done: number, total: number) => ctx.progress(`pushing ${what} to the guards`, { done, total });
}

/** The runbook actions of the `blacklist` commands. */
export const BLACKLIST_ACTIONS: readonly Action[] = [blacklistRevoke, blacklistUsers, blacklistLift, blacklistClearUsers, watermarksRestore];
