import { DEVICE_BAD, DEVICE_CONFIRMED, type Replica } from './replica.js';
import type { TokenRateLimiter } from './rate-limit.js';
import { counterKey, type Alert, type Telemetry } from './telemetry.js';
import type { KidPolicy } from '../state/policy.js';
import { tokenHash, type TokenCache } from './token-cache.js';
import type { Decision, Reason, RequestContext, Verdict } from './types.js';
import { claimsOf, freezeForSharing, prepareToken, signatureRejection, verifyToken, type VerifiedToken } from './verify-token.js';

export interface AuthorizeDeps {
  replica: Replica;
  cache: TokenCache<VerifiedToken>;
  limiter: TokenRateLimiter;
  telemetry: Telemetry;
  now: () => number;
  /** Whether the replica is current enough to decide on (the store answered recently). */
  healthy: () => boolean;
  onAlert: (alert: Alert) => void;
  issuer: string | undefined;
  audience: string | undefined;
  maxTokenBytes: number | undefined;
  clockToleranceSec: number | undefined;
}

/**
 * The guard's decision for one request, in the order of DESIGN.md: token shape and key, then
 * claims, revocations, the compromised-key checks, device binding, and risk. Synchronous and
 * in memory; nothing about a token is trusted before its signature verified.
 */
export function authorize(d: AuthorizeDeps, token: string | undefined, ctx: RequestContext = {}): Verdict {
  const now = d.now();
  const early = precheck(d, token, ctx, now);
  if (early) return early;
  const hash = tokenHash(token!);
  let v = cached(d, token!, hash);
  if (v === undefined) {
    const checked = verifyToken(d.replica, token!, d.maxTokenBytes);
    if (!('claims' in checked)) return finish(d, now, 'deny', checked.reason, checked.kid);
    v = admit(d, token!, hash, checked);
  }
  return decide(d, v, ctx, now);
}

/**
 * The same decision, with an asymmetric signature checked on libuv's thread pool instead of the
 * event loop (see VerificationKey.verifySplitAsync). A cached token, an HS256 token and every
 * rejection before the signature are answered without leaving the event loop.
 */
export async function authorizeAsync(d: AuthorizeDeps, token: string | undefined, ctx: RequestContext = {}): Promise<Verdict> {
  const early = precheck(d, token, ctx, d.now());
  if (early) return early;
  const hash = tokenHash(token!);
  let v = cached(d, token!, hash);
  if (v === undefined) {
    const prepared = prepareToken(d.replica, token!, d.maxTokenBytes);
    if ('reason' in prepared) return finish(d, d.now(), 'deny', prepared.reason, prepared.kid);
    const pooled = prepared.key.verifier.verifySplitAsync;
    if (pooled === undefined) return authorize(d, token, ctx);
    const ok = await pooled(prepared.parsed);
    // The keys changed while the signature was being checked: decide again under the new ones.
    if (prepared.keysVersion !== d.replica.keysVersion) return authorize(d, token, ctx);
    const checked = ok ? claimsOf(prepared) : signatureRejection(prepared);
    if (!('claims' in checked)) return finish(d, d.now(), 'deny', checked.reason, checked.kid);
    v = admit(d, token!, hash, checked);
  }
  return decide(d, v, ctx, d.now());
}

/** Answers that need no token work: the store is down (per the fail mode), or there is no token. */
function precheck(d: AuthorizeDeps, token: string | undefined, ctx: RequestContext, now: number): Verdict | undefined {
  if (!d.healthy() && (d.replica.policy.failMode === 'closed' || ctx.operation === 'critical')) return finish(d, now, 'deny', 'store_unavailable');
  if (!token || typeof token !== 'string') return finish(d, now, 'deny', token ? 'malformed' : 'token_missing');
  return undefined;
}

/** The cached verification of this token, if it is still valid for the current keys. */
function cached(d: AuthorizeDeps, token: string, hash: number): VerifiedToken | undefined {
  const v = d.cache.get(token, hash);
  // Keys changed since this token was verified (disabled, retired, replaced): verify it again.
  return v !== undefined && v.keysVersion === d.replica.keysVersion ? v : undefined;
}

