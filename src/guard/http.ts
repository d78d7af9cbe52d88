/**
 * The guard's HTTP vocabulary: a Verdict becomes a status, a challenge and a small JSON body;
 * a request's headers become a token and a RequestContext. Framework-neutral, so the Express and
 * Fastify adapters (and any other edge) answer identically.
 *
 * What never leaves here: claims, subject, session, kid, token bytes. A denial tells the client
 * what to do next (re-authenticate, step up, wait), not what the guard learned about the token.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { assertCookieName } from './cookies.js';
import type { Reason, RequestContext, Verdict } from './types.js';

export interface DenialOptions {
  /** The protection space named in the challenge. Default `api`. */
  realm?: string;
  /** RFC 9470 `acr_values` for step-up: the ACRs your authorization server knows. Default `mfa`. */
  stepUpAcr?: string;
  /** RFC 9470 `max_age` for step-up: how recent the second factor must be, in seconds. */
  stepUpMaxAgeSec?: number;
}

export interface HttpDenial {
  status: number;
  headers: Record<string, string>;
  body: { error: string; reasons: Reason[] };
}

const DEFAULT_REALM = 'api';
const DEFAULT_ACR = 'mfa';
// The store is down for everyone; one-second retries from every client would hammer it on return.
const STORE_RETRY_SEC = 5;
// RFC 9111 §1.2.2: delta-seconds beyond 2^31 are sent as 2^31 (and String(1e21) is not digits).
const MAX_DELTA_SECONDS = 2147483648;
const MAX_DESCRIPTION = 200;

// RFC 6750 §3: error_description (and we hold acr_values to the same) MUST NOT contain characters
// outside %x20-21 / %x23-5B / %x5D-7E, so quotes and backslashes cannot even be escaped: drop them.
const NOT_STRICT = /[^\x20\x21\x23-\x5B\x5D-\x7E]/g;

/** Runtime values (reasons) are stripped to the strict set; they never split or break the header. */
const strict = (value: string): string => `"${value.replace(NOT_STRICT, '').slice(0, MAX_DESCRIPTION)}"`;

/** RFC 9110 quoted-string for the realm: `"` and `\` become quoted-pairs. */
const quoted = (value: string): string => `"${value.replace(/["\\]/g, '\\$&')}"`;

/**
 * Configuration is checked, not silently repaired: a realm with CR/LF or an ACR with a quote is a
 * deployment mistake that should fail at startup (adapters call this when they are created).
 */
export function checkDenialOptions(opts: DenialOptions = {}): void {
  if (opts.realm !== undefined && (typeof opts.realm !== 'string' || /[^\x20-\x7E]/.test(opts.realm))) {
    throw new TypeError('realm must be printable ASCII (no control characters, CR or LF)');
  }
  if (opts.stepUpAcr !== undefined && (typeof opts.stepUpAcr !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/.test(opts.stepUpAcr))) {
    throw new TypeError('stepUpAcr must be space-separated ACR values without quotes, backslashes or control characters');
  }
  const maxAge = opts.stepUpMaxAgeSec;
  if (maxAge !== undefined && !(Number.isSafeInteger(maxAge) && maxAge >= 0)) {
    throw new RangeError('stepUpMaxAgeSec must be a non-negative integer number of seconds');
  }
}

function retryAfter(sec: number | undefined, fallback: number): string {
  const n = typeof sec === 'number' && Number.isFinite(sec) ? Math.ceil(sec) : fallback;
  return String(Math.min(MAX_DELTA_SECONDS, Math.max(1, n)));
}

/** The HTTP answer for a verdict, or null when the request may proceed. */
export function httpDenial(verdict: Verdict, opts: DenialOptions = {}): HttpDenial | null {
  if (verdict.decision === 'allow') return null;
  checkDenialOptions(opts);
  // Copy, and only strings: the body is JSON, but a non-array here must not throw on the request path.
  const reasons = (Array.isArray(verdict.reasons) ? verdict.reasons : []).filter((r): r is Reason => typeof r === 'string');
  const realm = `Bearer realm=${quoted(opts.realm ?? DEFAULT_REALM)}`;
  const deny = (status: number, error: string, headers: Record<string, string>): HttpDenial => ({
    status,
    // Denials depend on who asks; no shared cache may store or replay them.
    headers: { 'Cache-Control': 'no-store', ...headers },
    body: { error, reasons },
  });

  if (verdict.decision === 'step_up') {
    // RFC 9470 §3: the client re-runs the authorization request with these acr_values/max_age.
    let challenge = `${realm}, error="insufficient_user_authentication", error_description="a second factor is required", acr_values=${strict(opts.stepUpAcr ?? DEFAULT_ACR)}`;
    if (opts.stepUpMaxAgeSec !== undefined) challenge += `, max_age="${opts.stepUpMaxAgeSec}"`;
    return deny(401, 'insufficient_user_authentication', { 'WWW-Authenticate': challenge });
  }
  if (verdict.decision === 'block_critical') {
    // 403, not 401: re-authenticating does not help; the account holder must confirm (A2). Reads still pass.
    const challenge = `${realm}, error="insufficient_scope", error_description="the account holder must confirm before critical operations are allowed"`;
    return deny(403, 'insufficient_scope', { 'WWW-Authenticate': challenge });
  }

  // `deny`, and any decision this version does not know: fail closed.
  if (reasons.includes('store_unavailable')) {
    // Not the client's fault and no challenge: its token may be fine once the store is back.
    return deny(503, 'temporarily_unavailable', { 'Retry-After': retryAfter(verdict.retryAfterSec, STORE_RETRY_SEC) });
  }
  if (reasons.includes('rate_limited')) {
    // invalid_token rather than no error: a legitimate holder of an old-key token does best to
    // refresh (getting a new-key token without the limit); an attacker has nothing to refresh with.
    const challenge = `${realm}, error="invalid_token", error_description="rate limit exceeded for this token"`;
    return deny(429, 'rate_limited', { 'Retry-After': retryAfter(verdict.retryAfterSec, 1), 'WWW-Authenticate': challenge });
  }
  if (reasons.includes('token_missing')) {
    // RFC 6750 §3.1: a request without authentication gets no error code, just the challenge.
    return deny(401, 'authentication_required', { 'WWW-Authenticate': realm });
  }
  const description = strict(reasons.length ? `token rejected: ${reasons.join(', ')}` : 'token rejected');
  return deny(401, 'invalid_token', { 'WWW-Authenticate': `${realm}, error="invalid_token", error_description=${description}` });
}

