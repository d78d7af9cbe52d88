import type { Settings } from '../config/settings.js';
import type { Db } from './db.js';
import type { HotStore } from './hot/hot-store.js';
import { migrate } from './migrate.js';

/** An opened state: the source-of-truth database and the hot store guards read. */
export interface Backends {
  db: Db;
  hot: HotStore;
  /** 'postgres+redis' | 'postgres' | 'embedded', for status output. */
  label: string;
  /** True for the embedded default, whose KEK file lives beside the database. */
  embedded: boolean;
  close(): Promise<void>;
}

/**
 * Opens the database chosen by the settings (Postgres with DATABASE_URL, else the embedded
 * PGlite), applies pending migrations, and opens the hot store (Redis with REDIS_URL, else
 * tables in that database). Drivers are imported lazily so `--help` and the guard entry stay light.
 */
export async function openBackends(settings: Settings, opts: { migrate?: boolean; create?: boolean } = {}): Promise<Backends> {
  let db: Db;
  if (settings.databaseUrl) {
    const { openPostgres } = await import('./postgres.js');
    db = await openPostgres(settings.databaseUrl, settings.schema);
  } else {
    const { openPglite } = await import('./pglite.js');
    db = await openPglite(settings.stateDir, settings.schema, { create: opts.create });
  }
  try {
    if (opts.migrate !== false) await migrate(db, settings.schema);
    let hot: HotStore;
    if (settings.redisUrl) {
      const { openRedisHotStore } = await import('./hot/redis.js');
      hot = await openRedisHotStore(settings.redisUrl, settings.redisPrefix);
    } else {
      const { openTableHotStore } = await import('./hot/tables.js');
      hot = openTableHotStore(db, settings.schema);
    }
    const label = settings.databaseUrl ? (settings.redisUrl ? 'postgres+redis' : 'postgres') : settings.redisUrl ? 'embedded+redis' : 'embedded';
    return {
      db,
      hot,
      label,
      embedded: !settings.databaseUrl,
      async close() {
        await hot.close().catch(() => {});
        await db.close();
      },
    };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
