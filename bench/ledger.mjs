// `npm run bench:ledger`: session ledger import at scale (issue 5, "Benchmark"). Against real
// Postgres and Redis it times, through the real `bin/jwtir`, the import of BENCH_ROWS sessions
// from a service's Postgres table (--from-sql) and from an NDJSON export (--from-file), each into
// a fresh jwtir state, and then a re-run of each with nothing new. Not a test: it prints numbers.
//
// Everything lives in fresh schemas (`ledger_sql_<random>`, `ledger_file_<random>` for jwtir and
// `ledger_src_<random>` for the service's table), under the Redis prefix `jwtir-ledger:<random>:`
// and in a temporary directory; all are removed at the end, also on failure or Ctrl-C.
// Knobs: BENCH_ROWS (default 1,000,000).
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { deleteRedisPrefix, DIST, dropSchema, PG_URL, REDIS_URL, runCli } from './lib.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const GOAL_MS = 30_000;
const log = (s = '') => process.stdout.write(`${s}\n`);
const note = (s) => process.stderr.write(`  · ${s}\n`);
const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmt = (n) => n.toLocaleString('en-US');

async function main() {
  const id = randomBytes(4).toString('hex');
  const secret = randomBytes(32).toString('hex');
  const source = `ledger_src_${id}`;
  const base = { REDIS_URL, JWTIR_KEK: randomBytes(32).toString('base64'), JWTIR_ACTOR: 'bench@jwtir', CI: 'true', NO_COLOR: '1', DATABASE_URL: PG_URL };
  const envs = {
    sql: { ...base, JWTIR_SCHEMA: `ledger_sql_${id}`, JWTIR_REDIS_PREFIX: `jwtir-ledger:${id}:sql:` },
    file: { ...base, JWTIR_SCHEMA: `ledger_file_${id}`, JWTIR_REDIS_PREFIX: `jwtir-ledger:${id}:file:` },
  };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'jwtir-ledger-bench-'));
  let cleaned;
  const cleanup = () =>
    (cleaned ??= (async () => {
      rmSync(tmp, { recursive: true, force: true });
      const dropped = await Promise.all([source, envs.sql.JWTIR_SCHEMA, envs.file.JWTIR_SCHEMA].map(dropSchema));
      const keys = await deleteRedisPrefix(`jwtir-ledger:${id}:`);
      log(`\ncleanup: ${dropped.filter(Boolean).length} of 3 schemas dropped, ${keys} Redis keys deleted, ${tmp} removed`);
    })());
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => cleanup().finally(() => process.exit(130)));

  const cpus = os.cpus();
  log('jwtir ledger import benchmark');
  log(`node ${process.version} · ${cpus[0]?.model ?? 'unknown cpu'} · ${cpus.length} cores · Postgres ${PG_URL} · Redis ${REDIS_URL}`);
  log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  log('');
  let failed = false;
  try {
    const nowSec = Math.floor(Date.now() / 1000);
    await seedTable(source, nowSec);
    const file = path.join(tmp, 'sessions.ndjson');
    await writeNdjson(file, nowSec);
    for (const env of Object.values(envs)) {
      await runCli(['init'], env);
      await runCli(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET'], { ...env, JWT_SECRET: secret });
    }
    const sqlArgs = ['ledger', 'import', '--from-sql', `SELECT * FROM ${source}.app_sessions`, '--source-url', PG_URL, '--map', 'sid=id,sub=user_id,issued_at=created_at,device=user_agent', '--yes', '--json'];
    const fileArgs = ['ledger', 'import', '--from-file', file, '--yes', '--json'];
    const results = [
      await measure('--from-sql', `a ${fmt(ROWS)}-row sessions table (uuid, text, timestamptz, text[])`, sqlArgs, envs.sql),
      await measure('--from-file', `an NDJSON file of ${fmt(ROWS)} lines, ${(statSync(file).size / 1e6).toFixed(0)} MB`, fileArgs, envs.file),
    ];
    log('');
    log('| source | what | rows read / new | import (wall, real binary) | rows/s | re-run with nothing new | goal |');
    log('| --- | --- | ---: | ---: | ---: | ---: | --- |');
    for (const r of results) {
      log(`| \`${r.name}\` | ${r.what} | ${fmt(r.read)} / ${fmt(r.new)} | ${sec(r.ms)} | ${fmt(Math.round(r.read / (r.ms / 1000)))} | ${sec(r.rerunMs)} (${fmt(r.rerunRead)} read) | ≤ ${sec(GOAL_MS)}: ${r.ms <= GOAL_MS ? 'met' : 'NOT met'} |`);
    }
    log('');
    log('each import goes into a fresh jwtir state on the same Postgres: read, check and stage the whole source, then one run merges it into the ledger.');
  } catch (error) {
    failed = true;
    process.stderr.write(`\nbench:ledger failed: ${error?.stack ?? error}\n`);
  } finally {
    await cleanup();
  }
  process.exit(failed ? 1 : 0);
}

