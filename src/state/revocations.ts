import type { Queryable } from '../store/db.js';
import type { HotStore, RevocationKind } from '../store/hot/hot-store.js';

export interface RevocationEntry {
  value: string;
  /** When the tokens it covers would have expired anyway; the entry ends then. */
  expiresAt: Date;
  /** This entry's own reason (a findings file's line); else the origin's. */
  reason?: string | null;
  /** How `expiresAt` was chosen ('token-exp', 'ledger-session', 'max-lifetime', 'ttl'), for listings. */
  expiryRule?: string | null;
}

/** Rows at a time in one statement; 10,000 values of 64 characters stay well under a megabyte. */
const BATCH = 10_000;

/**
 * Revokes jtis, sessions or device fingerprints: recorded in the database (tagged with the run
 * and step, so an undo removes exactly its own), then pushed to every guard. Set-based and
 * idempotent: a step applied twice leaves the same rows. `entries` holds each value once.
 */
export async function revoke(
  db: Queryable,
  hot: HotStore,
  kind: RevocationKind,
  entries: RevocationEntry[],
  origin: { runId?: number; step?: string; reason?: string; onProgress?: (done: number, total: number) => void } = {},
): Promise<void> {
  for (let i = 0; i < entries.length; i += BATCH) {
    const part = entries.slice(i, i + BATCH);
    // The effective entry comes back from the same statement: the later of the row just written
    // and the other live rows of its value (the statement's snapshot predates its own insert).
    // A second pass over 100,000 values with = ANY cost as much again as the insert itself.
    const rows = await db.query<{ value: string; until: string | null }>(
      `WITH ins AS (
         INSERT INTO revocations (kind, value, expires_at, run_id, step, reason, expiry_rule)
         SELECT $1, v, e, $4, $5, coalesce(r, $6), x FROM unnest($2::text[], $3::timestamptz[], $7::text[], $8::text[]) AS t(v, e, r, x)
         ON CONFLICT (kind, value, run_id, step) DO UPDATE SET expires_at = greatest(revocations.expires_at, EXCLUDED.expires_at)
         RETURNING value, expires_at, lifted_at)
       SELECT ins.value, ceil(extract(epoch FROM greatest(
           CASE WHEN ins.expires_at > now() AND ins.lifted_at IS NULL THEN ins.expires_at END,
           (SELECT max(o.expires_at) FROM revocations o WHERE o.kind = $1 AND o.value = ins.value AND o.lifted_at IS NULL AND o.expires_at > now()))))::bigint AS until
       FROM ins`,
      [
        kind,
        part.map((e) => e.value),
        part.map((e) => e.expiresAt.toISOString()),
        origin.runId ?? 0,
        origin.step ?? '',
        origin.reason ?? null,
        part.map((e) => e.reason ?? null),
        part.map((e) => e.expiryRule ?? null),
      ],
    );
    await hot.putRevocations(kind, rows.map((r) => [r.value, r.until === null ? null : Number(r.until)]));
    origin.onProgress?.(i + part.length, entries.length);
  }
}

/**
 * Pushes the effective entry of each value to the hot store: the latest expiry among its rows
 * that are neither lifted nor expired, or a removal when none is left. Several runs may revoke
 * the same value; lifting one of them must not end the others.
 */
export async function syncRevocations(db: Queryable, hot: HotStore, kind: RevocationKind, values: string[], onProgress?: (done: number, total: number) => void): Promise<void> {
  const unique = [...new Set(values)];
  for (let i = 0; i < unique.length; i += BATCH) {
    const part = unique.slice(i, i + BATCH);
    const rows = await db.query<{ value: string; until: number }>(
      `SELECT value, ceil(extract(epoch FROM max(expires_at)))::bigint AS until FROM revocations
       WHERE kind = $1 AND value = ANY($2::text[]) AND lifted_at IS NULL AND expires_at > now() GROUP BY value`,
      [kind, part],
    );
    const effective = new Map(rows.map((r) => [r.value, Number(r.until)]));
    await hot.putRevocations(kind, part.map((v) => [v, effective.get(v) ?? null]));
    onProgress?.(Math.min(i + BATCH, unique.length), unique.length);
  }
}

/** `<run>:<step>`: who lifted a revocation or cleared a watermark. */
export const stepTag = (runId: number, step: string) => `${runId}:${step}`;

/**
 * Lifts revocations, recording which step lifted them (so its undo can restore exactly those).
 * `where` selects rows of `revocations` by SQL over its columns with parameters from $3 on
 * ($1 is the lifting step's tag, $2 the kind). Returns the values touched.
 */
export async function liftRevocations(db: Queryable, hot: HotStore, kind: RevocationKind, tag: string, where: string, params: unknown[]): Promise<string[]> {
  await db.query(`UPDATE revocations SET lifted_at = now(), lifted_by = $1 WHERE kind = $2 AND lifted_at IS NULL AND (${where})`, [tag, kind, ...params]);
  // Everything this step lifted, including on an earlier attempt: a re-run still pushes all of it.
  const rows = await db.query<{ value: string }>('SELECT DISTINCT value FROM revocations WHERE kind = $1 AND lifted_by = $2', [kind, tag]);
  const values = rows.map((r) => r.value);
  await syncRevocations(db, hot, kind, values);
  return values;
}

/**
 * For the undo of a step that revoked: its rows a later step (`blacklist remove`) lifted
 * meanwhile become lifted by `tag` (the undo), so undoing that remove afterwards does not bring
 * back what the undone step no longer stands for.
 */
export async function claimLifted(db: Queryable, tag: string, runId: number, step: string): Promise<void> {
  await db.query('UPDATE revocations SET lifted_by = $1 WHERE run_id = $2 AND step = $3 AND lifted_at IS NOT NULL', [tag, runId, step]);
}

/** Undo of a lift: the rows that step lifted apply again. */
export async function restoreLifted(db: Queryable, hot: HotStore, kind: RevocationKind, tag: string): Promise<void> {
  const rows = await db.query<{ value: string }>('SELECT DISTINCT value FROM revocations WHERE kind = $1 AND lifted_by = $2', [kind, tag]);
  await db.query('UPDATE revocations SET lifted_at = NULL WHERE kind = $1 AND lifted_by = $2', [kind, tag]);
  await syncRevocations(db, hot, kind, rows.map((r) => r.value));
}
