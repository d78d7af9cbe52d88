import type { Queryable } from '../store/db.js';
import type { HotStore, RevocationKind } from '../store/hot/hot-store.js';

export interface RevocationEntry {
  value: string;
  /** When the tokens it covers would have expired anyway; the entry ends then. */
  expiresAt: Date;
}

/**
 * Revokes jtis, sessions or device fingerprints: recorded in the database (tagged with the run
 * and step, so an undo removes exactly its own), then pushed to every guard.
 */
export async function revoke(
  db: Queryable,
  hot: HotStore,
  kind: RevocationKind,
  entries: RevocationEntry[],
  origin: { runId?: number; step?: string; reason?: string } = {},
): Promise<void> {
  if (entries.length === 0) return;
  for (let i = 0; i < entries.length; i += 10_000) {
    const part = entries.slice(i, i + 10_000);
    await db.query(
      `INSERT INTO revocations (kind, value, expires_at, run_id, step, reason)
       SELECT $1, v, e, $4, $5, $6 FROM unnest($2::text[], $3::timestamptz[]) AS t(v, e)
       ON CONFLICT (kind, value, run_id, step) DO UPDATE SET expires_at = greatest(revocations.expires_at, EXCLUDED.expires_at)`,
      [kind, part.map((e) => e.value), part.map((e) => e.expiresAt.toISOString()), origin.runId ?? 0, origin.step ?? '', origin.reason ?? null],
    );
  }
  await hot.putRevocations(
    kind,
    entries.map((e) => [e.value, Math.ceil(e.expiresAt.getTime() / 1000)]),
  );
}
