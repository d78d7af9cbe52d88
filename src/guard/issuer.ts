import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { open as unseal } from '../crypto/envelope.js';
import { recordDevice } from '../state/devices.js';
import { recordSessions } from '../state/ledger.js';
import { revoke } from '../state/revocations.js';
import type { Backends } from '../store/open.js';
import { GuardError, NO_ACTIVE_KEY, REFRESH_FINGERPRINT, REFRESH_INVALID, REFRESH_REUSED, SESSION_NOT_FOUND } from './errors.js';
import type { Replica } from './replica.js';
import { liveSessionsOf, sessionEnded, type UserSession } from './sessions.js';
import { signingKeyFrom, signJwt, type SigningKey } from './sign.js';
import type { Alert } from './telemetry.js';

export interface IssueRequest {
  sub: string;
  roles?: string[];
  /** Access-token lifetime in seconds. Default 900 (15 minutes). */
  ttlSec?: number;
  /** Session id; a new one is created when absent. */
  sid?: string;
  /** Device fingerprint hash to bind the token to (claim `fph`). */
  fph?: string;
  claims?: Record<string, unknown>;
  /** What the user's session list shows for this login's device, e.g. "Firefox on Linux". Not put in the token. */
  device?: string;
  /** Where the login came from, as the service describes it, e.g. "Berlin, DE". Not put in the token. */
  place?: string;
}

export interface IssuedToken {
  token: string;
  kid: string;
  sid: string;
  jti: string;
  expiresAt: Date;
}

export interface Session {
  access: IssuedToken;
  /** Opaque; stored only as a hash. Send it in `refreshCookie(...)`, never to scripts. */
  refreshToken: string;
  refreshExpiresAt: Date;
}

/**
 * Issues tokens with the active key (PLAYBOOK B2): short access tokens carrying jti, sid and fph,
 * and refresh tokens rotated on every use, where presenting a spent one revokes its whole family.
 */
export class Issuer {
  private readonly signingKeys = new Map<string, SigningKey>();

  constructor(
    private readonly backends: Backends,
    private readonly replica: Replica,
    private readonly kek: Buffer | undefined,
    private readonly now: () => number,
    private readonly claimsBase: { iss?: string | undefined; aud?: string | undefined },
    private readonly onAlert: (alert: Alert) => void,
  ) {}

