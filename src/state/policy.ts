import type { Queryable } from '../store/db.js';
import type { HotStore } from '../store/hot/hot-store.js';

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
 * guards. The version is the primary key, so of two concurrent writers one fails instead of both
 * becoming version n+1; runbooks serialise policy changes under their lock anyway.
 */
export async function changePolicy(
  db: Queryable,
  hot: HotStore,
  change: (doc: PolicyDoc) => PolicyDoc,
  origin: { actor: string; runId?: number | null; step?: string | null },
): Promise<{ version: number; doc: PolicyDoc }> {
  const current = await currentPolicy(db);
  const doc = normalizePolicy(change(structuredClone(current.doc)));
  const version = current.version + 1;
  await db.query('INSERT INTO policy_versions (version, doc, created_by, run_id, step) VALUES ($1, $2, $3, $4, $5)', [
    version,
    JSON.stringify(doc),
    origin.actor,
    origin.runId ?? null,
    origin.step ?? null,
  ]);
  await hot.publishPolicy({ version, doc: doc as unknown as Record<string, unknown> });
  return { version, doc };
}