function admit(d: AuthorizeDeps, token: string, hash: number, v: VerifiedToken): VerifiedToken {
  if (d.cache.offer(token, hash, v)) freezeForSharing(v);
  return v;
}

/** Everything after the signature: the time, revocation, compromised-key, binding and risk checks. */
function decide(d: AuthorizeDeps, v: VerifiedToken, ctx: RequestContext, now: number): Verdict {
  const critical = ctx.operation === 'critical';
  const out: { retryAfterSec?: number } = {};
  // Every state-dependent check passed for this token under this replica version and context:
  // only the time- and count-dependent ones can change the answer.
  const remembered = v.passedAt === d.replica.version && v.passedFingerprint === ctx.fingerprint && v.passedCritical === critical && ctx.signals === undefined;
  const reason = remembered ? timeOrRate(d, v, now, out) : denial(d, v, now, ctx, out);
  if (reason) {
    const verdict = finish(d, now, 'deny', reason, v.kid, v);
    if (out.retryAfterSec !== undefined) verdict.retryAfterSec = out.retryAfterSec;
    return verdict;
  }
  if (!remembered) {
    const risk = riskOf(d, v, ctx, critical);
    if (risk) return finish(d, now, risk[0], risk[1], v.kid, v);
    v.passedAt = d.replica.version;
    v.passedFingerprint = ctx.fingerprint;
    v.passedCritical = critical;
  }
  d.telemetry.count(v.allowCounterKey, now);
  // One number compare per request: a session's last-seen time is recorded once a minute per token.
  if (v.seenMinute !== d.telemetry.minute) d.telemetry.sighting(v);
  // During a cutover only: the users of the cut-over cohorts who get in (on a key not cut for them).
  if (v.cohort < d.replica.maxCutover) markUser(d, v, 'allow');
  return v.allow;
}

/**
 * Records the token's user for a cutover's gate, once a minute per token and policy version (a
 * stage's gate counts users under its own version). Under one version a token is either always
 * cut or never, so one pair of fields serves both kinds; an old token replayed a thousand times
 * costs two number compares after the first.
 */
function markUser(d: AuthorizeDeps, v: VerifiedToken, kind: 'cut' | 'allow'): void {
  if (v.sub === undefined || (v.markedMinute === d.telemetry.minute && v.markedVersion === d.replica.policyVersion)) return;
  v.markedMinute = d.telemetry.minute;
  v.markedVersion = d.replica.policyVersion;
  d.telemetry.userMark(kind, v.kid, v.cohort, v.sub, v.markedVersion);
}

/** The checks that depend on the clock or on counting, in the order denial() runs them. */
function timeOrRate(d: AuthorizeDeps, v: VerifiedToken, now: number, out: { retryAfterSec?: number }): Reason | undefined {
  const kidPolicy = d.replica.policy.kids[v.kid];
  return timeDenial(d, v, now, kidPolicy) ?? rateDenial(d, v, now, kidPolicy, out);
}

function timeDenial(d: AuthorizeDeps, v: VerifiedToken, now: number, kidPolicy: KidPolicy | undefined): Reason | undefined {
  const meta = v.key.meta;
  const policy = d.replica.policy;
  const nowSec = now / 1000;
  const tol = d.clockToleranceSec ?? policy.clockToleranceSec;
  if (meta.state === 'retiring' && (meta.verifyUntil === null || now > meta.verifyUntil)) return 'key_retired';
  // Time claims: the tolerance covers honest clock skew only; at each boundary the stricter side wins.
  if (v.exp <= nowSec - tol) return 'expired';
  if (v.nbf !== undefined && v.nbf > nowSec + tol) return 'not_yet_valid';
  if (v.iat !== undefined && v.iat > nowSec + tol) return 'iat_in_future';
  if (v.exp - (v.iat ?? nowSec) > policy.maxLifetimeSec) return 'lifetime_too_long';
  if (kidPolicy?.maxAgeSec !== undefined) {
    if (v.iat === undefined) return 'iat_missing';
    if (nowSec - v.iat > kidPolicy.maxAgeSec) return 'too_old';
  }
  return undefined;
}

