/**
 * The forward-auth server over real HTTP on 127.0.0.1, deciding with a real guard on real state
 * (Postgres + Redis, and the embedded default): each gateway's protocol for allow, deny,
 * step_up, block_critical and rate-limited; the token from the header and from the cookie; the
 * fingerprint header; rules → operation; health, metrics and a graceful shutdown.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import type { Guard } from '../../src/guard/index.js';
import { prometheusMetrics } from '../../src/guard/prometheus.js';
import { parseServeConfig } from '../../src/serve/config.js';
import { startServeServer, type ServeGuard, type ServeServer } from '../../src/serve/server.js';
import { runOk } from '../helpers/cli.js';
import { setPolicy } from '../helpers/keys.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor } from '../helpers/state.js';

const secret = randomBytes(32).toString('hex');
const fp = (label: string) => createHash('sha256').update(label).digest('hex');
const CONFIRMED = fp('alice laptop');
const DIRTY = fp('bob phone, spoofed geo');
const RATE_OPS = 3;

/** A token as the legacy service mints it (jsonwebtoken, HS256, no kid), unique per call. */
const mint = (sub: string, extra: Record<string, unknown> = {}) =>
  jwt.sign({ sub, sid: `sid-${sub}`, jti: randomUUID(), ...extra }, secret, { algorithm: 'HS256', expiresIn: 3600 });

const config = parseServeConfig({
  token: { cookie: '__Secure-access' },
  fingerprintHeader: 'X-Device-Fingerprint',
  challenge: { realm: 'bank', stepUpMaxAge: '5m' },
  rules: [
    { method: 'POST', path: '/transfers/*', operation: 'critical' },
    { method: ['PUT', 'PATCH'], path: '/users/*/email', operation: 'critical' },
  ],
});

type Protocol = 'nginx' | 'envoy' | 'traefik';
interface Check {
  method?: string;
  uri?: string;
  token?: string;
  cookie?: string;
  fingerprint?: string;
}
interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** The check request each gateway sends for a client's `method uri` with these credentials. */
function check(base: string, protocol: Protocol, c: Check): Promise<Reply> {
  const method = c.method ?? 'GET';
  const uri = c.uri ?? '/accounts/1';
  const headers: Record<string, string> = {};
  if (c.token) headers.authorization = `Bearer ${c.token}`;
  if (c.cookie) headers.cookie = `theme=dark; __Secure-access=${c.cookie}`;
  if (c.fingerprint) headers['x-device-fingerprint'] = c.fingerprint;
  if (protocol === 'nginx') Object.assign(headers, { 'x-original-method': method, 'x-original-uri': uri });
  if (protocol === 'traefik') Object.assign(headers, { 'x-forwarded-method': method, 'x-forwarded-uri': uri });
  const target = protocol === 'envoy' ? { method, path: `/auth/envoy${uri}` } : { method: 'GET', path: `/auth/${protocol}` };
  return send(base, target.method, target.path, headers);
}