  async issue(req: IssueRequest): Promise<IssuedToken> {
    const kid = this.replica.activeKid;
    if (!kid) throw new GuardError(NO_ACTIVE_KEY, 'there is no active signing key: import or rotate one with the jwtir CLI');
    const key = await this.signingKey(kid);
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + (req.ttlSec ?? 900);
    const sid = req.sid ?? randomUUID();
    const jti = randomUUID();
    const payload: Record<string, unknown> = { ...req.claims, sub: req.sub, sid, jti, iat, exp };
    if (req.roles) payload.roles = req.roles;
    if (req.fph) payload.fph = req.fph;
    if (this.claimsBase.iss) payload.iss = this.claimsBase.iss;
    if (this.claimsBase.aud) payload.aud = this.claimsBase.aud;
    const token = signJwt(key, payload);
    const { db, hot } = this.backends;
    await recordSessions(db, [
      { sid, sub: req.sub, kid, roles: req.roles ?? [], fph: req.fph ?? null, issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000), device: req.device ?? null, place: req.place ?? null },
    ]);
    if (req.fph) await recordDevice(db, hot, { sub: req.sub, fph: req.fph });
    return { token, kid, sid, jti, expiresAt: new Date(exp * 1000) };
  }

  /** A login: a new session with an access token and the first refresh token of its family. */
  async login(req: IssueRequest & { refreshTtlSec?: number }): Promise<Session> {
    const access = await this.issue(req);
    const { refreshToken, refreshExpiresAt } = await this.newRefresh(access.sid, req.sub, req.fph, access.sid, req.refreshTtlSec);
    return { access, refreshToken, refreshExpiresAt };
  }

  /**
   * Trades a refresh token for a new access token and a new refresh token. The old one is spent
   * atomically: of two concurrent uses exactly one wins, and the loser counts as reuse.
   */
  async refresh(refreshToken: string, ctx: { fingerprint?: string; refreshTtlSec?: number; ttlSec?: number } = {}): Promise<Session> {
    const { db } = this.backends;
    const hash = hashOf(refreshToken);
    const [row] = await db.query<{ family: string; sid: string; sub: string; fph: string | null; expires_at: Date; used_at: Date | null; revoked_at: Date | null }>(
      'SELECT family, sid, sub, fph, expires_at, used_at, revoked_at FROM refresh_tokens WHERE hash = $1',
      [hash],
    );
    if (!row || row.revoked_at || new Date(row.expires_at).getTime() <= this.now()) throw new GuardError(REFRESH_INVALID, 'the refresh token is unknown, expired or revoked: log in again');
    if (row.fph && ctx.fingerprint !== row.fph) {
      this.onAlert({ kind: 'fingerprint_mismatch', reason: 'refresh_fingerprint_mismatch', sub: row.sub, sid: row.sid, fph: ctx.fingerprint, at: this.now() });
      throw new GuardError(REFRESH_FINGERPRINT, 'the refresh token belongs to another device');
    }
    const [session] = await db.query<{ roles: string[]; sub: string; kid: string | null; cohort: number | null; fph: string | null; issued_at: Date }>(
      'SELECT roles, sub, kid, cohort, fph, issued_at FROM sessions WHERE sid = $1',
      [row.sid],
    );
    // A session a forced logout ended cannot be renewed, even where its refresh token escaped the
    // logout (a logout rolled back while another still covers the session).
    if (session && sessionEnded(this.replica, { ...session, sid: row.sid, issuedAt: new Date(session.issued_at) }, this.now() / 1000)) {
      throw new GuardError(REFRESH_INVALID, 'the session was ended: log in again');
    }
    const spent = await db.query('UPDATE refresh_tokens SET used_at = now() WHERE hash = $1 AND used_at IS NULL AND revoked_at IS NULL RETURNING hash', [hash]);
    if (spent.length === 0) {
      await this.revokeFamily(row.family, row.sid, row.sub);
      throw new GuardError(REFRESH_REUSED, 'this refresh token was already used: the session is revoked, log in again');
    }
    const access = await this.issue({ sub: row.sub, sid: row.sid, roles: session?.roles ?? [], ...(row.fph ? { fph: row.fph } : {}), ...(ctx.ttlSec ? { ttlSec: ctx.ttlSec } : {}) });
    const next = await this.newRefresh(row.family, row.sub, row.fph ?? undefined, row.sid, ctx.refreshTtlSec);
    return { access, ...next };
  }

  /** Ends a session everywhere: its refresh family and every access token carrying its sid. */
  async revokeSession(sid: string): Promise<void> {
    const [row] = await this.backends.db.query<{ sub: string }>('SELECT sub FROM sessions WHERE sid = $1', [sid]);
    await this.revokeFamily(sid, sid, row?.sub ?? '', false);
  }

  /** The user's live sessions (PLAYBOOK E2); `currentSid` marks the one asking. */
  sessions(sub: string, currentSid?: string): Promise<UserSession[]> {
    return liveSessionsOf(this.backends.db, this.replica, sub, currentSid, this.now());
  }

  /**
   * Ends one of the user's own sessions. A session of another user is refused exactly like one
   * that does not exist, so the answer does not tell which session ids are real.
   */
  async endSession(sub: string, sid: string): Promise<void> {
    const [row] = await this.backends.db.query<{ sub: string }>('SELECT sub FROM sessions WHERE sid = $1', [sid]);
    if (!row || row.sub !== sub) throw new GuardError(SESSION_NOT_FOUND, 'no such session for this user');
    await this.revokeFamily(sid, sid, sub, false);
  }

  private async revokeFamily(family: string, sid: string, sub: string, reused = true): Promise<void> {
    const { db, hot } = this.backends;
    // Marked as the guard's own, so the undo of an earlier forced logout cannot revive these tokens.
    await db.query(`UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()), revoked_by = 'guard' WHERE family = $1`, [family]);
    const [latest] = await db.query<{ until: Date | null }>(
      'SELECT greatest((SELECT max(expires_at) FROM refresh_tokens WHERE family = $1), (SELECT expires_at FROM sessions WHERE sid = $2)) AS until',
      [family, sid],
    );
    // The session's last access token and its family's last refresh token bound every token it can still have.
    const until = latest?.until ? new Date(latest.until) : new Date(this.now() + 24 * 3600_000);
    await revoke(db, hot, 'sid', [{ value: sid, expiresAt: until }], { reason: reused ? 'refresh token reuse' : 'session revoked' });
    if (reused) this.onAlert({ kind: 'refresh_reuse', reason: 'refresh_reuse', sub, sid, at: this.now() });
  }

  private async newRefresh(family: string, sub: string, fph: string | undefined, sid: string, ttlSec = 30 * 24 * 3600) {
    const refreshToken = randomBytes(32).toString('base64url');
    const refreshExpiresAt = new Date(this.now() + ttlSec * 1000);
    await this.backends.db.query('INSERT INTO refresh_tokens (hash, family, sid, sub, fph, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [
      hashOf(refreshToken),
      family,
      sid,
      sub,
      fph ?? null,
      refreshExpiresAt.toISOString(),
    ]);
    return { refreshToken, refreshExpiresAt };
  }

  private async signingKey(kid: string): Promise<SigningKey> {
    const cached = this.signingKeys.get(kid);
    if (cached) return cached;
    const [row] = await this.backends.db.query<{ alg: 'HS256' | 'RS256' | 'ES256' | 'EdDSA'; private_enc: string | null }>('SELECT alg, private_enc FROM keys WHERE kid = $1', [kid]);
    if (!row?.private_enc) throw new GuardError(NO_ACTIVE_KEY, `the private material of key ${kid} is not available`);
    if (!this.kek) throw new TypeError('issuing tokens needs the KEK: set JWTIR_KEK or pass kek');
    const key = signingKeyFrom(kid, row.alg, unseal(this.kek, row.private_enc, kid));
    this.signingKeys.set(kid, key);
    return key;
  }
}

/** Refresh tokens are 256 random bits, so a plain SHA-256 is enough to store them safely. */
function hashOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
