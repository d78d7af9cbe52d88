/**
 * The adapters against REAL Express 5 and Fastify 5 servers, over real HTTP. The guard is a fake
 * whose verdict is chosen by the token string: this is the adapter's unit boundary (the real guard
 * has its own tests), so what is checked here is the translation, request → ctx and verdict → HTTP.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import express from 'express';
import Fastify from 'fastify';
import { guardMiddleware } from '../../src/guard/adapters/express.js';
import { guardHook } from '../../src/guard/adapters/fastify.js';
import type { Authorizer } from '../../src/guard/http.js';
import type { RequestContext, Verdict } from '../../src/guard/types.js';
import { ROOT } from '../helpers/cli.js';

const CLAIMS = { sub: 'user-4711', email: 'alice@example.com' };

/** Fake guard: the token names the verdict; every call is recorded. */
function fakeGuard(): Authorizer & { calls: { token: string; ctx: RequestContext }[] } {
  const calls: { token: string; ctx: RequestContext }[] = [];
  return {
    calls,
    authorize(token, ctx): Verdict {
      calls.push({ token, ctx });
      switch (token) {
        case 'good':
          return { decision: 'allow', reasons: [], sub: CLAIMS.sub, claims: CLAIMS };
        case 'expired':
          return { decision: 'deny', reasons: ['expired'], sub: CLAIMS.sub };
        case 'stepup':
          return { decision: 'step_up', reasons: ['new_device'], sub: CLAIMS.sub, claims: CLAIMS };
        case 'dirty': // A2: reads pass, critical operations are blocked
          return ctx.operation === 'critical'
            ? { decision: 'block_critical', reasons: ['dirty_device'], claims: CLAIMS }
            : { decision: 'allow', reasons: [], claims: CLAIMS };
        case 'rate':
          return { decision: 'deny', reasons: ['rate_limited'], retryAfterSec: 7 };
        case 'boom':
          throw new Error('guard exploded');
        default:
          return { decision: 'deny', reasons: ['bad_signature'] };
      }
    },
  };
}

interface Server {
  url: string;
  close(): Promise<void>;
}

const opts = (onVerdict: (v: Verdict) => void) => ({ cookie: '__Secure-access', realm: 'bank', onVerdict });

async function startExpress(guard: Authorizer, onVerdict: (v: Verdict) => void): Promise<Server> {
  const app = express();
  app.use(guardMiddleware(guard, opts(onVerdict)));
  // The handler echoes what the middleware left on the request.
  app.all('/{*any}', (req, res) => {
    res.json({ handled: true, jwtir: (req as { jwtir?: Verdict }).jwtir });
  });
  // Quiet error handler: a throwing guard must end in 500, not in the handler.
  app.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: 'internal' });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function startFastify(guard: Authorizer, onVerdict: (v: Verdict) => void): Promise<Server> {
  const app = Fastify({ logger: false });
  app.decorateRequest('jwtir', null);
  app.addHook('onRequest', guardHook(guard, opts(onVerdict)));
  app.all('/*', async (request) => ({ handled: true, jwtir: request.jwtir }));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, close: () => app.close() };
}

declare module 'fastify' {
  interface FastifyRequest {
    jwtir: Verdict | null;
  }
}

