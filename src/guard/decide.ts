import { parseCompactJws, TokenRejected, DEFAULT_MAX_TOKEN_BYTES } from './jws.js';
import type { Replica } from './replica.js';

export type DenyReason =
  | TokenRejected['reason']
  | 'kid_unknown'
  | 'kid_missing'
  | 'alg_mismatch'
  | 'key_disabled'
  | 'key_retired'
  | 'claims_invalid'
  | 'exp_missing'
  | 'expired'
  | 'not_yet_valid'
  | 'iat_in_future'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  | 'iat_missing'
  | 'revoked_user'
  | 'revoked_kid';

export interface Verdict {
  decision: 'allow' | 'deny';
  /** Machine-readable reasons; empty when allowed. */
  reasons: DenyReason[];
  kid?: string;
  claims?: Record<string, unknown>;
}

export interface DecideOptions {
  /** Now, in epoch milliseconds. */
  now: number;
  clockToleranceSec: number;
  issuer: string | undefined;
  audience: string | undefined;
  maxTokenBytes: number | undefined;
}

const deny = (reason: DenyReason, kid?: string, claims?: Record<string, unknown>): Verdict => ({
  decision: 'deny',
  reasons: [reason],
  ...(kid === undefined ? {} : { kid }),
  ...(claims === undefined ? {} : { claims }),
});

/**
 * The guard's decision for one token against the replicated state. Pure and synchronous.
 * Order matters: nothing about the token is trusted before its signature verifies with the key
 * its kid names, under the algorithm that key is pinned to.
 */
export function decide(replica: Replica, token: string, o: DecideOptions): Verdict {
  let parsed;
  try {
    parsed = parseCompactJws(token, o.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES);
  } catch (error) {
    if (error instanceof TokenRejected) return deny(error.reason);
    throw error;
  }
  const kid = parsed.kid ?? replica.kidlessKid;
  if (kid === undefined) return deny('kid_missing');
  // Map lookup by exact string: a kid is never a path, a query or a pattern.
  const key = replica.keys.get(kid);
  if (!key) return deny('kid_unknown', kid);
  if (parsed.alg !== key.meta.alg) return deny('alg_mismatch', kid);
  if (!key.verifier) return deny('key_disabled', kid);
  if (key.meta.state === 'retiring' && (key.meta.verifyUntil === null || o.now > key.meta.verifyUntil)) return deny('key_retired', kid);
  if (!key.verifier.verify(parsed.signingInput, parsed.signature)) return deny('bad_signature', kid);

  const claims = parsed.payload;
  const nowSec = o.now / 1000;
  const tol = o.clockToleranceSec;
  const { exp, nbf, iat, sub, iss, aud } = claims;
  if (exp === undefined) return deny('exp_missing', kid, claims);
  if (!isNumericDate(exp) || (nbf !== undefined && !isNumericDate(nbf)) || (iat !== undefined && !isNumericDate(iat)) || (sub !== undefined && typeof sub !== 'string')) {
    return deny('claims_invalid', kid, claims);
  }
  // Tolerance only ever covers honest clock skew: at each boundary the stricter side wins.
  if (exp <= nowSec - tol) return deny('expired', kid, claims);
  if (nbf !== undefined && nbf > nowSec + tol) return deny('not_yet_valid', kid, claims);
  if (iat !== undefined && iat > nowSec + tol) return deny('iat_in_future', kid, claims);
  if (o.issuer !== undefined && iss !== o.issuer) return deny('issuer_mismatch', kid, claims);
  if (o.audience !== undefined && !(aud === o.audience || (Array.isArray(aud) && aud.includes(o.audience)))) return deny('audience_mismatch', kid, claims);

  const userMark = typeof sub === 'string' ? replica.watermarks.user.get(sub) : undefined;
  const kidMark = replica.watermarks.kid.get(kid);
  if (userMark !== undefined || kidMark !== undefined) {
    // A watermark ends every token issued before it; a token that does not say when it was issued cannot prove it is newer.
    if (iat === undefined) return deny('iat_missing', kid, claims);
    if (userMark !== undefined && iat < userMark) return deny('revoked_user', kid, claims);
    if (kidMark !== undefined && iat < kidMark) return deny('revoked_kid', kid, claims);
  }
  return { decision: 'allow', reasons: [], kid, claims };
}

function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}
