import { z } from 'zod';
import { formatDuration } from '../../config/duration.js';
import { changePolicy, effectiveField, lastPolicyWrite, markPolicyUndone, publishCurrentPolicy, type PolicyDoc } from '../../state/policy.js';
import type { Backends } from '../../store/open.js';
import { InvalidStateError } from '../../errors.js';
import { defineAction, type ActionContext, type BlastRadius } from './action.js';

/**
 * The policy fields a runbook may change. Kid fields tighten tokens of one key (usually the
 * compromised one); the others are the risk rules of PLAYBOOK A1/A2. null unsets a kid field.
 */
const changesSchema = z
  .object({
    maxAgeSec: z.number().int().positive().nullable(),
    rateLimit: z.object({ ops: z.number().int().positive(), windowSec: z.number().int().positive() }).strict().nullable(),
    cutoverPercent: z.coerce.number().int().min(0).max(100).nullable(),
    stepUpNewDevice: z.boolean(),
    stepUpBadReputation: z.boolean(),
    blockCriticalDirtyDevice: z.boolean(),
  })
  .strict()
  .partial();
type Changes = z.infer<typeof changesSchema>;
const KID_FIELDS = ['maxAgeSec', 'rateLimit', 'cutoverPercent'] as const;

const input = z
  .object({ kid: z.string().min(1).nullable(), changes: changesSchema })
  .strict()
  .refine((i) => i.kid !== null || !KID_FIELDS.some((f) => f in i.changes), { message: 'maxAgeSec, rateLimit and cutoverPercent need a kid' });
type Input = z.infer<typeof input>;

/** Reads the current values of the fields `changes` names (what an undo restores). */
function read(doc: PolicyDoc, kid: string | null, changes: Changes): Changes {
  const out: Record<string, unknown> = {};
  const k = kid ? doc.kids[kid] : undefined;
  for (const field of Object.keys(changes) as Array<keyof Changes>) {
    if (field === 'maxAgeSec') out[field] = k?.maxAgeSec ?? null;
    else if (field === 'rateLimit') out[field] = k?.rateLimit ?? null;
    else if (field === 'cutoverPercent') out[field] = k?.cutoverPercent ?? null;
    else if (field === 'stepUpNewDevice') out[field] = doc.stepUp.newDevice;
    else if (field === 'stepUpBadReputation') out[field] = doc.stepUp.badReputation;
    else out[field] = doc.blockCritical.dirtyDevice;
  }
  return out as Changes;
}

function write(doc: PolicyDoc, kid: string | null, changes: Changes): PolicyDoc {
  if (kid) {
    const k = { ...doc.kids[kid] };
    for (const field of KID_FIELDS) {
      if (!(field in changes)) continue;
      const value = changes[field];
      if (value === null || value === undefined || (field === 'cutoverPercent' && value === 0)) delete k[field];
      else (k as Record<string, unknown>)[field] = value;
    }
    if (Object.keys(k).length) doc.kids[kid] = k;
    else delete doc.kids[kid];
  }
  if (changes.stepUpNewDevice !== undefined) doc.stepUp.newDevice = changes.stepUpNewDevice;
  if (changes.stepUpBadReputation !== undefined) doc.stepUp.badReputation = changes.stepUpBadReputation;
  if (changes.blockCriticalDirtyDevice !== undefined) doc.blockCritical.dirtyDevice = changes.blockCriticalDirtyDevice;
  return doc;
}

export function describeChanges(kid: string | null, changes: Changes): string {
  const parts: string[] = [];
  const on = kid ? ` for ${kid} tokens` : '';
  const given = (x: unknown): x is number => typeof x === 'number' && x > 0;
  if ('maxAgeSec' in changes) parts.push(given(changes.maxAgeSec) ? `max token age ${formatDuration(changes.maxAgeSec * 1000)}${on}` : `no max token age${on}`);
  if ('rateLimit' in changes) {
    const r = changes.rateLimit;
    parts.push(r && given(r.ops) && given(r.windowSec) ? `at most ${r.ops} operations per token per ${formatDuration(r.windowSec * 1000)}${on}` : `no rate limit${on}`);
  }
  if ('cutoverPercent' in changes) {
    const p = Number(changes.cutoverPercent);
    parts.push(given(p) ? `${kid} switched off for ${p} % of users (cohorts below ${p})` : `${kid} verifies for every user again`);
  }
  if ('stepUpNewDevice' in changes) parts.push(`step-up for new devices ${changes.stepUpNewDevice ? 'on' : 'off'}`);
  if ('stepUpBadReputation' in changes) parts.push(`step-up for bad-reputation devices ${changes.stepUpBadReputation ? 'on' : 'off'}`);
  if ('blockCriticalDirtyDevice' in changes) parts.push(`critical operations from dirty devices ${changes.blockCriticalDirtyDevice ? 'held' : 'allowed'}`);
  return parts.join('; ') || 'no change';
}

/**
 * One new policy version per step, written once: a resumed step finds the version it wrote
 * (unless its undo came after it, as when a health gate undid a stage that is now retried).
 * The version records the step's patch (what it set, and what those fields held before).
 */
