/**
 * A verdict → the answer each gateway understands. Allowed: 200 with identity headers the gateway
 * copies upstream. Otherwise the guard's own HTTP denial (src/guard/http.ts: status, RFC 6750 /
 * RFC 9470 challenge, Retry-After), which Envoy and Traefik pass to the client as it is.
 *
 * nginx's auth_request understands only 2xx, 401 and 403 from its subrequest (anything else
 * becomes a 500), and drops the body: it gets 401 or 403, the intended status in X-Auth-Status
 * and the error in X-Auth-Error, and examples/nginx.conf turns them back into the real answer.
 */
import { httpDenial, type DenialOptions } from '../guard/http.js';
import type { Verdict } from '../guard/types.js';
import type { ServeConfig } from './config.js';

export type Protocol = 'nginx' | 'envoy' | 'traefik';

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export const NGINX_STATUS_HEADER = 'X-Auth-Status';
export const NGINX_ERROR_HEADER = 'X-Auth-Error';

/**
 * 401 where re-authenticating is the remedy (nginx then passes WWW-Authenticate on by itself,
 * even without the error_page mapping); 403 otherwise (block_critical, and the store being down,
 * where a new login would not help).
 */
function nginxStatus(intended: number): 401 | 403 {
  return intended === 401 || intended === 429 ? 401 : 403;
}

/**
 * Claims are signed, not sanitised: a subject may hold any character. Bytes a header cannot
 * carry, and `%` itself, are percent-encoded (RFC 3986), so the value is unambiguous and an
 * issuer's CR/LF cannot split the answer.
 */
export function headerValue(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export class Answerer {
  private readonly names: ServeConfig['identityHeaders'];
  private readonly challenge: DenialOptions;

  constructor(config: ServeConfig) {
    this.names = config.identityHeaders;
    this.challenge = config.challenge;
  }

  answer(protocol: Protocol, verdict: Verdict): Answer {
    const { names } = this;
    const denial = httpDenial(verdict, this.challenge);
    if (denial === null) {
      // All four, empty when the token has no such claim: gateways that copy a header only when
      // the answer has it (Envoy) would otherwise pass on one the client sent under that name.
      const headers: Record<string, string> = {
        [names.decision]: 'allow',
        [names.subject]: verdict.sub === undefined ? '' : headerValue(verdict.sub),
        [names.session]: verdict.sid === undefined ? '' : headerValue(verdict.sid),
        [names.kid]: verdict.kid === undefined ? '' : headerValue(verdict.kid),
      };
      return { status: 200, headers, body: '' };
    }
    // Step-up stays distinguishable from a plain 401, so the gateway can send the user to 2FA.
    const headers: Record<string, string> = { ...denial.headers, [names.decision]: verdict.decision === 'allow' ? 'deny' : verdict.decision };
    if (protocol === 'nginx') {
      headers[NGINX_STATUS_HEADER] = String(denial.status);
      headers[NGINX_ERROR_HEADER] = denial.body.error;
      return { status: nginxStatus(denial.status), headers, body: '' };
    }
    headers['Content-Type'] = 'application/json; charset=utf-8';
    return { status: denial.status, headers, body: JSON.stringify(denial.body) };
  }
}
