/** A compact JWS (two dots) or JWE (four dots) of base64url segments, its header a JSON object (`eyJ` is `{"`). */
const COMPACT = /^(?:bearer\s+)?eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){2}(?:(?:\.[A-Za-z0-9_-]*){2})?$/i;

/**
 * Whether a value is a token pasted where an id belongs. Such a value blacklists nothing useful,
 * and storing or printing it would spread a credential: it is refused without being repeated.
 */
export function looksLikeToken(value: unknown): boolean {
  return typeof value === 'string' && value.length > 16 && COMPACT.test(value.trim());
}
