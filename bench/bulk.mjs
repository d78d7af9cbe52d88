// `npm run bench:bulk`: containment at scale (issue 4, "Benchmark"). Against real Postgres and
// Redis it times, through the real `bin/jwtir`, a forced logout of 1,000,000 sessions selected by
// key and by cohort, and a blacklist of 100,000 jtis from a findings file, and how long until
// every one of BENCH_GUARDS guard processes denies a sample of the covered tokens. Not a test:
// it prints numbers.
//
// Everything lives in a fresh schema `bulk_<random>` and under the Redis prefix
// `jwtir-bulk:<random>:`; both are removed at the end, also on failure or Ctrl-C.
// Knobs: BENCH_SESSIONS (default 1,000,000), BENCH_JTIS (default 100,000), BENCH_GUARDS (default 4),
// BENCH_SAMPLE (tokens each guard watches per measurement, default 200).
import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jwt from 'jsonwebtoken';
import { deleteRedisPrefix, DIST, dropSchema, PG_URL, REDIS_URL, runCli } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1_000_000);
const JTIS = Number(process.env.BENCH_JTIS ?? 100_000);
const GUARDS = Number(process.env.BENCH_GUARDS ?? 4);
const SAMPLE = Number(process.env.BENCH_SAMPLE ?? 200);
const stamp = () => performance.timeOrigin + performance.now();
const log = (s = '') => process.stdout.write(`${s}\n`);
const note = (s) => process.stderr.write(`  · ${s}\n`);
const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmt = (n) => n.toLocaleString('en-US');

async function main() {
  const id = randomBytes(4).toString('hex');
  const secret = randomBytes(32).toString('hex');
  const env = {
    DATABASE_URL: PG_URL,
    REDIS_URL,
    JWTIR_SCHEMA: `bulk_${id}`,
    JWTIR_REDIS_PREFIX: `jwtir-bulk:${id}:`,
    JWTIR_KEK: randomBytes(32).toString('base64'),
    JWTIR_ACTOR: 'bench@jwtir',
    CI: 'true',
    NO_COLOR: '1',
  };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'jwtir-bulk-'));
  const guards = [];
  let cleaned;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const g of guards) if (g.exitCode === null) g.kill('SIGKILL');
      rmSync(tmp, { recursive: true, force: true });
      const [schemaOk, keys] = await Promise.all([dropSchema(env.JWTIR_SCHEMA), deleteRedisPrefix(env.JWTIR_REDIS_PREFIX)]);
      log(`\ncleanup: schema ${env.JWTIR_SCHEMA} ${schemaOk ? 'dropped' : 'NOT dropped'}, ${keys} Redis keys deleted, ${guards.length} guard processes ended`);
    })());
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => cleanup().finally(() => process.exit(130)));

  const cpus = os.cpus();
  log('jwtir bulk containment benchmark');
  log(`node ${process.version} · ${cpus[0]?.model ?? 'unknown cpu'} · ${cpus.length} cores · Postgres ${PG_URL} · Redis ${REDIS_URL}`);
  log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  log('');
  let failed = false;
  try {
    await runCli(['init'], env);
    await runCli(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET'], { ...env, JWT_SECRET: secret });
    const nowSec = Math.floor(Date.now() / 1000);
    await seed(env, nowSec);
    for (let i = 0; i < GUARDS; i++) guards.push(await startGuard(env));
    note(`${GUARDS} guard processes ready (createGuard on the same Postgres + Redis, default push)`);

    const mint = (i, extra = {}) => jwt.sign({ sub: `u-${i >> 1}`, sid: `s-${i}`, iat: nowSec - 600, exp: nowSec + 3000, ...extra }, secret, { algorithm: 'HS256' });
    const sampleOf = (pick) => Array.from({ length: SAMPLE }, (_, k) => pick(k));
    const results = [];

    // 1. Forced logout by key: every session signed by the leaked key.
    const byKidSample = sampleOf((k) => mint(1 + Math.floor((k * SESSIONS) / SAMPLE)));
    results.push(await measure('logout --kid legacy', 'every session of the leaked key', ['logout', '--kid', 'legacy', '--yes', '--json'], byKidSample, env, guards));
    await undo(env, results.at(-1));

    // 2. Forced logout by cohort: half of the users (cohorts 0..49), whatever key.
    const { cohortOf } = await import(DIST('guard/cohort.js'));
    const lowCohort = [];
    for (let i = 1; lowCohort.length < SAMPLE && i <= SESSIONS; i += 997) if (cohortOf(`u-${i >> 1}`) < 50) lowCohort.push(mint(i));
    results.push(await measure('logout --cohort 0-49', 'the sessions of half the users', ['logout', '--cohort', '0-49', '--yes', '--json'], lowCohort, env, guards));
    await undo(env, results.at(-1));

    // 3. Blacklist 100,000 jtis from a findings file (NDJSON, as a SIEM export writes it).
    const jtis = Array.from({ length: JTIS }, () => randomUUID());
    const file = path.join(tmp, 'findings.ndjson');
    writeFileSync(file, jtis.map((jti) => JSON.stringify({ jti, exp: nowSec + 3000, reason: 'seen from 203.0.113.7' })).join('\n') + '\n');
    const jtiSample = sampleOf((k) => mint(1 + k, { jti: jtis[Math.floor((k * JTIS) / SAMPLE)] }));
    results.push(await measure('blacklist add --from-file', `${fmt(JTIS)} jtis`, ['blacklist', 'add', '--from-file', file, '--yes', '--json'], jtiSample, env, guards));

    log('');
    log(`| measurement | covers | command (wall, real binary) | every guard denies the sample (from the command's start) | after the command returned | goal |`);
    log('| --- | --- | ---: | ---: | ---: | --- |');
    const goals = { 'logout --kid legacy': 10_000, 'logout --cohort 0-49': 10_000, 'blacklist add --from-file': 5_000 };
    for (const r of results) {
      const goal = goals[r.name];
      log(`| \`${r.name}\` | ${r.covers}: ${r.covered} | ${sec(r.commandMs)} | ${sec(r.deniedMs)} | ${r.deniedMs <= r.commandMs ? 'before it returned' : `+${Math.round(r.deniedMs - r.commandMs)} ms`} | ≤ ${sec(goal)}: ${r.commandMs <= goal ? 'met' : 'NOT met'} |`);
    }
    log('');
    log(`guards: ${GUARDS} processes, each watching ${SAMPLE} covered tokens that it allowed before the command; "denies" is the latest of their first-deny moments.`);
  } catch (error) {
    failed = true;
    process.stderr.write(`\nbench:bulk failed: ${error?.stack ?? error}\n`);
  } finally {
    for (const g of guards) g.send({ type: 'close' });
    await cleanup();
  }
  process.exit(failed ? 1 : 0);
}