/** Per-token operation limit for tokens of a tightened key; every operation counts, critical ones too. */
function rateDenial(d: AuthorizeDeps, v: VerifiedToken, now: number, kidPolicy: KidPolicy | undefined, out: { retryAfterSec?: number }): Reason | undefined {
  if (!kidPolicy?.rateLimit) return undefined;
  const wait = d.limiter.hit(v.rateId, kidPolicy.rateLimit.ops, kidPolicy.rateLimit.windowSec, now);
  if (wait <= 0) return undefined;
  out.retryAfterSec = wait;
  return 'rate_limited';
}

function denial(d: AuthorizeDeps, v: VerifiedToken, now: number, ctx: RequestContext, out: { retryAfterSec?: number }): Reason | undefined {
  const { replica } = d;
  const policy = replica.policy;
  const kidPolicy = policy.kids[v.kid];
  const nowSec = now / 1000;
  const tol = d.clockToleranceSec ?? policy.clockToleranceSec;

  if (v.key.meta.state === 'retiring' && (v.key.meta.verifyUntil === null || now > v.key.meta.verifyUntil)) return 'key_retired';
  const timed = timeDenial(d, v, now, kidPolicy);
  if (timed) return timed;
  if (d.issuer !== undefined && v.claims.iss !== d.issuer) return 'issuer_mismatch';
  const aud = v.claims.aud;
  if (d.audience !== undefined && !(aud === d.audience || (Array.isArray(aud) && aud.includes(d.audience)))) return 'audience_mismatch';

  // Revocations, by the verified claims only.
  const rev = replica.revocations;
  if (v.jti !== undefined && isLive(rev.jti.get(v.jti), nowSec)) return 'revoked_jti';
  if (v.sid !== undefined && isLive(rev.sid.get(v.sid), nowSec)) return 'revoked_session';
  if ((v.fph !== undefined && isLive(rev.fph.get(v.fph), nowSec)) || (ctx.fingerprint !== undefined && isLive(rev.fph.get(ctx.fingerprint), nowSec))) {
    return 'revoked_device';
  }
  const userMark = v.sub !== undefined ? replica.watermarks.user.get(v.sub) : undefined;
  const kidMark = replica.watermarks.kid.get(v.kid);
  const cohortMark = replica.cohortMark(v.kid, v.cohort);
  if (userMark !== undefined || kidMark !== undefined || cohortMark > 0) {
    // A token that does not say when it was issued cannot prove it is newer than a watermark.
    if (v.iat === undefined) return 'iat_missing';
    if (userMark !== undefined && v.iat < userMark) return 'revoked_user';
    if (kidMark !== undefined && v.iat < kidMark) return 'revoked_kid';
    if (v.iat < cohortMark) return 'revoked_cohort';
  }

  // A compromised key: anyone may have minted this token. Check it against what was really issued.
  if (v.key.meta.compromised) {
    const forged = forgeryOf(d, v, ctx, tol);
    if (forged) {
      alert(d, v, 'forged_token', forged, now, ctx.fingerprint);
      return forged;
    }
  }
  // Judged after the forgery checks, so that key_cutover counts only tokens that look legitimate:
  // the cutover's health gate reads it, and an attacker's forgeries must not make it roll back.
  if (kidPolicy?.cutoverPercent && (v.cohort < 0 || v.cohort < kidPolicy.cutoverPercent)) return 'key_cutover';
  const limited = rateDenial(d, v, now, kidPolicy, out);
  if (limited) return limited;

  // Device binding: a valid signature with the wrong fingerprint is a stolen token or a re-leaked key.
  if (v.fph !== undefined) {
    if (ctx.fingerprint === undefined) return 'fingerprint_missing';
    if (!sameString(v.fph, ctx.fingerprint)) {
      alert(d, v, 'fingerprint_mismatch', 'fingerprint_mismatch', now, ctx.fingerprint);
      return 'fingerprint_mismatch';
    }
  }
  return undefined;
}

