// `npm run bench:forward-auth`: what `jwtir guard serve` costs behind a real nginx (issue 5,
// "Benchmark"). wrk (Debian's package) drives the same nginx and the same tiny upstream, taking
// turns in one run: nginx → upstream alone, and nginx → guard serve (auth_request, the
// examples/nginx.conf site) → upstream; and for scale, nginx → an auth endpoint that allows
// everything without deciding → upstream. Every request carries a token from the same pool of
// warm tokens (a session reuses its token). Prints requests/s, p50 and p99 latency, CPU per
// request of each process, and the guarded/unguarded throughput ratio (goal: at least 70 %).
// Not a test: it prints numbers.
//
// Needs Postgres and Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL), nginx and wrk. Everything it
// creates lives in a fresh schema `fa_<random>`, under the Redis prefix `jwtir-fa:<random>:` and
// in a temp directory; all are removed at the end, also on failure or Ctrl-C.
//
// Knobs (environment): BENCH_DURATION (seconds per turn, default 5), BENCH_ROUNDS (one turn per
// path, default 5), BENCH_CONNECTIONS (wrk connections, default 64), BENCH_THREADS (wrk threads,
// default 1), BENCH_TOKENS (token pool, default 1000), BENCH_NGINX_WORKERS (default auto),
// BENCH_SERVE_WORKERS (guard serve --workers, default 1), BENCH_GUARD_SOCKET=1 (nginx reaches the
// guard over a Unix socket instead of TCP).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jwt from 'jsonwebtoken';
import { exampleSite, findNginx, startNginx } from '../test/helpers/nginx.mjs';
import { benchEnv, deleteRedisPrefix, DIST, dropSchema, ROOT, runCli } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 1000);
const NGINX_WORKERS = process.env.BENCH_NGINX_WORKERS ?? 'auto';
const SERVE_WORKERS = Number(process.env.BENCH_SERVE_WORKERS ?? 1);
const GUARD_SOCKET = process.env.BENCH_GUARD_SOCKET === '1';
const GOAL = 0.7;

