import type { Queryable } from '../store/db.js';
import type { Replica } from './replica.js';

/** One of a signed-in user's sessions, as a "your devices" page shows it (PLAYBOOK E2). */
export interface UserSession {
  sid: string;
  /** Label the service gave at login ("Firefox on Linux"); null when it gave none. */
  device: string | null;
  /** Where the login came from, as the service described it ("Berlin, DE"); null when unknown. */
  place: string | null;
  /** The login. */
  firstSeen: Date;
  /** The last minute a guard allowed one of its tokens (written every few seconds); null before any use. */
  lastSeen: Date | null;
  /** When it ends unless renewed: its last access token's or its refresh token's expiry, whichever is later. */
  expiresAt: Date;
  /** The session the request asking for the list belongs to. */
  current: boolean;
}

/** What the ledger knows of a session, enough to tell whether the state the CLI wrote ended it. */
export interface LedgerFacts {
  sid: string;
  sub: string;
  kid: string | null;
  cohort: number | null;
  fph: string | null;
  issuedAt: Date;
}

/**
 * Whether a session has been ended: revoked by id or device, or started before a user, key or
 * cohort watermark. Judged on the guard's replica, the same state requests are judged on, so a
 * session a forced logout ended can neither be listed as live nor renewed with its refresh token.
 */
export function sessionEnded(replica: Replica, s: LedgerFacts, nowSec: number): boolean {
  const live = (until: number | undefined) => until !== undefined && until > nowSec;
  if (live(replica.revocations.sid.get(s.sid))) return true;
  if (s.fph !== null && live(replica.revocations.fph.get(s.fph))) return true;
  const started = Math.floor(s.issuedAt.getTime() / 1000);
  const userMark = replica.watermarks.user.get(s.sub);
  if (userMark !== undefined && started < userMark) return true;
  if (s.kid === null) return false;
  const kidMark = replica.watermarks.kid.get(s.kid);
  if (kidMark !== undefined && started < kidMark) return true;
  return s.cohort !== null && started < replica.cohortMark(s.kid, s.cohort);
}

interface Row {
  sid: string;
  sub: string;
  kid: string | null;
  cohort: number | null;
  fph: string | null;
  device: string | null;
  place: string | null;
  issued_at: Date;
  last_seen_at: Date | null;
  ends_at: Date;
}

/** The user's sessions that are still live: not expired (counting a refresh token that can renew it) and not ended. */
export async function liveSessionsOf(db: Queryable, replica: Replica, sub: string, currentSid: string | undefined, nowMs: number): Promise<UserSession[]> {
  const rows = await db.query<Row>(
    `SELECT s.sid, s.sub, s.kid, s.cohort, s.fph, s.device, s.place, s.issued_at, s.last_seen_at,
            greatest(s.expires_at, (SELECT max(rt.expires_at) FROM refresh_tokens rt WHERE rt.sid = s.sid AND rt.revoked_at IS NULL AND rt.used_at IS NULL)) AS ends_at
     FROM sessions s WHERE s.sub = $1 ORDER BY s.issued_at DESC, s.sid`,
    [sub],
  );
  const nowSec = nowMs / 1000;
  return rows
    .map((r) => ({ ...r, issuedAt: new Date(r.issued_at), endsAt: new Date(r.ends_at) }))
    .filter((r) => r.endsAt.getTime() > nowMs && !sessionEnded(replica, r, nowSec))
    .map((r) => ({
      sid: r.sid,
      device: r.device,
      place: r.place,
      firstSeen: r.issuedAt,
      lastSeen: r.last_seen_at ? new Date(r.last_seen_at) : null,
      expiresAt: r.endsAt,
      current: r.sid === currentSid,
    }));
}