/** 1,000,000 live sessions of the legacy key, two per user, set-based (not timed). */
async function seed(env, nowSec) {
  const { openPostgres } = await import(DIST('store/postgres.js'));
  const db = await openPostgres(PG_URL, env.JWTIR_SCHEMA);
  const t = Date.now();
  try {
    await db.query(
      `INSERT INTO sessions (sid, sub, kid, roles, issued_at, expires_at, source, cohort)
       SELECT 's-' || i, 'u-' || (i >> 1), 'legacy', '{customer}', to_timestamp($2::bigint - 600), to_timestamp($2::bigint + 3000), 'bench', jwtir_cohort('u-' || (i >> 1))
       FROM generate_series(1, $1::int) AS i`,
      [SESSIONS, nowSec],
    );
    await db.query('ANALYZE sessions');
  } finally {
    await db.close();
  }
  note(`seeded ${fmt(SESSIONS)} sessions of ${fmt(SESSIONS / 2)} users in ${sec(Date.now() - t)} (not timed)`);
}

function startGuard(env) {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(HERE, 'bulk-guard-child.mjs'), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => (m.type === 'ready' ? resolve(child) : reject(new Error(m.message))));
    child.once('exit', (code) => reject(new Error(`guard process exited ${code}`)));
  });
}

/** Hands the sample to every guard (they must allow it now), runs the command, and waits for every guard to deny it all. */
async function measure(name, covers, args, sample, env, guards) {
  const id = randomUUID();
  const watching = await Promise.all(guards.map((g) => nextMessage(g, (m) => m.type === 'watching' && m.id === id, () => g.send({ type: 'watch', id, tokens: sample }))));
  const pre = watching.find((w) => w.alreadyDenied > 0);
  if (pre) throw new Error(`${name}: ${pre.alreadyDenied} sample tokens were denied before the command (${pre.reasons.join('; ')})`);
  const denied = Promise.all(guards.map((g) => nextMessage(g, (m) => m.type === 'denied' && m.id === id)));
  note(`${name}: running \`jwtir ${args.join(' ')}\``);
  const t0 = stamp();
  const out = await runCli(args, env);
  const commandMs = stamp() - t0;
  const deniedMs = Math.max(...(await denied).map((m) => m.t)) - t0;
  const json = JSON.parse(out);
  const done = json.steps.find((s) => s.state === 'done');
  note(`${name}: command ${sec(commandMs)}, every guard denies ${sec(deniedMs)} after its start`);
  const o = done?.outputs ?? {};
  const covered = o.jtis !== undefined ? `${fmt(o.jtis)} jtis` : `${fmt(o.sessions)} sessions of ${fmt(o.users)} users`;
  return { name, covers, covered, commandMs, deniedMs, runId: json.runId };
}

async function undo(env, result) {
  const t = Date.now();
  await runCli(['runs', 'rollback', String(result.runId), '--yes'], env);
  note(`rolled back run ${result.runId} for the next measurement in ${sec(Date.now() - t)} (not timed)`);
}

function nextMessage(child, match, send) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m.type === 'error') throw new Error(m.message);
      if (match(m)) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
    send?.();
  });
}

await main();
