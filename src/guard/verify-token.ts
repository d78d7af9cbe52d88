import { cohortOf } from './cohort.js';
import { DEFAULT_MAX_TOKEN_BYTES, isCanonicalBase64url, splitCompactJws, TokenRejected, type SplitJws } from './jws.js';
import type { LiveKey, Replica } from './replica.js';
import type { Reason, Verdict } from './types.js';
import type { VerificationKey } from './verification-key.js';

/**
 * A token whose signature verified with the key its kid names, under that key's pinned alg,
 * and whose claims have the right types. Time- and state-dependent checks come later, per request.
 */
export interface VerifiedToken {
  kid: string;
  key: LiveKey;
  claims: Record<string, unknown>;
  sub: string | undefined;
  sid: string | undefined;
  jti: string | undefined;
  fph: string | undefined;
  exp: number;
  nbf: number | undefined;
  iat: number | undefined;
  cohort: number;
  /** Counter key for an allow on this token, built once (see telemetry). */
  allowCounterKey: string;
  /** The key set this was verified under; a cached result is only reused under the same one. */
  keysVersion: number;
  /** The identity the per-token rate limit counts under, built once. */
  rateId: string;
  /** The answer when allowed, built once and frozen: a cached token's allow allocates nothing. */
  allow: Verdict;
  /**
   * The replica version and request context under which every state-dependent check last
   * passed (revocations, ledger, device binding, risk). While they are unchanged those lookups
   * are skipped; -1 when nothing is remembered.
   */
  passedAt: number;
  passedFingerprint: string | undefined;
  passedCritical: boolean;
  /** The epoch minute this token's session was last recorded as seen (see Telemetry.sighting); -1 before. */
  seenMinute: number;
  /** The epoch minute and policy version its user was last marked under for a cutover's gate (see Telemetry.userMark); -1 before. */
  markedMinute: number;
  markedVersion: number;
}

export type Rejection = { reason: Reason; kid?: string };

/** A token split and matched to a usable key of the right alg, its signature not yet checked. */
export interface PreparedToken {
  parsed: SplitJws;
  kid: string;
  key: LiveKey & { verifier: VerificationKey };
  /** The key set it was matched under. */
  keysVersion: number;
}

export function verifyToken(replica: Replica, token: string, maxTokenBytes = DEFAULT_MAX_TOKEN_BYTES): VerifiedToken | Rejection {
  const prepared = prepareToken(replica, token, maxTokenBytes);
  if ('reason' in prepared) return prepared;
  return prepared.key.verifier.verifySplit(prepared.parsed) ? claimsOf(prepared) : signatureRejection(prepared);
}

/** Everything before the signature: shape, header, kid, the key's state and its pinned alg. */
export function prepareToken(replica: Replica, token: string, maxTokenBytes = DEFAULT_MAX_TOKEN_BYTES): PreparedToken | Rejection {
  let parsed;
  try {
    parsed = splitCompactJws(token, maxTokenBytes);
  } catch (error) {
    if (error instanceof TokenRejected) return { reason: error.reason };
    throw error;
  }
  const kid = parsed.kid ?? replica.kidlessKid;
  if (kid === undefined) return { reason: 'kid_missing' };
  // A Map lookup by the exact string: a kid is never a path, a query or a pattern.
  const key = replica.keys.get(kid);
  if (!key) return { reason: 'kid_unknown' };
  if (parsed.alg !== key.meta.alg) return { reason: 'alg_mismatch', kid };
  if (!key.verifier) return { reason: 'key_disabled', kid };
  return { parsed, kid, key: key as PreparedToken['key'], keysVersion: replica.keysVersion };
}

/** Why a signature failed: only now (the slow path anyway) tell a non-canonical spelling from a wrong one. */
export function signatureRejection(prepared: PreparedToken): Rejection {
  return { reason: isCanonicalBase64url(prepared.parsed.signatureSegment) ? 'bad_signature' : 'malformed', kid: prepared.kid };
}

/** After the signature verified: the claims' types, and what is built once per token. */
export function claimsOf(prepared: PreparedToken): VerifiedToken | Rejection {
  const { parsed, kid, key } = prepared;
  const c = parsed.payload;
  const { exp, nbf, iat, sub, sid, jti, fph } = c;
  if (exp === undefined) return { reason: 'exp_missing', kid };
  if (
    !isNumericDate(exp) ||
    (nbf !== undefined && !isNumericDate(nbf)) ||
    (iat !== undefined && !isNumericDate(iat)) ||
    !optionalString(sub) ||
    !optionalString(sid) ||
    !optionalString(jti) ||
    !optionalString(fph) ||
    (c.iss !== undefined && typeof c.iss !== 'string') ||
    (c.aud !== undefined && typeof c.aud !== 'string' && !(Array.isArray(c.aud) && c.aud.every((a) => typeof a === 'string')))
  ) {
    return { reason: 'claims_invalid', kid };
  }
  const cohort = typeof sub === 'string' ? cohortOf(sub) : -1;
  const allow: Verdict = { decision: 'allow', reasons: [], kid, claims: c, cohort };
  if (sub !== undefined) allow.sub = sub as string;
  if (sid !== undefined) allow.sid = sid as string;
  return {
    kid,
    key,
    claims: c,
    sub,
    sid,
    jti,
    fph,
    exp,
    nbf,
    iat,
    cohort,
    allowCounterKey: allowCounterKey(kid, cohort),
    keysVersion: prepared.keysVersion,
    // The jti itself when there is one: a cached token then hands the limiter the same string, whose hash V8 keeps.
    rateId: jti !== undefined ? (jti as string) : `\u0000${kid}:${sub ?? ''}:${sid ?? ''}:${iat ?? ''}:${exp}`,
    allow,
    passedAt: -1,
    passedFingerprint: undefined,
    passedCritical: false,
    seenMinute: -1,
    markedMinute: -1,
    markedVersion: -1,
  } as VerifiedToken;
}

/** Makes a token's claims and allow verdict immutable before they are shared across requests. */
export function freezeForSharing(v: VerifiedToken): void {
  deepFreeze(v.claims);
  Object.freeze(v.allow.reasons);
  Object.freeze(v.allow);
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const k in value) deepFreeze((value as Record<string, unknown>)[k]);
}

// Counter keys for allows, built once per (kid, cohort): a fresh string per token would be hashed
// again on every count. Bounded by the kids the replica knows times 101 cohorts.
const allowKeys = new Map<string, string[]>();

function allowCounterKey(kid: string, cohort: number): string {
  let byCohort = allowKeys.get(kid);
  if (byCohort === undefined) allowKeys.set(kid, (byCohort = []));
  return (byCohort[cohort + 1] ??= `${kid}\u0000allow\u0000-\u0000${cohort}`);
}

/** RFC 7519 NumericDate, bounded at 9,007,199,254 s (June 2255): anything later is no real expiry. */
function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 9_007_199_254;
}

function optionalString(v: unknown): boolean {
  return v === undefined || typeof v === 'string';
}
