/**
 * The state database as jwtir sees it: Postgres through `pg`, or the embedded PGlite. Both speak
 * the same SQL with `$n` parameters, so everything above this interface is backend-agnostic.
 */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a multi-statement script without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** A human description with any password masked, for messages. */
  readonly description: string;
  /** Runs `fn` in one transaction; it commits when `fn` resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Subscribes to a NOTIFY channel where the backend has one (Postgres); returns an unsubscribe. */
  listen?(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * Advisory-lock ids, named so a reader knows what each serialises. Held with
 * pg_advisory_xact_lock inside a transaction, so they are released by commit or rollback,
 * including when the process dies.
 */
export const LockId = {
  migrations: 7_210_001,
  auditAppend: 7_210_002,
  runLocks: 7_210_003,
  policyWrite: 7_210_004,
} as const;

export async function withXactLock<T>(db: Db, lockId: number, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [lockId]);
    return fn(tx);
  });
}
