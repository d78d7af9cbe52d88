/**
 * Fastify (4 and 5) `onRequest` hook. Structural types only: no runtime dependency on fastify.
 *
 *   app.decorateRequest('jwtir', null); // optional: keeps the request object's shape stable
 *   app.addHook('onRequest', guardHook(guard, { cookie: '__Secure-access' }));
 *
 * onRequest runs before the body is parsed, so a denied request costs no body parsing.
 */
import { checkAdapterOptions, guardRequest, type Authorizer, type GuardAdapterOptions, type RequestLike } from '../http.js';
import type { Verdict } from '../types.js';

export interface GuardedFastifyRequest extends RequestLike {
  method: string;
  jwtir?: Verdict | null;
}

export interface DenialReply {
  code(statusCode: number): DenialReply;
  headers(values: Record<string, string>): DenialReply;
  send(payload?: unknown): DenialReply;
}

export type FastifyGuardOptions<Req extends GuardedFastifyRequest = GuardedFastifyRequest> = GuardAdapterOptions<Req>;

export function guardHook<Req extends GuardedFastifyRequest = GuardedFastifyRequest>(
  guard: Authorizer,
  opts: FastifyGuardOptions<Req> = {},
): (request: Req, reply: DenialReply) => Promise<DenialReply | undefined> {
  checkAdapterOptions(opts);
  // Async hook: a throw rejects the promise, which Fastify turns into a 500 (fail closed).
  return async function jwtirGuard(request, reply) {
    const { verdict, denial } = guardRequest(guard, opts, request);
    if (!denial) {
      request.jwtir = verdict;
      return undefined;
    }
    // Returning the reply after send() is what stops Fastify from running the route.
    return reply.code(denial.status).headers(denial.headers).send(denial.body);
  };
}
