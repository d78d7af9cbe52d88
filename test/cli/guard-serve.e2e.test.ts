/**
 * `jwtir guard serve` as a process: bad input refused before anything starts (exit 2, stable
 * codes, nothing listening, the state unchanged), `--check`, the startup and shutdown log lines,
 * and `--workers` on Postgres.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk } from '../helpers/cli.js';
import { logLines, startServe } from '../helpers/serve.js';
import { backendCases, describeBackend } from '../helpers/services.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-serve-cli-'));
const file = (name: string, text: string) => {
  writeFileSync(path.join(dir, name), text);
  return path.join(dir, name);
};
const good = file('serve.yaml', 'rules:\n  - { method: POST, path: /transfers/*, operation: critical }\n');

const [embedded, postgres] = backendCases('serve_cli', ['embedded', 'postgres+redis']);

describeBackend(embedded!, 'jwtir guard serve', () => {
  const env = embedded!.env;
  beforeAll(async () => {
    await runOk(['init'], { env });
  });

  it('a config with invalid path rules: exit 2, every problem by rule and field, nothing started or changed', async () => {
    const bad = file(
      'bad.yaml',
      `rules:
  - { method: POST, path: /transfers/*, operation: critical }
  - { method: GRAB, path: /accounts/*, operation: read }
  - { method: PUT, path: users/*/email, operation: critical }
  - { method: POST, path: /payouts/**x, operation: critical }
  - { method: GET, path: /search, operation: cached }
`,
    );
    const trail = (await runOk(['audit', 'trail', '--json'], { env })).json.rows;
    const res = await runCli(['guard', 'serve', '--listen', '127.0.0.1:0', '--serve-config', bad, '--json'], { env });
    expect(res.code).toBe(ExitCode.usage);
    expect(res.json.error.code).toBe('ERR_SERVE_CONFIG_INVALID');
    expect(res.json.error.message).toBe(
      `the serve config ${bad} has 4 problem(s):
  - rules[1].method: "GRAB" is not an HTTP method; use one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT or "*"
  - rules[2].path: "users/*/email" must start with "/" (or be "**" for every path)
  - rules[3].path: "/payouts/**x": "**" must be a whole segment, like /api/** (use * inside a segment)
  - rules[4].operation: must be "read" or "critical", not "cached"`,
    );
    expect(res.stderr).toContain('next: fix every problem listed; the server did not start');
    expect(logLines(res.stderr)).toEqual([]);
    expect((await runOk(['audit', 'trail', '--json'], { env })).json.rows).toBe(trail);
  });

  it('other bad input is refused with a clear error: the listen address, workers on the embedded state, a busy port', async () => {
    const listen = await runCli(['guard', 'serve', '--listen', ':9090', '--json'], { env });
    expect([listen.code, listen.json.error.code, listen.json.error.message]).toEqual([ExitCode.usage, 'ERR_USAGE', '--listen ":9090" is not <host>:<port> or unix:<path>']);
    const workers = await runCli(['guard', 'serve', '--workers', '2', '--json'], { env });
    expect([workers.code, workers.json.error.message]).toEqual([ExitCode.usage, '--workers above 1 needs Postgres: the embedded database is opened by one process at a time']);
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    const taken = await runCli(['guard', 'serve', '--listen', `127.0.0.1:${port}`, '--json'], { env });
    busy.close();
    expect([taken.code, taken.json.error.code, taken.json.error.message]).toEqual([ExitCode.conflict, 'ERR_CONFLICT', `--listen 127.0.0.1:${port}: the address is already in use`]);
  });

  it('--check validates the config and opens the state, then exits', async () => {
    const res = await runOk(['guard', 'serve', '--serve-config', good, '--check', '--json'], { env });
    expect(res.json).toMatchObject({ ok: true, backend: 'embedded', rules: 1, config: { rules: [{ method: 'POST', path: '/transfers/*', operation: 'critical' }] } });
  });

  it('serves until SIGINT, with one JSON line at startup and one at shutdown, and the summary on stdout with --json', async () => {
    const serve = await startServe(['--listen', '127.0.0.1:0', '--serve-config', good, '--json'], env);
    const health = await fetch(`http://${serve.address}/healthz`);
    expect([health.status, ((await health.json()) as { status: string }).status]).toEqual([200, 'ok']);
    const end = await serve.stop('SIGINT');
    expect(end.code).toBe(0);
    const [started, held, stopped] = logLines(end.stderr);
    expect(started).toMatchObject({ level: 'info', event: 'serve.started', address: serve.address, backend: 'embedded', workers: 1, rules: 1 });
    expect(held).toMatchObject({ level: 'warn', event: 'serve.embedded_state_held' });
    expect(stopped).toMatchObject({ event: 'serve.stopped', signal: 'SIGINT', cut: 0 });
    expect(JSON.parse(end.stdout)).toMatchObject({ stopped: true, signal: 'SIGINT', address: serve.address });
  });
});

describeBackend(postgres!, 'jwtir guard serve on Postgres', () => {
  const env = postgres!.env;
  beforeAll(async () => {
    await runOk(['init'], { env });
    await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...env, S: 'a legacy secret of at least 32 bytes, as leaked' } });
  });

  it('an HS256 key without the KEK that sealed it: a KEK error (exit 5) saying what to do, not a crash', async () => {
    const { JWTIR_KEK: _kek, ...withoutKek } = env;
    const missing = await runCli(['guard', 'serve', '--listen', '127.0.0.1:0', '--json'], { env: withoutKek });
    expect([missing.code, missing.json.error.code]).toEqual([ExitCode.refused, 'ERR_KEK_MISSING']);
    const wrong = await runCli(['guard', 'serve', '--listen', '127.0.0.1:0', '--json'], { env: { ...withoutKek, JWTIR_KEK: Buffer.alloc(32, 7).toString('base64') } });
    expect([wrong.code, wrong.json.error.code]).toEqual([ExitCode.refused, 'ERR_KEK_MISMATCH']);
  });

  it('--workers: N processes on one address, each a guard; one that dies is replaced; SIGTERM stops them all', async () => {
    const serve = await startServe(['--listen', '127.0.0.1:0', '--serve-config', good, '--workers', '2'], env);
    // Connections are handed to the workers in turn; each answers as a guard of the same state.
    const health = await Promise.all(Array.from({ length: 8 }, () => fresh(`http://${serve.address}/healthz`)));
    const pids = new Set(health.map((h) => (JSON.parse(h.body) as { pid: number }).pid));
    expect(pids.size).toBe(2);
    expect(pids.has(serve.child.pid!)).toBe(false);
    expect(health.map((h) => (JSON.parse(h.body) as { status: string }).status)).toEqual(Array(8).fill('ok'));
    const checks = await Promise.all(Array.from({ length: 4 }, () => fresh(`http://${serve.address}/auth/traefik`, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/' })));
    expect(checks.map((r) => r.status)).toEqual([401, 401, 401, 401]);

    // A worker that dies is replaced; the address keeps answering.
    const [victim] = pids;
    process.kill(victim!, 'SIGKILL');
    let now = new Set<number>();
    for (const deadline = Date.now() + 15_000; !(now.size === 2 && !now.has(victim!)) && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      const replies = await Promise.all(Array.from({ length: 4 }, () => fresh(`http://${serve.address}/healthz`).catch(() => undefined)));
      now = new Set(replies.flatMap((r) => (r?.status === 200 ? [(JSON.parse(r.body) as { pid: number }).pid] : [])));
    }
    expect(now.size).toBe(2);
    expect(now.has(victim!)).toBe(false);
    const end = await serve.stop('SIGTERM');
    expect(end.code).toBe(0);
    const lines = logLines(end.stderr);
    expect(lines.map((l) => l.event)).toEqual(['serve.started', 'serve.worker_exited', 'serve.stopped']);
    expect(lines[0]).toMatchObject({ workers: 2, backend: 'postgres+redis' });
    expect(lines[1]).toMatchObject({ level: 'error', pid: victim, signal: 'SIGKILL' });
    expect(lines[2]).toMatchObject({ signal: 'SIGTERM', workers: 2, restarts: 1 });
  });
});

/** A GET on a new connection of its own (the cluster hands each new connection to the next worker). */
function fresh(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}