function forgeryOf(d: AuthorizeDeps, v: VerifiedToken, ctx: RequestContext, tol: number): Reason | undefined {
  const meta = v.key.meta;
  if (v.iat === undefined) return 'iat_missing';
  // Issued after the key stopped signing: the service could not have made it.
  if (meta.retiredAt !== null && v.iat > meta.retiredAt / 1000 + tol) return 'forged_after_retirement';
  // Not a session the service issued. Without a ledger for this key nothing can be judged.
  const ledger = v.key.ledger;
  if (ledger && (ledger.sids.size > 0 || ledger.subs.size > 0)) {
    const known = v.sid !== undefined ? ledger.sids.has(v.sid) : v.sub !== undefined && ledger.subs.has(v.sub);
    if (!known) return 'forged_unknown_session';
  }
  // From a device this user never used (only judged when the user has registered devices).
  if (d.replica.policy.forgery.unknownDevice && ctx.fingerprint !== undefined && v.sub !== undefined) {
    const devices = d.replica.devices.get(v.sub);
    if (devices && devices.size > 0 && !devices.has(ctx.fingerprint)) return 'forged_unknown_device';
  }
  return undefined;
}

function riskOf(d: AuthorizeDeps, v: VerifiedToken, ctx: RequestContext, critical: boolean): [Decision, Reason] | undefined {
  const policy = d.replica.policy;
  if (!policy.blockCritical.dirtyDevice && !policy.stepUp.badReputation && !policy.stepUp.newDevice) return undefined;
  const devices = v.sub !== undefined ? d.replica.devices.get(v.sub) : undefined;
  const fp = ctx.fingerprint;
  const known = fp !== undefined ? devices?.get(fp) : undefined;
  const dirty = ctx.signals?.reputation === 'bad' || (known !== undefined && (known & DEVICE_BAD) !== 0);
  if (policy.blockCritical.dirtyDevice && critical && dirty) {
    // A clean account: none of its other devices is known to be bad.
    let clean = true;
    for (const [other, bits] of devices ?? []) if (other !== fp && (bits & DEVICE_BAD) !== 0) clean = false;
    if (clean) return ['block_critical', 'dirty_device'];
  }
  // The service's own signal wins; otherwise a device is new until a second factor confirmed it
  // (being seen at a login is not enough: the login may have used stolen credentials).
  const isNew = typeof ctx.signals?.newDevice === 'boolean' ? ctx.signals.newDevice : fp !== undefined && (known === undefined || (known & DEVICE_CONFIRMED) === 0);
  if (policy.stepUp.badReputation && dirty) return ['step_up', 'bad_reputation'];
  if (policy.stepUp.newDevice && isNew) return ['step_up', 'new_device'];
  return undefined;
}

function finish(d: AuthorizeDeps, now: number, decision: Decision, reason: Reason, kid?: string, v?: VerifiedToken): Verdict {
  d.telemetry.count(counterKey(kid, decision, reason, v?.cohort), now);
  if (reason === 'key_cutover' && v) markUser(d, v, 'cut');
  const verdict: Verdict = { decision, reasons: [reason] };
  if (kid !== undefined) verdict.kid = kid;
  if (v) {
    verdict.claims = v.claims;
    if (v.sub !== undefined) verdict.sub = v.sub;
    if (v.sid !== undefined) verdict.sid = v.sid;
    verdict.cohort = v.cohort;
  }
  return verdict;
}

function alert(d: AuthorizeDeps, v: VerifiedToken, kind: Alert['kind'], reason: string, now: number, fingerprint: string | undefined): void {
  const a: Alert = { kind, reason, sub: v.sub, sid: v.sid, jti: v.jti, kid: v.kid, fph: fingerprint ?? v.fph, at: now };
  d.telemetry.alert(a);
  d.onAlert(a);
}

function isLive(expiresAtSec: number | undefined, nowSec: number): boolean {
  return expiresAtSec !== undefined && expiresAtSec > nowSec;
}

/** Compares without an early exit, so timing does not reveal how much of a fingerprint matched. */
function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
