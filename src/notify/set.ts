import { CompactSign } from 'jose';
import type { SigningKey } from '../guard/sign.js';
import type { SetEventName } from './events.js';
import { judgeStatus, type Verdict } from './http.js';


/** An asymmetric key: a SET signed with a shared secret could be forged by every holder of it. */
export type SetSigningKey = Extract<SigningKey, { key: unknown }>;

/**
 * The event-specific claims, the same for every subject of a step. `at` is the event time in
 * epoch seconds; the operator's reason goes to `reason_admin` (receivers show it to their staff).
 */
export function eventClaims(event: SetEventName, o: { at: number; reason: string | null; credType: string | null }): Record<string, unknown> {
  const reason = o.reason ? { reason_admin: { en: o.reason } } : {};
  if (event === 'session-revoked') return { initiating_entity: 'admin', event_timestamp: o.at, ...reason };
  return { credential_type: o.credType, event_timestamp: o.at, ...reason };
}

/** Signs a claims set as a Security Event Token (RFC 8417: `typ: secevent+jwt`, no `exp`). */
export async function signSet(key: SetSigningKey, claims: Record<string, unknown>): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'secevent+jwt' }).sign(key.key);
}

/**
 * RFC 8935 §2.2-2.4: 202 means accepted (any 2xx is taken as delivered); a 400 carries
 * `{"err", "description"}` and is final; other answers are judged like any webhook's.
 */
export function judgeSetResponse(status: number, body: string): Verdict {
  if (status !== 400) return judgeStatus(status, body);
  try {
    const parsed = JSON.parse(body) as { err?: unknown; description?: unknown };
    if (typeof parsed.err === 'string') {
      const description = typeof parsed.description === 'string' && parsed.description ? ` (${parsed.description.slice(0, 200)})` : '';
      return { kind: 'permanent', reason: `the receiver rejected the SET: ${parsed.err}${description}` };
    }
  } catch {
    /* not the RFC 8935 error format: reported as a plain 400 below */
  }
  return judgeStatus(status, body);
}