function send(base: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

for (const c of backendCases('serve', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'guard serve over HTTP', () => {
    const env = c.env;
    let guard: Guard;
    let server: ServeServer;
    let base: string;

    beforeAll(async () => {
      await runOk(['init'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...env, S: secret } });
      // The incident policy (what `jwtir tighten` sets): step-up on new devices, critical
      // operations of a clean account held on a dirty device, and a per-token rate limit.
      await setPolicy(env, (doc) => ({
        ...doc,
        stepUp: { newDevice: true, badReputation: false },
        blockCritical: { dirtyDevice: true },
        kids: { legacy: { rateLimit: { ops: RATE_OPS, windowSec: 60 } } },
      }));
      guard = await guardFor(env);
      await guard.confirmDevice('alice', CONFIRMED);
      await guard.confirmDevice('bob', DIRTY);
      await guard.setDeviceReputation('bob', DIRTY, 'bad');
      server = await startServeServer({ guard, config, listen: { host: '127.0.0.1', port: 0 }, metrics: await prometheusMetrics(guard) });
      base = `http://${server.address}`;
    });
    afterAll(async () => {
      await server?.close(1000);
      await guard?.close();
    });

    it('allow: 200 with the identity headers, for each gateway', async () => {
      for (const protocol of ['nginx', 'envoy', 'traefik'] as const) {
        const r = await check(base, protocol, { token: mint('alice') });
        expect([protocol, r.status, r.body]).toEqual([protocol, 200, '']);
        expect(r.headers).toMatchObject({ 'x-auth-decision': 'allow', 'x-auth-subject': 'alice', 'x-auth-session': 'sid-alice', 'x-auth-kid': 'legacy' });
      }
    });

    it('reads the token from the named cookie when there is no Authorization header, and prefers the header', async () => {
      expect((await check(base, 'nginx', { cookie: mint('carol') })).headers['x-auth-subject']).toBe('carol');
      expect((await check(base, 'nginx', { token: mint('dave'), cookie: mint('carol') })).headers['x-auth-subject']).toBe('dave');
      const other = await send(base, 'GET', '/auth/traefik', { cookie: `access=${mint('carol')}`, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/' });
      expect([other.status, other.headers['x-auth-decision']]).toEqual([401, 'deny']);
    });

    it('deny: nginx gets 401 and X-Auth-Status; Envoy and Traefik the real 401 with the challenge and a JSON body', async () => {
      const tampered = jwt.sign({ sub: 'alice', sid: 'sid-alice' }, 'not the secret', { algorithm: 'HS256', expiresIn: 3600 });
      const n = await check(base, 'nginx', { token: tampered });
      expect([n.status, n.headers['x-auth-status'], n.headers['x-auth-error'], n.headers['x-auth-decision'], n.body]).toEqual([401, '401', 'invalid_token', 'deny', '']);
      expect(n.headers['www-authenticate']).toBe('Bearer realm="bank", error="invalid_token", error_description="token rejected: bad_signature"');
      expect(n.headers['x-auth-subject']).toBeUndefined();
      for (const protocol of ['envoy', 'traefik'] as const) {
        const r = await check(base, protocol, { token: tampered });
        expect([r.status, JSON.parse(r.body), r.headers['cache-control']]).toEqual([401, { error: 'invalid_token', reasons: ['bad_signature'] }, 'no-store']);
        const missing = await check(base, protocol, {});
        expect([missing.status, missing.headers['www-authenticate'], JSON.parse(missing.body).error]).toEqual([401, 'Bearer realm="bank"', 'authentication_required']);
      }
    });

    it('step_up: a new device gets a 401 marked step_up with the RFC 9470 challenge; a confirmed one passes', async () => {
      const challenge = 'Bearer realm="bank", error="insufficient_user_authentication", error_description="a second factor is required", acr_values="mfa", max_age="300"';
      for (const protocol of ['nginx', 'envoy', 'traefik'] as const) {
        const r = await check(base, protocol, { token: mint('alice'), fingerprint: fp('an unknown tablet') });
        expect([protocol, r.status, r.headers['x-auth-decision'], r.headers['www-authenticate']]).toEqual([protocol, 401, 'step_up', challenge]);
        if (protocol === 'nginx') expect([r.headers['x-auth-status'], r.headers['x-auth-error']]).toEqual(['401', 'insufficient_user_authentication']);
        else expect(JSON.parse(r.body)).toEqual({ error: 'insufficient_user_authentication', reasons: ['new_device'] });
        expect((await check(base, protocol, { token: mint('alice'), fingerprint: CONFIRMED })).status).toBe(200);
      }
    });

    it('block_critical: rules make POST /transfers/* critical (403 from a dirty device); reads still pass', async () => {
      for (const protocol of ['nginx', 'envoy', 'traefik'] as const) {
        const critical = await check(base, protocol, { method: 'POST', uri: '/transfers/77?amount=900', token: mint('bob'), fingerprint: DIRTY });
        expect([protocol, critical.status, critical.headers['x-auth-decision']]).toEqual([protocol, 403, 'block_critical']);
        expect(critical.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
        if (protocol === 'nginx') expect(critical.headers['x-auth-status']).toBe('403');
        // The same request as a read, and another path, are not critical.
        expect((await check(base, protocol, { method: 'GET', uri: '/transfers/77', token: mint('bob'), fingerprint: DIRTY })).status).toBe(200);
        expect((await check(base, protocol, { method: 'POST', uri: '/messages/1', token: mint('bob'), fingerprint: DIRTY })).status).toBe(200);
        // Spelled so that the service decodes it to /users/bob/email.
        expect((await check(base, protocol, { method: 'PATCH', uri: '/users/bob/%65mail', token: mint('bob'), fingerprint: DIRTY })).status).toBe(403);
      }
    });

    it('rate-limited: after the limit, Envoy and Traefik answer 429 and nginx 401 with X-Auth-Status 429, each with Retry-After', async () => {
      for (const protocol of ['nginx', 'envoy', 'traefik'] as const) {
        const token = mint('erin');
        for (let i = 0; i < RATE_OPS; i++) expect((await check(base, protocol, { token })).status).toBe(200);
        const limited = await check(base, protocol, { token });
        expect(limited.status).toBe(protocol === 'nginx' ? 401 : 429);
        if (protocol === 'nginx') expect([limited.headers['x-auth-status'], limited.headers['x-auth-error']]).toEqual(['429', 'rate_limited']);
        else expect(JSON.parse(limited.body)).toEqual({ error: 'rate_limited', reasons: ['rate_limited'] });
        expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      }
    });

    it('the fingerprint header is checked against a device-bound token (fph)', async () => {
      const bound = mint('frank', { fph: CONFIRMED });
      expect((await check(base, 'traefik', { token: bound, fingerprint: fp('another device') })).body).toBe(JSON.stringify({ error: 'invalid_token', reasons: ['fingerprint_mismatch'] }));
      expect(JSON.parse((await check(base, 'traefik', { token: mint('frank', { fph: CONFIRMED }) })).body).reasons).toEqual(['fingerprint_missing']);
    });

    it('/healthz says ok with the versions; /metrics has the guard decisions and the answers by protocol; anything else is 404', async () => {
      const health = await send(base, 'GET', '/healthz');
      expect([health.status, JSON.parse(health.body)]).toEqual([200, { status: 'ok', stateVersion: guard.version, policyVersion: guard.policyVersion, pid: process.pid }]);
      const metrics = await send(base, 'GET', '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/^jwtir_guard_decisions_total\{kid="legacy",decision="step_up",reason="new_device"\} 3$/m);
      expect(metrics.body).toMatch(/^jwtir_serve_answers_total\{protocol="nginx",status="403"\} 2$/m);
      expect(metrics.body).toMatch(/^jwtir_serve_answers_total\{protocol="envoy",status="429"\} 1$/m);
      expect(metrics.body).toMatch(/^jwtir_guard_store_healthy 1$/m);
      expect((await send(base, 'GET', '/auth/nothing')).status).toBe(404);
    });

    it('shuts down gracefully: stops accepting, answers the request in flight (Connection: close), cuts one past the deadline', async () => {
      // The decision of this server's requests waits for a gate: a request stays in flight as long as wanted.
      let open: () => void = () => {};
      const gate = new Promise<void>((r) => (open = r));
      const slow: ServeGuard = Object.assign(Object.create(guard), { authorizeAsync: async (t: string | undefined, ctx: object) => (await gate, guard.authorizeAsync(t, ctx)) });
      const s = await startServeServer({ guard: slow, config, listen: { host: '127.0.0.1', port: 0 }, metrics: await prometheusMetrics(guard) });
      const inFlight = check(`http://${s.address}`, 'envoy', { token: mint('gina') });
      while (s.inFlight === 0) await new Promise((r) => setTimeout(r, 5));
      const closing = s.close(10_000);
      await expect(send(`http://${s.address}`, 'GET', '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      open();
      const answered = await inFlight;
      expect([answered.status, answered.headers['x-auth-subject'], answered.headers.connection]).toEqual([200, 'gina', 'close']);
      expect(await closing).toEqual({ cut: 0 });

      const never: ServeGuard = Object.assign(Object.create(guard), { authorizeAsync: () => new Promise(() => {}) });
      const t = await startServeServer({ guard: never, config, listen: { host: '127.0.0.1', port: 0 }, metrics: await prometheusMetrics(guard) });
      const stuck = check(`http://${t.address}`, 'envoy', { token: mint('gina') });
      while (t.inFlight === 0) await new Promise((r) => setTimeout(r, 5));
      expect(await t.close(100)).toEqual({ cut: 1 });
      await expect(stuck).rejects.toMatchObject({ code: 'ECONNRESET' });
    });

    it('a guard whose store stopped answering: /healthz 503, checks fail closed with 503 (nginx: 403 and X-Auth-Status 503)', async () => {
      await server.close(1000);
      await guard.close();
      // No polling and a 1 ms staleness bound: the guard counts its store as unreachable at once.
      guard = await guardFor(env, { pollIntervalMs: 3_600_000, staleAfterMs: 1 });
      server = await startServeServer({ guard, config, listen: { host: '127.0.0.1', port: 0 }, metrics: await prometheusMetrics(guard) });
      base = `http://${server.address}`;
      await new Promise((r) => setTimeout(r, 20));
      const health = await send(base, 'GET', '/healthz');
      expect([health.status, JSON.parse(health.body).status]).toEqual([503, 'store_unavailable']);
      const n = await check(base, 'nginx', { token: mint('alice') });
      expect([n.status, n.headers['x-auth-status'], n.headers['x-auth-error'], n.headers['retry-after']]).toEqual([403, '503', 'temporarily_unavailable', '5']);
      const e = await check(base, 'envoy', { token: mint('alice') });
      expect([e.status, JSON.parse(e.body).reasons]).toEqual([503, ['store_unavailable']]);
    });
  });
}
