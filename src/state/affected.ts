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
export const AFFECTED_SESSIONS_SQL = `
  SELECT s.sub, s.sid FROM sessions s
  JOIN watermarks w ON w.run_id = $1 AND w.step = $2 AND w.cleared_at IS NULL
   AND s.issued_at < w.not_before AND s.expires_at > w.created_at
   AND ((w.scope = 'user' AND s.sub = w.subject)
     OR (w.scope = 'kid' AND s.kid = w.subject)
     OR (w.scope = 'cohort' AND strpos(w.subject, '#') = 0 AND s.cohort = w.subject::smallint)
     OR (w.scope = 'cohort' AND strpos(w.subject, '#') > 0 AND s.kid || '#' || s.cohort = w.subject))
  UNION
  SELECT s.sub, s.sid FROM sessions s
  JOIN revocations r ON r.run_id = $1 AND r.step = $2 AND r.lifted_at IS NULL AND s.expires_at > r.created_at
   AND ((r.kind = 'sid' AND s.sid = r.value) OR (r.kind = 'fph' AND s.fph = r.value))`;

export async function countAffected(db: Queryable, runId: number, step: string): Promise<{ sessions: number; users: number }> {
  const [row] = await db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM (${AFFECTED_SESSIONS_SQL}) a`,
    [runId, step],
  );
  return row ?? { sessions: 0, users: 0 };
}
