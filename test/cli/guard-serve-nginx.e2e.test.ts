/**
 * A real nginx (Debian's package, auth_request module) running examples/nginx.conf in front of a
 * tiny upstream, with the real `jwtir guard serve` binary as its auth endpoint, and the real CLI
 * changing the state while nginx keeps running: allow, deny, step-up, rate-limited, a revocation.
 *
 * Postgres + Redis only: on the embedded default the serving process holds the database, so no
 * CLI command could change the state while it runs (the server says so when it starts).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { runOk } from '../helpers/cli.js';
import { exampleSite, findNginx, startNginx, type RunningNginx } from '../helpers/nginx.mjs';
import { logLines, startServe, type ServeProcess } from '../helpers/serve.js';
import { backendCases, describeBackend } from '../helpers/services.js';

const nginx = findNginx();
const secret = randomBytes(32).toString('hex');
const mint = (sub: string) => jwt.sign({ sub, sid: `sid-${sub}`, jti: randomUUID() }, secret, { algorithm: 'HS256', expiresIn: 3600 });
const jtiOf = (token: string) => (jwt.decode(token) as { jti: string }).jti;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (nginx.missing) {
  describe('guard serve behind a real nginx', () => {
    it('needs nginx with the auth_request module (`bash .ci/run` installs it)', () => {
      throw new Error(nginx.missing);
    });
  });
} else {
  for (const c of backendCases('serve_nginx', ['postgres+redis'])) {
    describeBackend(c, 'guard serve behind a real nginx', () => {
      const env = c.env;
      const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-serve-nginx-'));
      const seen: IncomingHttpHeaders[] = [];
      let upstream: Server;
      let serve: ServeProcess;
      let proxy: RunningNginx;
      let url: string;

      /** A request through nginx, as a client sends it. */
      async function get(pathname: string, headers: Record<string, string> = {}, method = 'GET') {
        const res = await fetch(`${url}${pathname}`, { method, headers });
        return { status: res.status, headers: res.headers, body: await res.text() };
      }
      /** The policy version `jwtir guard serve` applies (read from it directly, not through nginx). */
      const servedPolicy = async () => ((await (await fetch(`http://${serve.address}/healthz`)).json()) as { policyVersion: number }).policyVersion;

      beforeAll(async () => {
        await runOk(['init'], { env });
        await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...env, S: secret } });
        const config = path.join(dir, 'serve.yaml');
        writeFileSync(config, 'fingerprintHeader: X-Device-Fingerprint\nrules:\n  - { method: POST, path: /transfers/*, operation: critical }\n');
        upstream = createServer((req, res) => {
          seen.push(req.headers);
          res.setHeader('Content-Type', 'application/json');
          res.end(JSON.stringify({ subject: req.headers['x-auth-subject'] ?? null, session: req.headers['x-auth-session'] ?? null, kid: req.headers['x-auth-kid'] ?? null }));
        });
        await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
        serve = await startServe(['--listen', '127.0.0.1:0', '--serve-config', config], env);
        const port = await freePort();
        const site = exampleSite({ guard: serve.address, upstream: `127.0.0.1:${(upstream.address() as AddressInfo).port}`, listen: `127.0.0.1:${port}` });
        proxy = await startNginx({ bin: nginx.bin!, dir: path.join(dir, 'nginx'), site, ports: [port] });
        url = `http://127.0.0.1:${port}`;
      });
      afterAll(async () => {
        await proxy?.stop();
        await serve?.stop('SIGKILL');
        await new Promise((r) => upstream?.close(r));
      });

      it('allow: the upstream sees who is asking, and a client cannot claim an identity itself', async () => {
        const r = await get('/accounts/1', { authorization: `Bearer ${mint('alice')}`, 'x-auth-subject': 'mallory', 'x-auth-kid': 'forged' });
        expect([r.status, JSON.parse(r.body)]).toEqual([200, { subject: 'alice', session: 'sid-alice', kid: 'legacy' }]);
        expect(seen.at(-1)).toMatchObject({ 'x-auth-decision': 'allow' });
        // A token without a sid: the client's own X-Auth-Session is dropped, not passed on.
        const noSid = jwt.sign({ sub: 'bob' }, secret, { algorithm: 'HS256', expiresIn: 3600 });
        const r2 = await get('/accounts/2', { authorization: `Bearer ${noSid}`, 'x-auth-session': 'someone-elses' });
        expect(JSON.parse(r2.body)).toEqual({ subject: 'bob', session: null, kid: 'legacy' });
      });

      it('deny: 401 with one challenge, and the upstream never sees the request', async () => {
        const before = seen.length;
        const missing = await get('/accounts/1');
        expect([missing.status, missing.headers.get('www-authenticate'), missing.headers.get('x-auth-decision')]).toEqual([401, 'Bearer realm="api"', 'deny']);
        expect(JSON.parse(missing.body)).toEqual({ error: 'authentication_required' });
        const forged = jwt.sign({ sub: 'alice', sid: 'sid-alice' }, 'not the secret', { algorithm: 'HS256', expiresIn: 3600 });
        const bad = await get('/transfers/1', { authorization: `Bearer ${forged}` }, 'POST');
        expect([bad.status, bad.headers.get('www-authenticate'), JSON.parse(bad.body)]).toEqual([
          401,
          'Bearer realm="api", error="invalid_token", error_description="token rejected: bad_signature"',
          { error: 'invalid_token' },
        ]);
        expect(seen.length).toBe(before);
      });

      it('a revocation made with the CLI takes effect while nginx keeps running', async () => {
        const token = mint('carol');
        expect((await get('/accounts/1', { authorization: `Bearer ${token}` })).status).toBe(200);
        await runOk(['blacklist', 'add', '--jti', jtiOf(token), '--reason', 'leaked in ticket 4711', '--yes'], { env });
        // The push feed brings it to the server; nginx is neither reloaded nor restarted.
        let r = await get('/accounts/1', { authorization: `Bearer ${token}` });
        for (const deadline = Date.now() + 10_000; r.status === 200 && Date.now() < deadline; ) {
          await sleep(50);
          r = await get('/accounts/1', { authorization: `Bearer ${token}` });
        }
        expect([r.status, r.headers.get('www-authenticate')]).toEqual([401, 'Bearer realm="api", error="invalid_token", error_description="token rejected: revoked_jti"']);
        expect((await get('/accounts/1', { authorization: `Bearer ${mint('carol')}` })).status).toBe(200);
        expect(process.kill(proxy.pid!, 0)).toBe(true);
      });

      it('after `jwtir tighten --step-up new-device --rate-limit 2/1m`: step-up is a distinguishable 401, the third request a 429', async () => {
        const res = await runOk(['tighten', '--kid', 'legacy', '--step-up', 'new-device', '--rate-limit', '2/1m', '--yes', '--json'], { env });
        const version = Math.max(...res.json.runs[0].steps.map((s: { outputs: { version?: number } }) => s.outputs.version ?? 0));
        for (const deadline = Date.now() + 10_000; (await servedPolicy()) < version && Date.now() < deadline; ) await sleep(50);
        expect(await servedPolicy()).toBeGreaterThanOrEqual(version);

        // A device this user never confirmed with a second factor: step up, not deny.
        const newDevice = createHash('sha256').update('a phone seen for the first time').digest('hex');
        const stepUp = await get('/transfers/9', { authorization: `Bearer ${mint('dave')}`, 'x-device-fingerprint': newDevice }, 'POST');
        expect([stepUp.status, stepUp.headers.get('x-auth-decision')]).toEqual([401, 'step_up']);
        expect(stepUp.headers.get('www-authenticate')).toBe('Bearer realm="api", error="insufficient_user_authentication", error_description="a second factor is required", acr_values="mfa"');

        const token = mint('erin');
        expect((await get('/accounts/1', { authorization: `Bearer ${token}` })).status).toBe(200);
        expect((await get('/accounts/2', { authorization: `Bearer ${token}` })).status).toBe(200);
        const limited = await get('/accounts/3', { authorization: `Bearer ${token}` });
        expect([limited.status, JSON.parse(limited.body), limited.headers.get('x-auth-decision')]).toEqual([429, { error: 'rate_limited' }, 'deny']);
        expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(limited.headers.get('www-authenticate')).toMatch(/error="invalid_token", error_description="rate limit exceeded for this token"/);
      });

      it('SIGTERM stops the server cleanly (exit 0, a stopped line); nginx then refuses instead of letting requests through', async () => {
        const end = await serve.stop('SIGTERM');
        expect(end.code).toBe(0);
        const lines = logLines(end.stderr);
        expect(lines.map((l) => l.event)).toEqual(['serve.started', 'serve.stopped']);
        expect(lines[1]).toMatchObject({ level: 'info', signal: 'SIGTERM', cut: 0 });
        // Never a token in the log.
        expect(end.stderr).not.toMatch(/eyJ/);
        const before = seen.length;
        expect((await get('/accounts/1', { authorization: `Bearer ${mint('alice')}` })).status).toBe(500);
        expect(seen.length).toBe(before);
      });
    });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
