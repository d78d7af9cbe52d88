import type { Db, Queryable } from '../db.js';
import { chunk, jwksOf, type HotChange, type HotPolicy, type HotSnapshot, type HotStore, type PublishedKey, type WatermarkScope } from './hot-store.js';

/**
 * The hot store on tables of the state database: the embedded default, and Postgres without
 * Redis. Each write and its feed entry commit together; on Postgres a NOTIFY wakes guards.
 */
export function openTableHotStore(db: Db, schema: string): HotStore {
  const channel = `jwtir_changes_${schema}`;
  const append = async (tx: Queryable, change: HotChange) => {
    const [row] = await tx.query<{ seq: number }>('INSERT INTO hot_changes (change) VALUES ($1) RETURNING seq', [JSON.stringify(change)]);
    if (db.kind === 'postgres') await tx.query('SELECT pg_notify($1, $2)', [channel, String(row!.seq)]);
  };
  const putKv = (tx: Queryable, key: string, value: unknown) =>
    tx.query('INSERT INTO hot_kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v', [key, JSON.stringify(value)]);

  return {
    kind: 'tables',
    publishKeys: (keys: PublishedKey[]) =>
      db.transaction(async (tx) => {
        await putKv(tx, 'keys', keys);
        await putKv(tx, 'jwks', jwksOf(keys));
        await append(tx, { t: 'keys', keys });
      }),
    publishPolicy: (policy: HotPolicy) =>
      db.transaction(async (tx) => {
        await putKv(tx, 'policy', policy);
        await append(tx, { t: 'policy', policy });
      }),
    async putWatermarks(scope, entries) {
      for (const part of chunk(entries)) {
        await db.transaction(async (tx) => {
          const set = part.filter(([, v]) => v !== null) as Array<[string, number]>;
          const del = part.filter(([, v]) => v === null).map(([s]) => s);
          if (set.length) {
            await tx.query(
              `INSERT INTO hot_watermarks (scope, subject, not_before)
               SELECT $1, s, n FROM unnest($2::text[], $3::bigint[]) AS t(s, n)
               ON CONFLICT (scope, subject) DO UPDATE SET not_before = EXCLUDED.not_before`,
              [scope, set.map(([s]) => s), set.map(([, n]) => n)],
            );
          }
          if (del.length) await tx.query('DELETE FROM hot_watermarks WHERE scope = $1 AND subject = ANY($2::text[])', [scope, del]);
          await append(tx, { t: 'wm', scope, entries: part });
        });
      }
    },
    snapshot: () =>
      db.transaction(async (tx): Promise<HotSnapshot> => {
        const [cursor] = await tx.query<{ seq: number | null }>('SELECT max(seq) AS seq FROM hot_changes');
        const kv = await tx.query<{ k: string; v: unknown }>('SELECT k, v FROM hot_kv');
        const wm = await tx.query<{ scope: WatermarkScope; subject: string; not_before: number }>(
          'SELECT scope, subject, not_before FROM hot_watermarks',
        );
        const watermarks: HotSnapshot['watermarks'] = { user: new Map(), kid: new Map() };
        for (const row of wm) watermarks[row.scope].set(row.subject, Number(row.not_before));
        const get = (key: string) => kv.find((r) => r.k === key)?.v;
        return {
          cursor: String(cursor?.seq ?? 0),
          keys: (get('keys') as PublishedKey[] | undefined) ?? [],
          policy: (get('policy') as HotPolicy | undefined) ?? null,
          watermarks,
        };
      }),
    async changesSince(cursor, limit = 1000) {
      const rows = await db.query<{ seq: number; change: HotChange }>(
        'SELECT seq, change FROM hot_changes WHERE seq > $1 ORDER BY seq LIMIT $2',
        [Number(cursor), limit],
      );
      return { cursor: String(rows.at(-1)?.seq ?? cursor), changes: rows.map((r) => r.change) };
    },
    async watch(onWake) {
      if (!db.listen) return undefined;
      return db.listen(channel, () => onWake());
    },
    async close() {
      /* the state database is owned and closed by whoever opened it */
    },
  };
}
