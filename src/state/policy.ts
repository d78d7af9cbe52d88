import { LockId, withXactLock, type Db, type Queryable } from '../store/db.js';
import type { HotStore } from '../store/hot/hot-store.js';

/**
 * What a runbook step's policy write set, field by field (kid fields for `kid`), and what those
 * fields held before: the history an undo recomputes a field from.
 */
export interface PolicyPatch {
  kid: string | null;
  set: Record<string, unknown>;
  before: Record<string, unknown>;
}

/** A new document, or (from a runbook step) one with the patch it applied. */
export type PolicyChange = PolicyDoc | { doc: PolicyDoc; patch: PolicyPatch | null };

/** Tightening for tokens of one key (usually the compromised one). */
export interface KidPolicy {
  /** Maximum token age (now - iat), in seconds. */
  maxAgeSec?: number;
  /** At most `ops` operations per token per `windowSec` seconds (critical operations count too). */
  rateLimit?: { ops: number; windowSec: number };
  /** Share of users (by cohort, 0..100) for whom this key no longer verifies. */
  cutoverPercent?: number;
}

/** The incident policy the guard applies. Versioned: every change is a new version, history kept. */
export interface PolicyDoc {
  /** Allowed clock skew between issuer and guard, in seconds. Default 30. */
  clockToleranceSec: number;
  /** Longest token lifetime accepted (exp - iat, or exp - now without iat), in seconds. Default 30 days. */
  maxLifetimeSec: number;
  /** What the guard does when its store is unreachable. Default `closed`. */
  failMode: 'closed' | 'open-for-reads';
  kids: Record<string, KidPolicy>;
  /** Require a second factor for these devices (PLAYBOOK A1). */
  stepUp: { newDevice: boolean; badReputation: boolean };
  /** Hold critical operations of a clean account seen from a dirty device (PLAYBOOK A2). */
  blockCritical: { dirtyDevice: boolean };
  /** For compromised keys: deny tokens used from a device the user never used (PLAYBOOK C1). */
  forgery: { unknownDevice: boolean };
}

export const DEFAULT_POLICY: PolicyDoc = {
  clockToleranceSec: 30,
  maxLifetimeSec: 30 * 24 * 3600,
  failMode: 'closed',
  kids: {},
  stepUp: { newDevice: false, badReputation: false },
  blockCritical: { dirtyDevice: false },
  forgery: { unknownDevice: true },
};

/** Fills in defaults, so older stored versions stay readable as the document grows. */
export function normalizePolicy(doc: Partial<PolicyDoc> | Record<string, unknown> | undefined | null): PolicyDoc {
  const d = (doc ?? {}) as Partial<PolicyDoc>;
  return {
    ...DEFAULT_POLICY,
    ...d,
    kids: { ...(d.kids ?? {}) },
    stepUp: { ...DEFAULT_POLICY.stepUp, ...d.stepUp },
    blockCritical: { ...DEFAULT_POLICY.blockCritical, ...d.blockCritical },
    forgery: { ...DEFAULT_POLICY.forgery, ...d.forgery },
  };
}

export async function currentPolicy(db: Queryable): Promise<{ version: number; doc: PolicyDoc }> {
  const [row] = await db.query<{ version: number; doc: PolicyDoc }>('SELECT version, doc FROM policy_versions ORDER BY version DESC LIMIT 1');
  return row ? { version: row.version, doc: normalizePolicy(row.doc) } : { version: 0, doc: normalizePolicy(undefined) };
}

/**
 * Writes a new policy version (derived from the current one by `change`) and pushes it to the
 * guards. Read-modify-write under an advisory lock, so two writers (a cutover stage and a rate
 * limit set meanwhile by another operator) serialise instead of one failing or losing the other's change.
 */
export async function changePolicy(
  db: Db,
  hot: HotStore,
  /** Given the current document (and the transaction, to read history under the lock), the new one and what it patched. */
  change: (doc: PolicyDoc, tx: Queryable) => PolicyChange | Promise<PolicyChange>,
  origin: { actor: string; runId?: number | null; step?: string | null },
): Promise<{ version: number; doc: PolicyDoc }> {
  const written = await withXactLock(db, LockId.policyWrite, async (tx) => {
    const current = await currentPolicy(tx);
    const changed = await change(structuredClone(current.doc), tx);
    const { doc: next, patch } = 'patch' in changed ? changed : { doc: changed, patch: null };
    const doc = normalizePolicy(next);
    const version = current.version + 1;
    await tx.query('INSERT INTO policy_versions (version, doc, created_by, run_id, step, patch) VALUES ($1, $2, $3, $4, $5, $6)', [
      version,
      JSON.stringify(doc),
      origin.actor,
      origin.runId ?? null,
      origin.step ?? null,
      patch ? JSON.stringify(patch) : null,
    ]);
    return { version, doc };
  });
  await publishCurrentPolicy(db, hot);
  return written;
}

/**
 * Pushes the latest version (not necessarily the one just written: with two writers, the
 * later push must never be overtaken by an older document).
 */
export async function publishCurrentPolicy(db: Queryable, hot: HotStore): Promise<void> {
  const latest = await currentPolicy(db);
  if (latest.version > 0) await hot.publishPolicy({ version: latest.version, doc: latest.doc as unknown as Record<string, unknown> });
}

/**
 * The latest version any of `steps` (tags like "stage-2" and "undo:stage-2") of a run wrote,
 * with the document it replaced: what makes policy steps and their undos idempotent, also when
 * a step is applied, undone, and applied again.
 */
export async function lastPolicyWrite(db: Queryable, runId: number, steps: string[]): Promise<{ step: string; version: number; doc: PolicyDoc; before: PolicyDoc } | undefined> {
  const [row] = await db.query<{ step: string; version: number; doc: PolicyDoc }>(
    'SELECT step, version, doc FROM policy_versions WHERE run_id = $1 AND step = ANY($2::text[]) ORDER BY version DESC LIMIT 1',
    [runId, steps],
  );
  if (!row) return undefined;
  const [prev] = await db.query<{ doc: PolicyDoc }>('SELECT doc FROM policy_versions WHERE version < $1 ORDER BY version DESC LIMIT 1', [row.version]);
  return { step: row.step, version: row.version, doc: normalizePolicy(row.doc), before: normalizePolicy(prev?.doc) };
}

/**
 * A field's value once the writes of undone steps are left out: the value of the latest step
 * write that set it and is not undone, else what it held before the first step that set it.
 * Undoing runs in any order then ends where no run had changed it.
 */
export async function effectiveField(tx: Queryable, kid: string | null, field: string): Promise<{ found: boolean; value: unknown }> {
  const rows = await tx.query<{ patch: PolicyPatch; undone: boolean }>(
    `SELECT patch, undone_at IS NOT NULL AS undone FROM policy_versions
     WHERE patch IS NOT NULL AND patch->'kid' = $1::jsonb AND patch->'set' ? $2 ORDER BY version`,
    [JSON.stringify(kid), field],
  );
  const live = rows.filter((r) => !r.undone).at(-1);
  if (live) return { found: true, value: live.patch.set[field] };
  if (rows[0]) return { found: true, value: rows[0].patch.before[field] };
  return { found: false, value: undefined };
}

/** Marks a step's policy writes as undone (they no longer count in effectiveField). */
export async function markPolicyUndone(tx: Queryable, runId: number, step: string): Promise<void> {
  await tx.query('UPDATE policy_versions SET undone_at = coalesce(undone_at, now()) WHERE run_id = $1 AND step = $2', [runId, step]);
}
