/**
 * Express (4 and 5) middleware. Structural types only: the guard has no runtime dependency on
 * express, and the middleware also runs on plain `node:http` (it answers through
 * `statusCode`/`setHeader`/`end`, which every ServerResponse has).
 *
 *   app.use(guardMiddleware(guard, { cookie: '__Secure-access' }));
 *   app.get('/me', (req, res) => res.json({ sub: req.jwtir.sub }));
 */
import { checkAdapterOptions, guardRequest, type Authorizer, type GuardAdapterOptions, type RequestLike } from '../http.js';
import type { Verdict } from '../types.js';

/** What the middleware reads, and the verdict it leaves for the handlers on allow. */
export interface GuardedRequest extends RequestLike {
  method: string;
  jwtir?: Verdict;
}

export interface DenialResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

export type ExpressGuardOptions<Req extends GuardedRequest = GuardedRequest> = GuardAdapterOptions<Req>;

export function guardMiddleware<Req extends GuardedRequest = GuardedRequest>(
  guard: Authorizer,
  opts: ExpressGuardOptions<Req> = {},
): (req: Req, res: DenialResponse, next: (err?: unknown) => void) => void {
  // Bad realm/ACR/cookie name fails at startup, not on the first denied request.
  checkAdapterOptions(opts);
  return function jwtirGuard(req, res, next) {
    let outcome: ReturnType<typeof guardRequest>;
    try {
      outcome = guardRequest(guard, opts, req);
    } catch (err) {
      // A throwing guard or hook goes to the error handler (500): never to next() without an error.
      next(err);
      return;
    }
    if (!outcome.denial) {
      req.jwtir = outcome.verdict;
      next();
      return;
    }
    const { status, headers, body } = outcome.denial;
    res.statusCode = status;
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(body));
  };
}
