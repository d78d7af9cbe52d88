import path from 'node:path';
import { chmodSync, existsSync } from 'node:fs';
import { BackendUnavailableError, NotFoundError } from '../errors.js';
import type { Db, Queryable } from './db.js';
import { lockStateDir } from './dir-lock.js';

/**
 * The embedded default: Postgres compiled to WebAssembly, in this process, persisted under
 * `stateDir/db`. Loaded lazily so that Postgres deployments never pay for the WebAssembly.
 */
export async function openPglite(stateDir: string, schema: string, opts: { create?: boolean } = {}): Promise<Db> {
  if (opts.create === false && !existsSync(path.join(stateDir, 'db'))) {
    throw new NotFoundError(`there is no jwtir state in ${stateDir}`, {
      hint: 'run `jwtir init` to create it here, or point JWTIR_STATE_DIR (or DATABASE_URL) at the existing state',
    });
  }
  const lock = await lockStateDir(stateDir);
  const dataDir = path.join(stateDir, 'db');
  let pg: import('@electric-sql/pglite').PGlite;
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    pg = await PGlite.create(dataDir);
    // PGlite writes its files world-readable; the database holds (sealed) keys and the audit trail.
    chmodSync(dataDir, 0o700);
    await pg.exec(`CREATE SCHEMA IF NOT EXISTS ${schema}; SET search_path TO ${schema};`);
  } catch (error) {
    lock.release();
    throw new BackendUnavailableError(`cannot open the embedded database in ${dataDir}: ${(error as Error).message}`, {
      hint: 'if the directory was copied or damaged, restore it from backup or point JWTIR_STATE_DIR elsewhere',
    });
  }
  const run = async <T>(q: Pick<typeof pg, 'query'>, sql: string, params?: readonly unknown[]) =>
    (await q.query<T>(sql, params as unknown[])).rows;

  return {
    kind: 'pglite',
    description: `the embedded database in ${dataDir}`,
    query: (sql, params) => run(pg, sql, params),
    exec: async (sql) => void (await pg.exec(sql)),
    transaction: (fn) =>
      pg.transaction((tx) =>
        fn({ query: (sql, params) => run(tx, sql, params), exec: async (sql) => void (await tx.exec(sql)) } satisfies Queryable),
      ),
    async close() {
      try {
        await pg.close();
      } finally {
        lock.release();
      }
    },
  };
}
