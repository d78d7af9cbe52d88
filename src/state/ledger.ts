import { cohortOf } from '../guard/cohort.js';
import type { Queryable } from '../store/db.js';
import type { HotStore } from '../store/hot/hot-store.js';

/** A session the service issued: what the forgery check and the blast radius read. */
export interface LedgerSession {
  sid: string;
  sub: string;
  kid: string | null;
  roles: string[];
  fph: string | null;
  issuedAt: Date;
  expiresAt: Date;
  source?: string;
  /** What the user sees in their session list, when the service supplies it: "Firefox on Linux", "Berlin, DE". */
  device?: string | null;
  place?: string | null;
}

/**
 * Records sessions in bulk, one statement per batch (unnest), idempotent by session id: a
 * session seen again keeps its first record but takes the latest expiry.
 */
export async function recordSessions(db: Queryable, sessions: LedgerSession[], batchSize = 5000): Promise<void> {
  for (let i = 0; i < sessions.length; i += batchSize) {
    const part = sessions.slice(i, i + batchSize);
    await db.query(
      `INSERT INTO sessions (sid, sub, kid, roles, fph, issued_at, expires_at, source, cohort, device, place)
       SELECT sid, sub, kid, ARRAY(SELECT jsonb_array_elements_text(roles::jsonb)), fph, issued_at, expires_at, source, cohort, device, place
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::text[], $9::smallint[], $10::text[], $11::text[])
         AS t(sid, sub, kid, roles, fph, issued_at, expires_at, source, cohort, device, place)
       ON CONFLICT (sid) DO UPDATE SET expires_at = greatest(sessions.expires_at, EXCLUDED.expires_at),
         device = coalesce(EXCLUDED.device, sessions.device), place = coalesce(EXCLUDED.place, sessions.place)`,
      [
        part.map((s) => s.sid),
        part.map((s) => s.sub),
        part.map((s) => s.kid),
        part.map((s) => JSON.stringify(s.roles)),
        part.map((s) => s.fph),
        part.map((s) => s.issuedAt.toISOString()),
        part.map((s) => s.expiresAt.toISOString()),
        part.map((s) => s.source ?? 'guard'),
        part.map((s) => cohortOf(s.sub)),
        part.map((s) => s.device ?? null),
        part.map((s) => s.place ?? null),
      ],
    );
  }
}

/** The longest token lifetime the ledger has seen for a key, in ms (0 when it has none). */
export async function longestLifetimeMs(db: Queryable, kid: string): Promise<number> {
  const [row] = await db.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM max(expires_at - issued_at)) * 1000)::bigint AS ms FROM sessions WHERE kid = $1`,
    [kid],
  );
  return Number(row?.ms ?? 0);
}

/**
 * Pushes the sessions (and their users) a key signed for to the hot store: the reference the
 * guard's forgery check uses once the key is compromised. Paged by session id, idempotent.
 * `importRun` pushes only the sessions that ledger import run added.
 */
export async function syncLedgerToHotStore(db: Queryable, hot: HotStore, kid: string, opts: { pageSize?: number; importRun?: number } = {}): Promise<number> {
  const pageSize = opts.pageSize ?? 50_000;
  const only = opts.importRun === undefined ? '' : `AND import_run = ${Number(opts.importRun)}`;
  let after = '';
  let total = 0;
  for (;;) {
    const rows = await db.query<{ sid: string; sub: string }>(`SELECT sid, sub FROM sessions WHERE kid = $1 ${only} AND sid > $2 ORDER BY sid LIMIT $3`, [kid, after, pageSize]);
    if (rows.length === 0) return total;
    await hot.putLedger(kid, rows.map((r) => r.sid), [...new Set(rows.map((r) => r.sub))]);
    total += rows.length;
    after = rows.at(-1)!.sid;
  }
}
