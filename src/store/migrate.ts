import type { Db } from './db.js';
import { LockId } from './db.js';
import * as m001 from './migrations/001-initial.js';
import * as m002 from './migrations/002-guard.js';
import * as m003 from './migrations/003-watermark-clear.js';
import * as m004 from './migrations/004-containment.js';
import * as m005 from './migrations/005-notify.js';
import * as m006 from './migrations/006-lifting.js';
import * as m007 from './migrations/007-sessions.js';
import * as m008 from './migrations/008-blacklist.js';
import * as m009 from './migrations/009-ledger-import.js';
import * as m010 from './migrations/010-user-marks.js';
import * as m011 from './migrations/011-marks-by-policy-version.js';

/** Ordered, append-only. A released migration is never edited; add a new one instead. */
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  { version: 1, name: 'initial', sql: m001.sql },
  { version: 2, name: 'guard', sql: m002.sql },
  { version: 3, name: 'watermark-clear', sql: m003.sql },
  { version: 4, name: 'containment', sql: m004.sql },
  { version: 5, name: 'notify', sql: m005.sql },
  { version: 6, name: 'lifting', sql: m006.sql },
  { version: 7, name: 'sessions', sql: m007.sql },
  { version: 8, name: 'blacklist', sql: m008.sql },
  { version: 9, name: 'ledger-import', sql: m009.sql },
  { version: 10, name: 'gate-users-and-policy-history', sql: m010.sql },
  { version: 11, name: 'marks-by-policy-version', sql: m011.sql },
];

/**
 * Brings the schema up to date. Runs in one transaction under an advisory lock, so concurrent
 * processes apply each migration exactly once and a failure leaves the schema as it was.
 * Returns the versions applied now (empty when already current).
 */
export async function migrate(db: Db, schema: string): Promise<number[]> {
  // Fast path: most invocations find the schema current and should not take the lock.
  if (await isCurrent(db)) return [];
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LockId.migrations]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.query(`SET LOCAL search_path TO ${schema}`);
    await tx.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version));
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration.version);
    }
    return applied;
  });
}

async function isCurrent(db: Db): Promise<boolean> {
  try {
    // Every version, not only the highest: a migration merged in below a newer one must still run.
    const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations WHERE version = ANY($1::int[])', [MIGRATIONS.map((m) => m.version)]);
    return rows[0]?.n === MIGRATIONS.length;
  } catch {
    return false;
  }
}
