import type { Queryable } from '../store/db.js';

/** The incident policy the guard applies. Version 0 is the built-in default (nothing stored yet). */
export interface PolicyDoc {
  /** Allowed clock skew between issuer and guard, in seconds. Default 30. */
  clockToleranceSec: number;
}

export const DEFAULT_POLICY: PolicyDoc = { clockToleranceSec: 30 };

export async function currentPolicy(db: Queryable): Promise<{ version: number; doc: PolicyDoc }> {
  const [row] = await db.query<{ version: number; doc: PolicyDoc }>('SELECT version, doc FROM policy_versions ORDER BY version DESC LIMIT 1');
  return row ? { version: row.version, doc: { ...DEFAULT_POLICY, ...row.doc } } : { version: 0, doc: DEFAULT_POLICY };
}
