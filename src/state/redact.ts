import { maskUrl } from '../config/mask.js';

const SECRET_NAME = /secret|password|passwd|private|kek|token|credential|^d$|^p$|^q$|^dp$|^dq$|^qi$|^k$/i;
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i;

/**
 * A copy of `value` safe for the audit trail and logs: fields whose names say they hold a
 * secret (and private JWK members d, p, q, dp, dq, qi, k) become "[redacted]", and passwords
 * inside connection URLs are masked. Redaction is by name so it also covers fields added later.
 */
export function redact<T>(value: T): T {
  return walk(value) as T;
}

function walk(value: unknown): unknown {
  if (typeof value === 'string') return URL_WITH_PASSWORD.test(value) ? maskUrl(value) : value;
  if (Array.isArray(value)) return value.map(walk);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = SECRET_NAME.test(key) && inner !== undefined && inner !== null && typeof inner !== 'boolean' ? '[redacted]' : walk(inner);
    }
    return out;
  }
  return value;
}
