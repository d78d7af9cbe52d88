import type { Queryable } from '../store/db.js';

/**
 * The sessions (and so the users) a containment step ended: what its own rows in `watermarks`
 * and `revocations` (tagged with its run and step) cover in the session ledger. A session counts
 * when it was live when the row was written and was issued before the watermark (or carries the
 * revoked session id or device). Revoked jtis map to no session: the ledger does not know them.
 *
 * Returns SQL for a subquery with columns (sub, sid), parameters $1 = run id, $2 = step, so
 * callers can count it, page it or insert from it without loading a million rows.
 */
export const AFFECTED_SESSIONS_SQL = (() => {
  // One branch per kind of row, each an equality join: a single join with OR-ed conditions makes
  // the planner scan every session once per watermark (100 cohort marks × 1M sessions).
  const byWatermark = (cover: string) => `
  SELECT s.sub, s.sid FROM sessions s
  JOIN watermarks w ON w.run_id = $1 AND w.step = $2 AND w.cleared_at IS NULL AND ${cover}
   AND s.issued_at < w.not_before AND s.expires_at > w.created_at`;
  const byRevocation = (cover: string) => `
  SELECT s.sub, s.sid FROM sessions s
  JOIN revocations r ON r.run_id = $1 AND r.step = $2 AND r.lifted_at IS NULL AND ${cover} AND s.expires_at > r.created_at`;
  return [
    byWatermark(`w.scope = 'user' AND s.sub = w.subject`),
    byWatermark(`w.scope = 'kid' AND s.kid = w.subject`),
    // Compared as text: a cast of the subject would fail on the "<kid>#<n>" rows.
    byWatermark(`w.scope = 'cohort' AND s.cohort::text = w.subject`),
    byWatermark(`w.scope = 'cohort' AND s.kid || '#' || s.cohort = w.subject`),
    byRevocation(`r.kind = 'sid' AND s.sid = r.value`),
    byRevocation(`r.kind = 'fph' AND s.fph = r.value`),
  ].join('\n  UNION');
})();

export async function countAffected(db: Queryable, runId: number, step: string): Promise<{ sessions: number; users: number }> {
  const [row] = await db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM (${AFFECTED_SESSIONS_SQL}) a`,
    [runId, step],
  );
  return row ?? { sessions: 0, users: 0 };
}