describe.each([
  ['express 5', startExpress],
  ['fastify 5', startFastify],
])('%s adapter', (_name, start) => {
  const guard = fakeGuard();
  const verdicts: Verdict[] = [];
  let server: Server;
  beforeAll(async () => {
    server = await start(guard, (v) => verdicts.push(v));
  });
  afterAll(() => server.close());
  beforeEach(() => {
    guard.calls.length = 0;
    verdicts.length = 0;
  });

  const call = async (token: string | undefined, init: RequestInit & { path?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
    const res = await fetch(`${server.url}${init.path ?? '/account'}`, { ...init, headers });
    const text = await res.text();
    return { res, text, json: JSON.parse(text) as Record<string, unknown> };
  };

  it('allow: the handler runs and sees req.jwtir', async () => {
    const { res, json } = await call('good');
    expect(res.status).toBe(200);
    expect(json).toEqual({ handled: true, jwtir: { decision: 'allow', reasons: [], sub: CLAIMS.sub, claims: CLAIMS } });
    expect(guard.calls).toEqual([{ token: 'good', ctx: { operation: 'read' } }]);
    expect(verdicts.map((v) => v.decision)).toEqual(['allow']);
  });

  it('deny: 401 invalid_token, no claims in the answer, handler not run', async () => {
    const { res, text, json } = await call('expired');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer realm="bank", error="invalid_token", error_description="token rejected: expired"',
    );
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(json).toEqual({ error: 'invalid_token', reasons: ['expired'] });
    expect(text).not.toContain(CLAIMS.sub);
  });

  it('step_up: 401 with the RFC 9470 challenge', async () => {
    const { res, text, json } = await call('stepup');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer realm="bank", error="insufficient_user_authentication", error_description="a second factor is required", acr_values="mfa"',
    );
    expect(json).toEqual({ error: 'insufficient_user_authentication', reasons: ['new_device'] });
    expect(text).not.toContain(CLAIMS.email);
  });

  it('block_critical: 403 on a critical operation, while reads from the same device still pass', async () => {
    const post = await call('dirty', { method: 'POST', path: '/transfer', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.res.status).toBe(403);
    expect(post.res.headers.get('www-authenticate')).toBe(
      'Bearer realm="bank", error="insufficient_scope", error_description="the account holder must confirm before critical operations are allowed"',
    );
    expect(post.json).toEqual({ error: 'insufficient_scope', reasons: ['dirty_device'] });
    const get = await call('dirty');
    expect(get.res.status).toBe(200);
    expect(get.json.handled).toBe(true);
  });

  it('rate_limited: 429 with Retry-After', async () => {
    const { res, json } = await call('rate');
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer realm="bank", error="invalid_token", error_description="rate limit exceeded for this token"',
    );
    expect(json).toEqual({ error: 'rate_limited', reasons: ['rate_limited'] });
  });

  it('no token (or a malformed Authorization header): 401 without an error attribute, guard not called', async () => {
    for (const authorization of [undefined, 'Basic dXNlcjpwdw==', 'Bearer good extra', 'Bearer  good']) {
      const { res, json } = await call(undefined, authorization ? { headers: { authorization } } : {});
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="bank"');
      expect(json).toEqual({ error: 'authentication_required', reasons: ['token_missing'] });
    }
    expect(guard.calls).toEqual([]);
    // onVerdict still sees them (metrics count unauthenticated traffic too).
    expect(verdicts.map((v) => v.reasons)).toEqual(Array(4).fill(['token_missing']));
  });

  it('reads the token from the named cookie; the Bearer header wins when both are sent', async () => {
    const viaCookie = await call(undefined, { headers: { cookie: 'other=x; __Secure-access=good' } });
    expect(viaCookie.res.status).toBe(200);
    expect(guard.calls.map((c) => c.token)).toEqual(['good']);
    const other = await call(undefined, { headers: { cookie: 'access=good' } });
    expect(other.res.status).toBe(401);
    const both = await call('expired', { headers: { cookie: '__Secure-access=good' } });
    expect(both.res.status).toBe(401);
    expect(guard.calls.map((c) => c.token)).toEqual(['good', 'expired']);
  });

  it('classifies the operation by method by default', async () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      await fetch(`${server.url}/account`, { method, headers: { authorization: 'Bearer good' } });
    }
    expect(guard.calls.map((c) => c.ctx.operation)).toEqual(['read', 'read', 'read', 'critical', 'critical', 'critical', 'critical']);
  });

  it('passes the x-device-fingerprint header to the guard', async () => {
    const fph = 'a'.repeat(64);
    await call('good', { headers: { 'x-device-fingerprint': fph } });
    expect(guard.calls).toEqual([{ token: 'good', ctx: { operation: 'read', fingerprint: fph } }]);
  });

  it('a throwing guard fails closed with a 500, the handler does not run', async () => {
    const { res, json } = await call('boom');
    expect(res.status).toBe(500);
    expect(json.handled).toBeUndefined();
  });
});

describe('adapter options', () => {
  it('custom operation, fingerprint and signals reach the guard', async () => {
    const guard = fakeGuard();
    const app = express();
    app.use(
      guardMiddleware<express.Request>(guard, {
        operation: (req) => (req.path.startsWith('/payouts') ? 'critical' : 'read'),
        fingerprint: (req) => req.get('x-fraud-fph'),
        signals: (req) => ({ newDevice: req.get('x-fraud-new') === '1', reputation: 'bad' }),
      }),
    );
    app.get('/{*any}', (_req, res) => {
      res.end('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await fetch(`http://127.0.0.1:${port}/payouts/1`, { headers: { authorization: 'Bearer good', 'x-fraud-fph': 'f1', 'x-fraud-new': '1' } });
      expect(guard.calls[0]!.ctx).toEqual({ operation: 'critical', fingerprint: 'f1', signals: { newDevice: true, reputation: 'bad' } });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('bad configuration fails when the adapter is created, not on a request', () => {
    const guard = fakeGuard();
    expect(() => guardMiddleware(guard, { realm: 'a\r\nb' })).toThrow(TypeError);
    expect(() => guardHook(guard, { cookie: 'a;b' })).toThrow(TypeError);
    expect(() => guardHook(guard, { stepUpMaxAgeSec: -1 })).toThrow(RangeError);
  });

  it('the adapters import neither express nor fastify at runtime', () => {
    for (const file of ['express.ts', 'fastify.ts']) {
      const source = readFileSync(path.join(ROOT, 'src/guard/adapters', file), 'utf8');
      expect(source).not.toMatch(/from\s+['"](express|fastify)['"]|import\(\s*['"](express|fastify)/);
    }
  });
});