async function setOnce(
  ctx: ActionContext,
  i: Input,
  /** Checks the current document under the policy write lock before anything is written. */
  check: (doc: PolicyDoc) => void = () => {},
): Promise<{ version: number; previous: Changes }> {
  const { db, hot } = ctx.backends;
  const last = await lastPolicyWrite(db, ctx.runId, [ctx.step, `undo:${ctx.step}`]);
  if (last?.step === ctx.step) {
    // The version may be written but not yet pushed (a crash in between): push the latest again.
    await publishCurrentPolicy(db, hot);
    return { version: last.version, previous: read(last.before, i.kid, i.changes) };
  }
  let previous: Changes = {};
  const { version } = await changePolicy(
    db,
    hot,
    (doc) => {
      check(doc);
      previous = read(doc, i.kid, i.changes);
      return { doc: write(doc, i.kid, i.changes), patch: { kid: i.kid, set: i.changes, before: previous } };
    },
    { actor: ctx.actor, runId: ctx.runId, step: ctx.step },
  );
  return { version, previous };
}

export const policySet = defineAction({
  name: 'policy.set',
  mutates: true,
  outputs: ['version', 'previous'],
  input,
  describe: (i) => describeChanges(i.kid, i.changes),
  apply: (ctx, i) => setOnce(ctx, i),
  impact: (backends, i) => policyImpact(backends, i),
});

/**
 * Undo of policy.set and policy.cutover: the step's write no longer counts, and each field it set
 * is recomputed from the writes still in force (the latest step that set it and is not undone,
 * else what it held before any of them). Rolling back an older max age keeps a newer one; rolling
 * back every run, in any order, ends where no run had changed the policy.
 */
export const policyRestore = defineAction({
  name: 'policy.restore',
  mutates: true,
  outputs: ['version', 'restored'],
  input,
  describe: (i) => `undo: ${Object.keys(i.changes).join(', ')}${i.kid ? ` of ${i.kid}` : ''} go back to what the other runs still in force set (or to what they were before)`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const undoTag = `undo:${ctx.step}`;
    const last = await lastPolicyWrite(db, ctx.runId, [undoTag, ctx.step]);
    if (last?.step === undoTag) {
      await publishCurrentPolicy(db, hot);
      return { version: last.version, restored: read(last.doc, i.kid, i.changes) };
    }
    let restored: Changes = {};
    const { version } = await changePolicy(
      db,
      hot,
      async (doc, tx) => {
        await markPolicyUndone(tx, ctx.runId, ctx.step);
        const values: Record<string, unknown> = {};
        for (const field of Object.keys(i.changes)) {
          const effective = await effectiveField(tx, i.kid, field);
          values[field] = effective.found ? effective.value : (i.changes as Record<string, unknown>)[field];
        }
        restored = values as Changes;
        return { doc: write(doc, i.kid, restored), patch: null };
      },
      { actor: ctx.actor, runId: ctx.runId, step: undoTag },
    );
    return { version, restored };
  },
});

/**
 * What a tightening does at once: tokens older than a new max age fail on their next request;
 * a cutover stage denies the live sessions of the key in the cohorts it adds (from `fromPercent`).
 */
async function policyImpact(backends: Backends, i: Partial<Input> & { fromPercent?: number }): Promise<BlastRadius | null> {
  const kid = typeof i.kid === 'string' ? i.kid : null;
  const changes = i.changes ?? {};
  if (kid && typeof changes.maxAgeSec === 'number') {
    const [row] = await backends.db.query<BlastRadius>(
      `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM sessions
       WHERE kid = $1 AND expires_at > now() AND issued_at < now() - make_interval(secs => $2)`,
      [kid, changes.maxAgeSec],
    );
    return { ...row!, note: 'live sessions already older than the new max age: they must log in again' };
  }
  const percent = Number(changes.cutoverPercent);
  if (kid && Number.isInteger(percent)) {
    // From the plan the values may still be strings from the schedule list.
    const from = i.fromPercent == null ? 0 : Number(i.fromPercent);
    const [row] = await backends.db.query<BlastRadius & { total: number }>(
      `SELECT count(*) FILTER (WHERE cohort >= $2)::int AS sessions, count(DISTINCT sub) FILTER (WHERE cohort >= $2)::int AS users, count(*)::int AS total
       FROM sessions WHERE kid = $1 AND expires_at > now() AND cohort < $3`,
      [kid, from, percent],
    );
    return { sessions: row!.sessions, users: row!.users, note: `cohorts ${from}..${percent - 1}; ${row!.total} live ${kid} sessions switched off in all by this stage` };
  }
  return null;
}

/** A cutover stage: policy.set of cutoverPercent, with the previous stage named for its blast radius. */
export const policyCutover = defineAction({
  name: 'policy.cutover',
  mutates: true,
  outputs: ['version', 'previous'],
  input: z.object({ kid: z.string().min(1), percent: z.coerce.number().int().min(1).max(100), fromPercent: z.coerce.number().int().min(0).max(99).nullable() }).strict(),
  describe: (i) => describeChanges(i.kid, { cutoverPercent: i.percent }),
  apply: (ctx, i) =>
    setOnce(ctx, { kid: i.kid, changes: { cutoverPercent: i.percent } }, (doc) => {
      // A stage only ever switches the key off for more users: a second cutover started while the
      // key is already off for more would otherwise switch it back on for them.
      const now = doc.kids[i.kid]?.cutoverPercent ?? 0;
      if (now > i.percent) {
        throw new InvalidStateError(`${i.kid} is already switched off for ${now} % of users; this stage (${i.percent} %) would switch it back on for some of them`, {
          hint: `roll this run back; to go back to fewer users, roll back the run that cut over further`,
        });
      }
    }),
  impact: (backends, i) => policyImpact(backends, { kid: i.kid ?? null, changes: { cutoverPercent: i.percent ?? null }, fromPercent: i.fromPercent ?? 0 }),
});

export const POLICY_ACTIONS = [policySet, policyRestore, policyCutover];
