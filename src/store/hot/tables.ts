import type { Db, Queryable } from '../db.js';
import {
  chunk,
  COUNTS_KEPT_S,
  emptySnapshot,
  jwksOf,
  type CounterRow,
  type DeviceEntry,
  type HotChange,
  type HotPolicy,
  type HotSnapshot,
  type HotStore,
  type PublishedKey,
  type RevocationKind,
  type WatermarkScope,
} from './hot-store.js';

/**
 * The hot store on tables of the state database: the embedded default, and Postgres without
 * Redis. Each write and its feed entry commit together; on Postgres a NOTIFY wakes guards.
 */
export function openTableHotStore(db: Db, schema: string): HotStore {
  const channel = `jwtir_changes_${schema}`;
  /** When this process last deleted expired counters and marks (Redis expires its keys itself). */
  let prunedAt = 0;
  /** Runs a write and appends its change to the feed in one transaction. */
  const commit = (write: (tx: Queryable) => Promise<unknown>, change: HotChange) =>
    db.transaction(async (tx) => {
      await write(tx);
      const [row] = await tx.query<{ seq: number }>('INSERT INTO hot_changes (change) VALUES ($1) RETURNING seq', [JSON.stringify(change)]);
      if (db.kind === 'postgres') await tx.query('SELECT pg_notify($1, $2)', [channel, String(row!.seq)]);
    });
  const putKv = (tx: Queryable, key: string, value: unknown) =>
    tx.query('INSERT INTO hot_kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v', [key, JSON.stringify(value)]);
  /** Upserts (value → number) pairs and deletes the null ones, in chunks. */
  const putNumbers = async (table: 'hot_watermarks' | 'hot_revocations', scopeCol: 'scope' | 'kind', keyCol: 'subject' | 'value', valCol: 'not_before' | 'expires_at', scope: string, entries: Array<[string, number | null]>, toChange: (part: Array<[string, number | null]>) => HotChange) => {
    for (const part of chunk(entries)) {
      const set = part.filter(([, v]) => v !== null) as Array<[string, number]>;
      const del = part.filter(([, v]) => v === null).map(([s]) => s);
      await commit(async (tx) => {
        if (set.length) {
          await tx.query(
            `INSERT INTO ${table} (${scopeCol}, ${keyCol}, ${valCol}) SELECT $1, s, n FROM unnest($2::text[], $3::bigint[]) AS t(s, n)
             ON CONFLICT (${scopeCol}, ${keyCol}) DO UPDATE SET ${valCol} = EXCLUDED.${valCol}`,
            [scope, set.map(([s]) => s), set.map(([, n]) => n)],
          );
        }
        if (del.length) await tx.query(`DELETE FROM ${table} WHERE ${scopeCol} = $1 AND ${keyCol} = ANY($2::text[])`, [scope, del]);
      }, toChange(part));
    }
  };

  return {
    kind: 'tables',
    publishKeys: (keys: PublishedKey[]) =>
      commit(async (tx) => {
        await putKv(tx, 'keys', keys);
        await putKv(tx, 'jwks', jwksOf(keys));
      }, { t: 'keys', keys }),
    publishPolicy: (policy: HotPolicy) => commit((tx) => putKv(tx, 'policy', policy), { t: 'policy', policy }),
    putWatermarks: (scope: WatermarkScope, entries) =>
      putNumbers('hot_watermarks', 'scope', 'subject', 'not_before', scope, entries, (part) => ({ t: 'wm', scope, entries: part })),
    putRevocations: (kind: RevocationKind, entries) =>
      putNumbers('hot_revocations', 'kind', 'value', 'expires_at', kind, entries, (part) => ({ t: 'rev', kind, entries: part })),
    async putDevices(entries: DeviceEntry[]) {
      for (const part of chunk(entries)) {
        await commit(
          (tx) =>
            tx.query(
              `INSERT INTO hot_devices (sub, fph, confirmed, reputation) SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[])
               ON CONFLICT (sub, fph) DO UPDATE SET confirmed = EXCLUDED.confirmed, reputation = EXCLUDED.reputation`,
              [part.map((d) => d.sub), part.map((d) => d.fph), part.map((d) => d.confirmed), part.map((d) => d.reputation)],
            ),
          { t: 'dev', entries: part },
        );
      }
    },
    async putLedger(kid, sids, subs) {
      for (let i = 0; i < Math.max(sids.length, subs.length, 1); i += 5000) {
        const s1 = sids.slice(i, i + 5000);
        const s2 = subs.slice(i, i + 5000);
        await commit(
          (tx) =>
            tx.query(
              `INSERT INTO hot_ledger (kid, kind, value)
               SELECT $1, 'sid', v FROM unnest($2::text[]) AS v UNION ALL SELECT $1, 'sub', v FROM unnest($3::text[]) AS v
               ON CONFLICT DO NOTHING`,
              [kid, s1, s2],
            ),
          { t: 'ledger', kid, sids: s1, subs: s2 },
        );
      }
    },
    async addCounters(rows: CounterRow[]) {
      if (rows.length === 0) return;
      await db.query(
        `INSERT INTO hot_counters (minute, kid, decision, reason, cohort, n)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[])
         ON CONFLICT (minute, kid, decision, reason, cohort) DO UPDATE SET n = hot_counters.n + EXCLUDED.n`,
        [rows.map((r) => r.minute), rows.map((r) => r.kid), rows.map((r) => r.decision), rows.map((r) => r.reason), rows.map((r) => r.cohort), rows.map((r) => r.n)],
      );
      // Guards flush every few seconds for as long as the service runs: without this the tables
      // would grow by every minute's counts forever. Once an hour per process is plenty.
      if (Date.now() - prunedAt > 3600_000) {
        prunedAt = Date.now();
        const keptFrom = Math.floor(Date.now() / 60_000) - COUNTS_KEPT_S / 60;
        await db.query('DELETE FROM hot_counters WHERE minute < $1', [keptFrom]);
        await db.query('DELETE FROM hot_user_marks WHERE minute < $1', [keptFrom]);
      }
    },
    async readCounters(fromMinute) {
      const rows = await db.query<CounterRow>('SELECT minute, kid, decision, reason, cohort, n FROM hot_counters WHERE minute >= $1 ORDER BY minute', [fromMinute]);
      return rows.map((r) => ({ ...r, minute: Number(r.minute), n: Number(r.n) }));
    },
    async addUserMarks(rows) {
      const flat = rows.flatMap((r) => r.subs.map((sub) => [r.minute, r.policyVersion, r.kind, r.kid, r.cohort, sub] as const));
      for (const part of chunk(flat, 10_000)) {
        await db.query(
          `INSERT INTO hot_user_marks (minute, policy_version, kind, kid, cohort, sub)
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::smallint[], $6::text[]) ON CONFLICT DO NOTHING`,
          [part.map((r) => r[0]), part.map((r) => r[1]), part.map((r) => r[2]), part.map((r) => r[3]), part.map((r) => r[4]), part.map((r) => r[5])],
        );
      }
    },
    async returningUsers(q) {
      const [row] = await db.query<{ cut: number; back: number }>(
        `WITH cut AS (SELECT DISTINCT sub FROM hot_user_marks WHERE kind = 'cut' AND kid = $2 AND policy_version >= $1 AND cohort < $3),
              back AS (SELECT DISTINCT sub FROM hot_user_marks WHERE kind = 'allow' AND policy_version >= $1 AND cohort < $3)
         SELECT (SELECT count(*) FROM cut)::int AS cut, (SELECT count(*) FROM cut JOIN back USING (sub))::int AS back`,
        [q.fromPolicyVersion, q.kid, q.cohortsBelow],
      );
      return row ?? { cut: 0, back: 0 };
    },
    snapshot: () =>
      db.transaction(async (tx): Promise<HotSnapshot> => {
        const [cursor] = await tx.query<{ seq: number | null }>('SELECT max(seq) AS seq FROM hot_changes');
        const snap = emptySnapshot(String(cursor?.seq ?? 0));
        const kv = await tx.query<{ k: string; v: unknown }>('SELECT k, v FROM hot_kv');
        const get = (key: string) => kv.find((r) => r.k === key)?.v;
        snap.keys = (get('keys') as PublishedKey[] | undefined) ?? [];
        snap.policy = (get('policy') as HotPolicy | undefined) ?? null;
        for (const r of await tx.query<{ scope: WatermarkScope; subject: string; not_before: number }>('SELECT scope, subject, not_before FROM hot_watermarks')) {
          snap.watermarks[r.scope].set(r.subject, Number(r.not_before));
        }
        for (const r of await tx.query<{ kind: RevocationKind; value: string; expires_at: number }>('SELECT kind, value, expires_at FROM hot_revocations')) {
          snap.revocations[r.kind].set(r.value, Number(r.expires_at));
        }
        snap.devices = await tx.query<DeviceEntry>('SELECT sub, fph, confirmed, reputation FROM hot_devices');
        for (const r of await tx.query<{ kid: string; kind: 'sid' | 'sub'; value: string }>('SELECT kid, kind, value FROM hot_ledger')) {
          let entry = snap.ledger.get(r.kid);
          if (!entry) snap.ledger.set(r.kid, (entry = { sids: new Set(), subs: new Set() }));
          (r.kind === 'sid' ? entry.sids : entry.subs).add(r.value);
        }
        return snap;
      }),
    async changesSince(cursor, limit = 1000) {
      const rows = await db.query<{ seq: number; change: HotChange }>('SELECT seq, change FROM hot_changes WHERE seq > $1 ORDER BY seq LIMIT $2', [Number(cursor), limit]);
      return { cursor: String(rows.at(-1)?.seq ?? cursor), changes: rows.map((r) => r.change), more: rows.length === limit };
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