const log = (s = '') => process.stdout.write(`${s}\n`);
const note = (s) => process.stderr.write(`  · ${s}\n`);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const ms = (us) => `${(us / 1000).toFixed(2)} ms`;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// wrk: every request takes the next token of the pool; done() prints one JSON line.
const WRK_SCRIPT = `
local tokens = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = "Bearer " .. line end
  n = math.random(#tokens)
end
request = function()
  n = n % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = tokens[n] })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"non2xx":%d,"socketErrors":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

async function main() {
  const started = Date.now();
  const nginx = findNginx();
  if (nginx.missing) throw new Error(nginx.missing);
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is not installed (Debian: apt-get install wrk)');

  const secret = randomBytes(32).toString('hex');
  const env = benchEnv('fa');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'jwtir-fa-'));
  const children = [];
  let server;
  let cleaned;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await server?.stop().catch(() => {});
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
      const [schemaOk, keys] = await Promise.all([dropSchema(env.JWTIR_SCHEMA), deleteRedisPrefix(env.JWTIR_REDIS_PREFIX)]);
      log(`\ncleanup: schema ${env.JWTIR_SCHEMA} ${schemaOk ? 'dropped' : 'NOT dropped'}, ${keys} Redis keys deleted, nginx and ${children.length} child processes ended`);
    })());
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => cleanup().finally(() => process.exit(130)));

  const cpus = os.cpus();
  log('jwtir forward-auth benchmark (nginx auth_request → jwtir guard serve)');
  log(`node ${process.version} · ${cpus[0]?.model ?? 'unknown cpu'} · ${cpus.length} cores · ${spawnSync(nginx.bin, ['-v'], { encoding: 'utf8' }).stderr.trim()} · ${spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]}`);
  log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} — wrk, nginx, the upstream and the guard share these cores with whatever else runs`);
  log(`wrk -t${THREADS} -c${CONNECTIONS}, ${DURATION} s turns, ${ROUNDS} rounds of one turn per path (each path first in turn) after a warm-up; nginx worker_processes ${NGINX_WORKERS}; guard serve --workers ${SERVE_WORKERS} over ${GUARD_SOCKET ? 'a Unix socket' : 'TCP'}; ${TOKENS} warm tokens`);
  log('');

  let failed = false;
  try {
    // State: a legacy service's HS256 secret imported through the CLI, its sessions in the ledger.
    await runCli(['init'], env);
    await runCli(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET'], { ...env, JWT_SECRET: secret });
    const nowSec = Math.floor(Date.now() / 1000);
    const sessions = Array.from({ length: TOKENS }, (_, i) => ({ sub: `user-${i}`, sid: randomUUID() }));
    await seedLedger(env, sessions, nowSec);
    const tokensFile = path.join(tmp, 'tokens.txt');
    writeFileSync(tokensFile, sessions.map((s) => jwt.sign({ sub: s.sub, sid: s.sid, roles: ['customer'], iat: nowSec - 60 }, secret, { algorithm: 'HS256', expiresIn: 3600 })).join('\n') + '\n');
    const scriptFile = path.join(tmp, 'pool.lua');
    writeFileSync(scriptFile, WRK_SCRIPT);
    const serveConfig = path.join(tmp, 'serve.yaml');
    writeFileSync(serveConfig, 'fingerprintHeader: X-Device-Fingerprint\nrules:\n  - { method: POST, path: /transfers/*, operation: critical }\n  - { method: [PUT, PATCH], path: /users/*/email, operation: critical }\n');
    note(`state: ${env.JWTIR_SCHEMA}, legacy HS256 key imported, ${TOKENS} sessions in the ledger, ${TOKENS} tokens minted by jsonwebtoken`);

    const upstream = await startChild(children, process.execPath, [path.join(HERE, 'forward-auth-upstream.mjs')], {}, /^listening (\d+)$/m, 'stdout');
    const noopAuth = await startChild(children, process.execPath, [path.join(HERE, 'forward-auth-upstream.mjs'), 'noop-auth'], {}, /^listening (\d+)$/m, 'stdout');
    const listen = GUARD_SOCKET ? `unix:${path.join(tmp, 'serve.sock')}` : '127.0.0.1:0';
    const guard = await startChild(
      children,
      process.execPath,
      [path.join(ROOT, 'bin', 'jwtir'), 'guard', 'serve', '--listen', listen, '--serve-config', serveConfig, '--workers', String(SERVE_WORKERS)],
      env,
      /"event":"serve\.started","address":"([^"]+)"/,
      'stderr',
    );
    const guardAddress = GUARD_SOCKET ? `unix:${guard}` : guard;
    const [guardedPort, plainPort, noopPort] = [await freePort(), await freePort(), await freePort()];
    const site = `${exampleSite({ guard: guardAddress, upstream: `127.0.0.1:${upstream}`, listen: `127.0.0.1:${guardedPort}` })}
# The same upstream without the guard.
server {
    listen 127.0.0.1:${plainPort};
    location / {
        proxy_set_header Host $host;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://app;
    }
}
# The same, behind an auth endpoint that allows everything without deciding (the hop alone).
upstream noop_auth {
    server 127.0.0.1:${noopAuth};
    keepalive 64;
    keepalive_requests 100000;
}
server {
    listen 127.0.0.1:${noopPort};
    location / {
        auth_request /_noop;
        proxy_set_header Host $host;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://app;
    }
    location = /_noop {
        internal;
        proxy_pass http://noop_auth/;
        proxy_pass_request_body off;
        proxy_pass_request_headers off;
        proxy_set_header Content-Length "";
        proxy_set_header Authorization $http_authorization;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Original-URI $request_uri;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
`;
    server = await startNginx({ bin: nginx.bin, dir: path.join(tmp, 'nginx'), site, ports: [guardedPort, plainPort, noopPort], workers: NGINX_WORKERS });
    note(`upstream on 127.0.0.1:${upstream}, guard serve on ${guardAddress}, nginx guarded :${guardedPort}, unguarded :${plainPort}`);

    // Both paths answer 200, and only the guarded one tells the upstream who is asking.
    const token = spawnSync('head', ['-n', '1', tokensFile], { encoding: 'utf8' }).stdout.trim();
    const viaGuard = await fetch(`http://127.0.0.1:${guardedPort}/accounts/1`, { headers: { authorization: `Bearer ${token}` } });
    const viaPlain = await fetch(`http://127.0.0.1:${plainPort}/accounts/1`, { headers: { authorization: `Bearer ${token}` } });
    const [g, p] = [await viaGuard.json(), await viaPlain.json()];
    if (viaGuard.status !== 200 || g.subject !== 'user-0' || viaPlain.status !== 200 || p.subject !== null) {
      throw new Error(`sanity check failed: guarded ${viaGuard.status} ${JSON.stringify(g)}, unguarded ${viaPlain.status} ${JSON.stringify(p)}`);
    }
    const denied = await fetch(`http://127.0.0.1:${guardedPort}/accounts/1`, { headers: { authorization: `Bearer ${token}x` } });
    if (denied.status !== 401) throw new Error(`sanity check failed: a tampered token got ${denied.status} through nginx, not 401`);

    const paths = [
      { name: 'nginx → upstream', url: `http://127.0.0.1:${plainPort}/accounts/1`, runs: [] },
      { name: 'nginx → guard serve → upstream', url: `http://127.0.0.1:${guardedPort}/accounts/1`, runs: [] },
      { name: 'nginx → no-op auth → upstream', url: `http://127.0.0.1:${noopPort}/accounts/1`, runs: [] },
    ];
    const wrk = (url, seconds) => runWrk(url, seconds, scriptFile, tokensFile);
    const [upstreamChild, noopChild, guardChild] = children;
    const components = [
      { name: 'nginx', pids: () => withChildren(server.pid) },
      { name: 'upstream', pids: () => [upstreamChild.pid] },
      { name: 'guard serve', pids: () => withChildren(guardChild.pid) },
      { name: 'no-op auth', pids: () => [noopChild.pid] },
    ];
    note('warm-up: 2 s per path');
    for (const p of paths) await wrk(p.url, 2);
    for (let r = 0; r < ROUNDS; r++) {
      // Each path goes first, second and last in turn: drift in the machine's load hits all alike.
      const order = [...paths.slice(r % paths.length), ...paths.slice(0, r % paths.length)];
      for (const p of order) {
        const before = components.map((c) => c.pids().reduce((t, pid) => t + cpuSeconds(pid), 0));
        const run = await wrk(p.url, DURATION);
        // CPU time per request of each component (µs): where the guarded path's cost goes.
        run.cpu = components.map((c, i) => ((c.pids().reduce((t, pid) => t + cpuSeconds(pid), 0) - before[i]) / run.requests) * 1e6);
        p.runs.push(run);
        note(`round ${r + 1}/${ROUNDS} ${p.name}: ${fmt(run.rps)} req/s, p99 ${ms(run.p99)}, CPU µs/request ${components.map((c, i) => `${c.name} ${run.cpu[i].toFixed(1)}`).join(' · ')}${run.non2xx || run.socketErrors ? `, ${run.non2xx} non-2xx, ${run.socketErrors} socket errors` : ''}`);
      }
    }

    log('');
    const cpuHead = components.map((c) => c.name.padStart(12)).join('');
    log(`${'path'.padEnd(34)} ${'req/s'.padStart(10)} ${'p50'.padStart(10)} ${'p99'.padStart(10)} ${'non-2xx'.padStart(8)}  CPU µs/request:${cpuHead}`);
    for (const p of paths) {
      p.rps = median(p.runs.map((r) => r.rps));
      const bad = p.runs.reduce((n, r) => n + r.non2xx + r.socketErrors, 0);
      const cpu = components.map((_, i) => median(p.runs.map((r) => r.cpu[i])).toFixed(1).padStart(12)).join('');
      log(`${p.name.padEnd(34)} ${fmt(p.rps).padStart(10)} ${ms(median(p.runs.map((r) => r.p50))).padStart(10)} ${ms(median(p.runs.map((r) => r.p99))).padStart(10)} ${String(bad).padStart(8)}  ${' '.repeat(15)}${cpu}`);
    }
    log(`(medians of ${ROUNDS} rounds)`);
    const metrics = await guardMetrics(guard, GUARD_SOCKET);
    const answered = [...metrics.matchAll(/^jwtir_serve_answers_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const connections = Number(/^jwtir_serve_connections_total (\d+)$/m.exec(metrics)?.[1] ?? NaN);
    log(`guard serve answered ${fmt(answered)} checks over ${fmt(connections)} connections${SERVE_WORKERS > 1 ? ' (one worker\'s count)' : ''}`);
    const guardCpu = median(paths[1].runs.map((r) => r.cpu[2]));
    log(`guard serve spent ${guardCpu.toFixed(1)} µs of CPU per check: one worker fills one such core at about ${fmt(1e6 / guardCpu)} checks/s`);
    const ratio = paths[1].rps / paths[0].rps;
    const perTurn = paths[0].runs.map((u, i) => paths[1].runs[i].rps / u.rps);
    const hop = paths[2].rps / paths[0].rps;
    log('');
    log(`guarded / unguarded throughput: ${(ratio * 100).toFixed(1)} % (per round: ${perTurn.map((x) => `${(x * 100).toFixed(0)} %`).join(', ')}); goal ≥ ${GOAL * 100} %: ${ratio >= GOAL ? 'met' : 'NOT met'}`);
    log(`for scale, an auth endpoint that decides nothing keeps ${(hop * 100).toFixed(1)} %: the rest of the gap is the extra hop (nginx's subrequest and a second HTTP server), not the guard's decision`);
    if (paths.some((p) => p.runs.some((r) => r.non2xx || r.socketErrors))) {
      failed = true;
      log('some requests were not answered 2xx: the numbers above are not comparable');
    }
  } catch (error) {
    failed = true;
    process.stderr.write(`\nbenchmark failed: ${error?.stack ?? error}\n`);
  } finally {
    await cleanup();
    log(`total time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  process.exit(failed ? 1 : 0);
}

async function seedLedger(env, sessions, nowSec) {
  const { resolveSettings } = await import(DIST('config/settings.js'));
  const { openBackends } = await import(DIST('store/open.js'));
  const { recordSessions } = await import(DIST('state/ledger.js'));
  const backends = await openBackends(resolveSettings({}, { ...env }));
  try {
    await recordSessions(
      backends.db,
      sessions.map((s) => ({ ...s, kid: 'legacy', roles: ['customer'], fph: null, issuedAt: new Date((nowSec - 60) * 1000), expiresAt: new Date((nowSec + 3540) * 1000), source: 'import' })),
    );
  } finally {
    await backends.close();
  }
}

/** Spawns a long-running child and resolves with the first capture of `ready` in its output. */
function startChild(children, bin, args, env, ready, stream) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${path.basename(args[0])} did not start in 30 s:\n${out}`)), 30_000);
    const onData = (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child[stream].on('data', onData);
    child[stream === 'stdout' ? 'stderr' : 'stdout'].on('data', (d) => (out += d));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(args[0])} exited with ${code}:\n${out}`));
    });
  });
}

/** The guard's /metrics text, straight from it (over its socket or port). */
function guardMetrics(address, socket) {
  return new Promise((resolve, reject) => {
    const target = socket ? { socketPath: address, path: '/metrics' } : { host: address.split(':')[0], port: Number(address.split(':')[1]), path: '/metrics' };
    httpGet({ ...target, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** utime + stime of a process, in seconds (Linux /proc; 0 elsewhere). */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** The pids of a process and its children (nginx's workers, guard serve's workers). */
function withChildren(pid) {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids.flatMap(withChildren)];
  } catch {
    return [pid];
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function runWrk(url, seconds, script, tokens) {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url, '--', tokens], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"requests"'));
      if (code !== 0 || !line) return reject(new Error(`wrk exited ${code}:\n${out}`));
      const r = JSON.parse(line);
      resolve({ ...r, rps: r.requests / (r.durationUs / 1e6) });
    });
  });
}

await main();
