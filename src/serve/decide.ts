/**
 * One check request → the guard's verdict. The protocol adapters (protocols.ts) say what the
 * original method and target were; this reads the token, the fingerprint and the operation class.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { bearerToken, cookieValue } from '../guard/http.js';
import type { RequestContext, Verdict } from '../guard/types.js';
import type { ServeConfig } from './config.js';
import type { Classifier } from './rules.js';

/** The part of a guard the server uses (the real guard; tests may pass their own). */
export interface AsyncAuthorizer {
  authorizeAsync(token: string | undefined, ctx?: RequestContext): Promise<Verdict>;
}

export interface CheckRequest {
  /** The original request's method and target (path and query), as the gateway passed them. */
  method: string | undefined;
  target: string | undefined;
  headers: IncomingHttpHeaders;
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export class Decider {
  private readonly cookie: string | undefined;
  private readonly useAuthorization: boolean;
  private readonly fingerprintHeader: string | undefined;

  constructor(
    private readonly guard: AsyncAuthorizer,
    config: ServeConfig,
    private readonly classifier: Classifier,
  ) {
    this.cookie = config.token.cookie;
    this.useAuthorization = config.token.authorization;
    this.fingerprintHeader = config.fingerprintHeader;
  }

  /** The token: `Authorization: Bearer` first, then the cookie (as the guard's other adapters do). */
  token(headers: IncomingHttpHeaders): string | undefined {
    const bearer = this.useAuthorization ? bearerToken(headers.authorization) : undefined;
    if (bearer !== undefined || this.cookie === undefined) return bearer;
    return cookieValue(first(headers.cookie), this.cookie);
  }

  decide(req: CheckRequest): Promise<Verdict> {
    const token = this.token(req.headers);
    // The guard answers token_missing (and counts it), like any other decision.
    if (token === undefined) return this.guard.authorizeAsync(undefined, {});
    const ctx: RequestContext = { operation: this.classifier.operation(req.method, req.target) };
    if (this.fingerprintHeader !== undefined) {
      const fp = first(req.headers[this.fingerprintHeader]);
      if (fp) ctx.fingerprint = fp;
    }
    return this.guard.authorizeAsync(token, ctx);
  }
}