/**
 * The token of `Authorization: Bearer <token>` (RFC 6750 §2.1): scheme case-insensitive, exactly
 * one space, one b64token. Anything else is not a bearer credential (undefined), never a guess.
 */
export function bearerToken(authorizationHeader: string | undefined): string | undefined {
  if (typeof authorizationHeader !== 'string') return undefined;
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorizationHeader);
  return m?.[1];
}

/**
 * The first cookie named exactly `name` (browsers send the longest-path cookie first, so a narrow
 * cookie wins over one an attacker planted on `/`). No URL-decoding: a second spelling of the same
 * token is a second thing to reason about. Empty values count as absent.
 */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (typeof cookieHeader !== 'string') return undefined;
  for (const pair of cookieHeader.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    return value === '' ? undefined : value;
  }
  return undefined;
}

// --- What both adapters share: one place decides how a request becomes a verdict. ---

export type Operation = NonNullable<RequestContext['operation']>;

/** Anything with the guard's request-path method: the real guard, or a test double. */
export interface Authorizer {
  authorize(token: string, ctx: RequestContext): Verdict;
}

export interface GuardAdapterOptions<Req> extends DenialOptions {
  /** Default: `read` for GET/HEAD/OPTIONS/TRACE, `critical` for everything else. */
  operation?: (req: Req) => Operation;
  /** Default: the `x-device-fingerprint` header, which your fraud protection/edge must set (not the client). */
  fingerprint?: (req: Req) => string | undefined;
  signals?: (req: Req) => RequestContext['signals'];
  /** Also accept the token from this cookie when there is no Bearer header. */
  cookie?: string;
  /** Every verdict, allow or not (metrics, logs). If it throws, the request fails (closed). */
  onVerdict?: (verdict: Verdict, req: Req) => void;
}

export function checkAdapterOptions(opts: GuardAdapterOptions<never>): void {
  checkDenialOptions(opts);
  if (opts.cookie !== undefined) assertCookieName(opts.cookie);
}

// RFC 9110 §9.2.1 safe methods. The brief names POST/PUT/PATCH/DELETE as critical; any other
// method (WebDAV MOVE, custom verbs) is treated as critical too, because misfiling a write as a
// read would let a dirty device past block_critical.
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

export function defaultOperation(method: string | undefined): Operation {
  return SAFE_METHODS.has((method ?? '').toUpperCase()) ? 'read' : 'critical';
}

/** Node joins most repeated headers; a few arrive as arrays. Take the first value. */
const header = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
};

export interface RequestLike {
  method?: string;
  headers: IncomingHttpHeaders;
}

/**
 * Token → context → verdict → denial. A request without a usable token never reaches the guard:
 * it is answered as `token_missing` (a malformed Authorization header counts as missing, so it
 * cannot be smuggled to the verifier as "x y").
 */
export function guardRequest<Req extends RequestLike>(
  guard: Authorizer,
  opts: GuardAdapterOptions<Req>,
  req: Req,
): { verdict: Verdict; denial: HttpDenial | null } {
  const token = bearerToken(header(req.headers, 'authorization')) ?? (opts.cookie ? cookieValue(header(req.headers, 'cookie'), opts.cookie) : undefined);
  let verdict: Verdict;
  if (token === undefined) {
    verdict = { decision: 'deny', reasons: ['token_missing'] };
  } else {
    // Anything but an explicit `read` is critical: a buggy classifier must not open writes.
    const operation: Operation = (opts.operation ? opts.operation(req) : defaultOperation(req.method)) === 'read' ? 'read' : 'critical';
    const fingerprint = opts.fingerprint ? opts.fingerprint(req) : header(req.headers, 'x-device-fingerprint') || undefined;
    const ctx: RequestContext = { operation };
    if (fingerprint !== undefined) ctx.fingerprint = fingerprint;
    const signals = opts.signals?.(req);
    if (signals !== undefined) ctx.signals = signals;
    verdict = guard.authorize(token, ctx);
  }
  opts.onVerdict?.(verdict, req);
  return { verdict, denial: httpDenial(verdict, opts) };
}