/** The service's own sessions table, filled server-side (not timed). */
async function seedTable(schema, nowSec) {
  const { openPostgres } = await import(DIST('store/postgres.js'));
  const db = await openPostgres(PG_URL, 'public', { max: 1, queryTimeoutMs: 600_000 });
  const t = Date.now();
  try {
    await db.exec(`CREATE SCHEMA ${schema};
      CREATE TABLE ${schema}.app_sessions (id uuid PRIMARY KEY, user_id text NOT NULL, created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, roles text[] NOT NULL, user_agent text)`);
    await db.query(
      `INSERT INTO ${schema}.app_sessions
       SELECT gen_random_uuid(), 'user-' || (i % ($1::int / 2)), to_timestamp($2::bigint - 3600 + i % 3000), to_timestamp($2::bigint + 3600 + i % 3000),
              CASE WHEN i % 100 = 0 THEN '{admin}'::text[] ELSE '{customer}'::text[] END, 'Firefox on Linux'
       FROM generate_series(1, $1::int) AS i`,
      [ROWS, nowSec],
    );
    await db.exec(`ANALYZE ${schema}.app_sessions`);
  } finally {
    await db.close();
  }
  note(`service table ${schema}.app_sessions: ${fmt(ROWS)} rows in ${sec(Date.now() - t)} (not timed)`);
}

/** An export as a service would write it: ISO 8601 issue times, epoch-second expiries, roles as a list. */
async function writeNdjson(file, nowSec) {
  const t = Date.now();
  const out = createWriteStream(file);
  const BLOCK = 10_000;
  for (let i = 0; i < ROWS; i += BLOCK) {
    let text = '';
    for (let j = i; j < Math.min(ROWS, i + BLOCK); j++) {
      const iat = nowSec - 3600 + (j % 3000);
      text += `{"sid":"${randomBytes(16).toString('hex')}","sub":"user-${j % (ROWS / 2)}","issued_at":"${new Date(iat * 1000).toISOString()}","expires_at":${iat + 7200},"roles":["${j % 100 === 0 ? 'admin' : 'customer'}"]}\n`;
    }
    if (!out.write(text)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  note(`NDJSON export: ${fmt(ROWS)} lines in ${sec(Date.now() - t)} (not timed)`);
}

async function measure(name, what, args, env) {
  note(`${name}: running \`jwtir ${args.join(' ')}\``);
  const t0 = performance.now();
  const first = JSON.parse(await runCli(args, env));
  const ms = performance.now() - t0;
  const o = first.steps[0].outputs;
  if (first.status !== 'done' || o.new !== ROWS) throw new Error(`${name}: expected ${ROWS} new sessions, got ${JSON.stringify(first)}`);
  note(`${name}: ${fmt(o.read)} rows read, ${fmt(o.new)} new in ${sec(ms)}`);
  const t1 = performance.now();
  const again = JSON.parse(await runCli(args, env));
  const rerunMs = performance.now() - t1;
  const a = again.steps[0].outputs;
  if (a.new !== 0) throw new Error(`${name}: the re-run added ${a.new} sessions`);
  note(`${name}: re-run read ${fmt(a.read)} rows, none new, in ${sec(rerunMs)}`);
  return { name, what, read: o.read, new: o.new, ms, rerunMs, rerunRead: a.read };
}

await main();
