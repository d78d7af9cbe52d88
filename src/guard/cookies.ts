/**
 * Set-Cookie values for refresh tokens (playbook B2): `HttpOnly` (no script reads it, so an XSS
 * cannot exfiltrate it), `Secure` (never over plain HTTP), `SameSite=Strict` (no cross-site request
 * carries it, so no CSRF on the refresh endpoint), and a narrow `Path` (only the refresh endpoint
 * ever receives it, not every API call and not every log line that records request cookies).
 *
 * Everything is validated and nothing is encoded: a value that needs encoding is not a token we
 * issued, and a name or attribute with `;`, CR or LF would let a caller inject attributes.
 */

// RFC 6265 §4.1.1: cookie-name = token (RFC 9110 tchar).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E (no space, quote, comma, semicolon, backslash).
const COOKIE_OCTETS = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;
// path-value = *av-octet (any CHAR except CTLs or ";"); it must be absolute to mean anything.
const PATH = /^\/[\x20-\x3A\x3C-\x7E]*$/;
const DOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
// RFC 6265bis: user agents cap Max-Age at 400 days; asking for more is a configuration mistake.
const MAX_AGE_LIMIT = 400 * 24 * 3600;

export interface CookieScope {
  /** The refresh endpoint's path, e.g. `/auth/refresh`. `/` is refused. */
  path: string;
  /** Omit it: a Domain attribute sends the cookie to every subdomain too. */
  domain?: string;
}

export function assertCookieName(name: string): void {
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw new TypeError(`cookie name must be an RFC 6265 token (letters, digits and !#$%&'*+-.^_\`|~)`);
  }
}

function attributes(name: string, scope: CookieScope): string {
  assertCookieName(name);
  const { path, domain } = scope;
  if (typeof path !== 'string' || path === '' || path === '/') {
    throw new TypeError('refresh cookies must be narrow: give the refresh endpoint path, not "/" or ""');
  }
  if (!PATH.test(path)) throw new TypeError('cookie path must start with "/" and contain no control characters or ";"');
  // Browsers match prefixes case-insensitively (RFC 6265bis). `__Host-` demands Path=/ and no
  // Domain, which is exactly what a refresh cookie must not have.
  if (/^__host-/i.test(name)) {
    throw new TypeError('a __Host- cookie requires Path=/, but refresh cookies must be narrow: use the __Secure- prefix instead');
  }
  // `__Secure-` only demands the Secure attribute, which is always set below.
  let attrs = `HttpOnly; Secure; SameSite=Strict; Path=${path}`;
  if (domain !== undefined) {
    if (typeof domain !== 'string' || !DOMAIN.test(domain)) throw new TypeError('cookie domain must be a host name');
    attrs += `; Domain=${domain}`;
  }
  return attrs;
}

/** `Set-Cookie` value for a refresh token. */
export function refreshCookie(name: string, value: string, opts: CookieScope & { maxAgeSec: number }): string {
  const attrs = attributes(name, opts);
  if (typeof value !== 'string' || !COOKIE_OCTETS.test(value)) {
    throw new TypeError('cookie value must be non-empty RFC 6265 cookie-octets (no space, quote, comma, semicolon or backslash)');
  }
  const { maxAgeSec } = opts;
  // Max-Age=0 would delete the cookie on arrival; use clearCookie for that.
  if (!Number.isSafeInteger(maxAgeSec) || maxAgeSec < 1 || maxAgeSec > MAX_AGE_LIMIT) {
    throw new RangeError(`maxAgeSec must be an integer from 1 to ${MAX_AGE_LIMIT} (400 days, the browsers' cap)`);
  }
  return `${name}=${value}; ${attrs}; Max-Age=${maxAgeSec}`;
}

/** `Set-Cookie` value that deletes the cookie: same name, Path and Domain, or the browser keeps it. */
export function clearCookie(name: string, opts: CookieScope): string {
  return `${name}=; ${attributes(name, opts)}; Max-Age=0`;
}
