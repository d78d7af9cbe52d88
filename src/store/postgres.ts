import pg from 'pg';
import { BackendUnavailableError } from '../errors.js';
import { maskUrl, maskUrlsIn } from '../config/mask.js';
import type { Db, Queryable } from './db.js';

const INT8_OID = 20;

/** Opens a pool on `url` whose sessions use `schema` as their search path. */
export async function openPostgres(url: string, schema: string, opts: { connectTimeoutMs?: number; queryTimeoutMs?: number; max?: number } = {}): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 4,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    // Nothing may hang on the database: a query that takes this long is failed client-side.
    query_timeout: opts.queryTimeoutMs ?? 30_000,
    options: `-c search_path=${schema}`,
    // Per-pool parsers: a host service's own pg usage keeps its global defaults.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {});
  const description = `Postgres at ${maskUrl(url)} (schema ${schema})`;
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => {});
    throw new BackendUnavailableError(`cannot connect to ${description}: ${maskUrlsIn((error as Error).message, [url])}`, {
      hint: postgresHint((error as { code?: string }).code),
    });
  }

  const run = async <T>(q: Queryable | pg.Pool | pg.PoolClient, sql: string, params?: readonly unknown[]): Promise<T[]> => {
    const result = await (q as pg.Pool).query(sql, params as unknown[]);
    return result.rows as T[];
  };

  return {
    kind: 'postgres',
    description,
    query: (sql, params) => run(pool, sql, params),
    exec: async (sql) => void (await pool.query(sql)),
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = { query: (sql, params) => run(client, sql, params), exec: async (sql) => void (await client.query(sql)) };
        const out = await fn(tx);
        await client.query('COMMIT');
        return out;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async listen(channel, onNotify) {
      const client = await pool.connect();
      const handler = (msg: pg.Notification) => {
        if (msg.channel === channel) onNotify(msg.payload ?? '');
      };
      client.on('notification', handler);
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      return async () => {
        client.off('notification', handler);
        await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
        client.release();
      };
    },
    async close() {
      await pool.end();
    },
  };
}

/** The next step for the usual reasons a connection fails. */
function postgresHint(code: string | undefined): string {
  if (code === '3D000') return 'the database does not exist: create it (createdb <name>) or fix its name in DATABASE_URL';
  if (code === '28P01' || code === '28000') return 'Postgres refused the credentials: check the user and password (PGPASSWORD or DATABASE_URL)';
  return 'check that Postgres is running and that DATABASE_URL points at it';
}
