// `npm run bench:guard`: the guard's full decision against jose, fast-jwt and the node:crypto
// floor, side by side in one run, plus revocation propagation across 8 guard processes and the
// memory of 1,000,000 revoked jtis. Not a test: it prints numbers (see issue 3, "Benchmark").
//
// Needs Postgres and Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL, defaults below). Everything it
// creates lives in a fresh schema `bench_<random>` and under the Redis prefix
// `jwtir-bench:<random>:`; both are removed at the end, also on failure or Ctrl-C.
//
// Knobs (environment): BENCH_COLD_SCALE (multiplies the cold token counts, default 1; more tokens,
// longer turns), BENCH_ROUNDS_PER_BLOCK (finer interleaving, default 1), BENCH_ROUNDS (propagation rounds, default 100),
// BENCH_MEMORY_JTIS (default 1,000,000), BENCH_GUARDS (propagation processes, default 8),
// BENCH_ONLY (comma-separated sections: throughput, propagation, memory; default all three),
// BENCH_ALGS (comma-separated throughput rows: HS256, RS256, ES256, EdDSA, HS256-compromised).
import { fork } from 'node:child_process';
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  randomBytes,
  randomUUID,
  sign as cryptoSign,
  timingSafeEqual,
  verify as cryptoVerify,
  webcrypto,
} from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createVerifier } from 'fast-jwt';
import { Redis } from 'ioredis';
import { importJWK, jwtVerify } from 'jose';
import { deleteRedisPrefix, DIST, dropSchema, PG_URL, REDIS_URL, runCli } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const COLD_SCALE = Number(process.env.BENCH_COLD_SCALE ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 100);
const MEMORY_JTIS = Number(process.env.BENCH_MEMORY_JTIS ?? 1_000_000);
const GUARDS = Number(process.env.BENCH_GUARDS ?? 8);
const WARM_POOL = 1000;
const ONLY = new Set((process.env.BENCH_ONLY ?? 'throughput,propagation,memory').split(','));

const hr = process.hrtime.bigint;
const stamp = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64u = (s) => Buffer.from(s).toString('base64url');
const log = (s = '') => process.stdout.write(`${s}\n`);
const note = (s) => process.stderr.write(`  · ${s}\n`);


// ───────────────────────────────────────────────────────────────────────────────────────────
// Orchestration and cleanup
// ───────────────────────────────────────────────────────────────────────────────────────────

async function main() {
  const started = Date.now();
  const id = randomBytes(4).toString('hex');
  const env = {
    DATABASE_URL: PG_URL,
    REDIS_URL,
    JWTIR_SCHEMA: `bench_${id}`,
    JWTIR_REDIS_PREFIX: `jwtir-bench:${id}:`,
    JWTIR_KEK: randomBytes(32).toString('base64'),
    JWTIR_ACTOR: 'bench@jwtir',
    CI: 'true',
    NO_COLOR: '1',
  };
  const children = new Set();
  const state = { guard: undefined, backends: undefined };
  let cleaned;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await state.guard?.close().catch(() => {});
      await state.backends?.close().catch(() => {});
      const [schemaOk, keys] = await Promise.all([dropSchema(env.JWTIR_SCHEMA), deleteRedisPrefix(env.JWTIR_REDIS_PREFIX)]);
      log(`\ncleanup: schema ${env.JWTIR_SCHEMA} ${schemaOk ? 'dropped' : 'NOT dropped (see stderr)'}, ${keys} Redis keys under ${env.JWTIR_REDIS_PREFIX} deleted, ${children.size} child processes ended`);
    })());
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up…\n`);
      cleanup().finally(() => process.exit(130));
    });
  }

  printMachine(env);
  let failed = false;
  try {
    const setup = await setUp(env, state);
    if (ONLY.has('throughput')) await throughput(setup);
    await state.guard.close();
    state.guard = undefined;
    if (ONLY.has('propagation')) await propagation(env, setup, children);
    if (ONLY.has('memory')) await memory(env, setup, children);
  } catch (error) {
    failed = true;
    process.stderr.write(`\nbenchmark failed: ${error?.stack ?? error}\n`);
  } finally {
    await cleanup();
    log(`total time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  process.exit(failed ? 1 : 0);
}

function printMachine(env) {
  const cpus = os.cpus();
  log('jwtir guard benchmark');
  log(`node ${process.version} · ${cpus[0]?.model ?? 'unknown cpu'} · ${cpus.length} cores · ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB · ${os.platform()} ${os.release()}`);
  log(`Postgres ${PG_URL} schema ${env.JWTIR_SCHEMA} · Redis ${REDIS_URL} prefix ${env.JWTIR_REDIS_PREFIX}`);
  log(`load average (1/5/15 min) at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} — other work on this machine skews absolute numbers; ratios come from interleaved runs`);
  log(`contenders take turns in ${BLOCKS * ROUNDS_PER_BLOCK} rounds per comparison, after warm-up · every request is a fresh string made from a stored Buffer (buf.toString('latin1')), for every contender`);
  log('');
}



// ───────────────────────────────────────────────────────────────────────────────────────────
// State: keys through the CLI, the rest through the same library/store APIs the CLI uses
// ───────────────────────────────────────────────────────────────────────────────────────────


async function setUp(env, state) {
  const t0 = Date.now();
  const step = async (what, fn) => {
    const t = Date.now();
    const r = await fn();
    note(`${what} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    return r;
  };
  const { resolveSettings } = await import(DIST('config/settings.js'));
  const { openBackends } = await import(DIST('store/open.js'));
  const { open: unseal } = await import(DIST('crypto/envelope.js'));
  const { syncKeysToHotStore } = await import(DIST('state/keys.js'));
  const { recordSessions, syncLedgerToHotStore } = await import(DIST('state/ledger.js'));
  const { changePolicy } = await import(DIST('state/policy.js'));
  const { revoke } = await import(DIST('state/revocations.js'));
  const { syncWatermarks } = await import(DIST('state/watermarks.js'));
  const { createGuard, cohortOf } = await import(DIST('guard/index.js'));

  log('setup');
  // Keys: the legacy HS256 key first (it becomes the compromised one), then one fresh key per alg.
  await step('jwtir keys generate --alg HS256|HS256|RS256|ES256|EdDSA --publish --yes (5 CLI runs)', async () => {
    for (const alg of ['HS256', 'HS256', 'RS256', 'ES256', 'EdDSA']) await runCli(['keys', 'generate', '--alg', alg, '--publish', '--yes'], env);
  });
  const backends = (state.backends = await openBackends(resolveSettings({}, { ...env })));
  const { db, hot } = backends;
  const kek = Buffer.from(env.JWTIR_KEK, 'base64');
  const rows = await db.query(`SELECT kid, alg, private_enc, public_jwk FROM keys WHERE origin = 'generated' ORDER BY created_at, kid`);
  if (rows.length !== 5) throw new Error(`expected 5 generated keys, found ${rows.length}`);
  const keys = rows.map((r) => {
    const material = unseal(kek, r.private_enc, r.kid);
    if (r.alg === 'HS256') return { kid: r.kid, alg: r.alg, secret: material };
    const jwk = typeof r.public_jwk === 'string' ? JSON.parse(r.public_jwk) : r.public_jwk;
    return { kid: r.kid, alg: r.alg, privateKey: createPrivateKey({ key: JSON.parse(material.toString()), format: 'jwk' }), publicKey: createPublicKey({ key: jwk, format: 'jwk' }), publicJwk: jwk };
  });
  const legacy = keys[0];
  const byAlg = Object.fromEntries(keys.slice(1).map((k) => [k.alg, k]));

  await step(`legacy ${legacy.kid} flagged compromised (UPDATE keys … + syncKeysToHotStore)`, async () => {
    await db.query('UPDATE keys SET compromised = true, compromised_at = now() WHERE kid = $1', [legacy.kid]);
    await syncKeysToHotStore(db, hot);
  });

  // Users, devices, sessions. 10,000 users × 2 devices, one session per device (ledger of the legacy kid).
  const USERS = 10_000;
  const nowSec = Math.floor(Date.now() / 1000);
  const users = [];
  for (let i = 0; i < USERS; i++) {
    const sub = `user-${i}`;
    users.push({
      sub,
      cohort: cohortOf(sub),
      devices: [0, 1].map((j) => createHmac('sha256', 'bench').update(`${sub}/${j}`).digest('hex')),
      sids: [0, 1].map(() => randomBytes(16).toString('base64url')),
    });
  }
  await step(`device registry: ${USERS * 2} devices (bulk INSERT into devices + hot.putDevices; recordDevice is one round trip per device)`, async () => {
    const entries = users.flatMap((u) => u.devices.map((fph) => ({ sub: u.sub, fph, confirmed: true, reputation: 'good' })));
    await db.query(
      `INSERT INTO devices (sub, fph, confirmed_at, reputation) SELECT s, f, now(), 'good' FROM unnest($1::text[], $2::text[]) AS t(s, f) ON CONFLICT DO NOTHING`,
      [entries.map((e) => e.sub), entries.map((e) => e.fph)],
    );
    await hot.putDevices(entries);
  });
  await step(`session ledger: ${USERS * 2} sessions of the legacy kid (recordSessions + syncLedgerToHotStore)`, async () => {
    const sessions = users.flatMap((u) =>
      u.sids.map((sid, j) => ({ sid, sub: u.sub, kid: legacy.kid, roles: ['customer'], fph: u.devices[j], issuedAt: new Date((nowSec - 3600) * 1000), expiresAt: new Date((nowSec + 86400) * 1000), source: 'import' })),
    );
    await recordSessions(db, sessions);
    await syncLedgerToHotStore(db, hot, legacy.kid);
  });
  const policy = await step('policy: legacy kid cutover 10 %, maxAge 1 d, rate limit 1e9/60 s; step-up new/bad device; block-critical dirty device; forgery unknown device (changePolicy)', () =>
    changePolicy(
      db,
      hot,
      (doc) => ({
        ...doc,
        kids: { ...doc.kids, [legacy.kid]: { cutoverPercent: 10, maxAgeSec: 86400, rateLimit: { ops: 1_000_000_000, windowSec: 60 } } },
        stepUp: { newDevice: true, badReputation: true },
        blockCritical: { dirtyDevice: true },
        forgery: { unknownDevice: true },
      }),
      { actor: 'bench@jwtir' },
    ),
  );
  await step('revocations: 100,000 jtis (revoke(db, hot, "jti", …))', () =>
    revoke(
      db,
      hot,
      'jti',
      Array.from({ length: 100_000 }, () => ({ value: randomBytes(16).toString('base64url'), expiresAt: new Date((nowSec + 3600) * 1000) })),
      { reason: 'bench' },
    ),
  );
  const marked = users.filter((_, i) => i % 10 === 0).map((u) => u.sub);
  await step(`user watermarks: ${marked.length} users, not-before = now - 1 h (INSERT INTO watermarks + syncWatermarks)`, async () => {
    await db.query(
      `INSERT INTO watermarks (scope, subject, not_before, run_id, step, reason) SELECT 'user', s, to_timestamp($2), 0, 'bench', 'bench' FROM unnest($1::text[]) AS s`,
      [marked, nowSec - 3600],
    );
    await syncWatermarks(db, hot, 'user', marked);
  });

  const guard = await step('createGuard (Postgres + Redis, default push) loads the snapshot', () =>
    createGuard({ databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL, schema: env.JWTIR_SCHEMA, redisPrefix: env.JWTIR_REDIS_PREFIX, kek: env.JWTIR_KEK }),
  );
  state.guard = guard;
  note(`policy version ${policy.version}; setup took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // Every token goes to a user outside the legacy kid's cutover cohorts (cohort ≥ 10), so every
  // request walks the whole pipeline to `allow` (a cut-over user is denied early, which is cheaper).
  const eligible = users.filter((u) => u.cohort >= 10);
  return { env, db, hot, kek, keys, legacy, byAlg, users, eligible, guard, revoke, nowSec };
}

// ───────────────────────────────────────────────────────────────────────────────────────────
// Tokens
// ───────────────────────────────────────────────────────────────────────────────────────────

function signerFor(key) {
  if (key.alg === 'HS256') {
    const k = createSecretKey(key.secret);
    return async (inputs) => inputs.map((input) => createHmac('sha256', k).update(input).digest());
  }
  const algo = key.alg === 'EdDSA' ? null : 'sha256';
  const k = key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey;
  // Asynchronous sign runs on the libuv pool: uses every core (RS256 signing is ~1 ms a token).
  return async (inputs) => {
    const out = new Array(inputs.length);
    const CONC = 64;
    for (let i = 0; i < inputs.length; i += CONC) {
      await Promise.all(
        inputs.slice(i, i + CONC).map(
          (input, j) =>
            new Promise((resolve, reject) =>
              cryptoSign(algo, Buffer.from(input), k, (err, sig) => {
                if (err) reject(err);
                else resolve((out[i + j] = sig));
              }),
            ),
        ),
      );
    }
    return out;
  };
}

/** `count` distinct tokens (fresh jti each) for eligible users, as Buffers, with the request context each is presented with. */
async function mintTokens(setup, key, count) {
  const { eligible, nowSec } = setup;
  const header = b64u(JSON.stringify({ alg: key.alg, kid: key.kid }));
  const inputs = [];
  const ctxs = [];
  const jtis = [];
  for (let i = 0; i < count; i++) {
    const u = eligible[(Math.random() * eligible.length) | 0];
    const j = i & 1;
    const iat = nowSec - ((Math.random() * 600) | 0);
    const jti = randomBytes(16).toString('base64url');
    inputs.push(`${header}.${b64u(JSON.stringify({ sub: u.sub, sid: u.sids[j], jti, iat, exp: iat + 900 }))}`);
    ctxs.push({ fingerprint: u.devices[j], operation: 'read' });
    jtis.push(jti);
  }
  const sigs = await signerFor(key)(inputs);
  const bufs = inputs.map((input, i) => Buffer.from(`${input}.${sigs[i].toString('base64url')}`, 'latin1'));
  return { bufs, ctxs, jtis };
}

// ───────────────────────────────────────────────────────────────────────────────────────────
// Contenders
// ───────────────────────────────────────────────────────────────────────────────────────────

/** node:crypto signature check of the token plus JSON.parse of its payload: the floor. */
function floorFor(key) {
  let check;
  if (key.alg === 'HS256') {
    // A raw Buffer key: createHmac with a KeyObject costs ~0.9 µs more per call on this machine.
    const k = Buffer.from(key.secret);
    check = (input, sig) => sig.length === 32 && timingSafeEqual(createHmac('sha256', k).update(input).digest(), sig);
  } else if (key.alg === 'RS256') {
    check = (input, sig) => cryptoVerify('sha256', Buffer.from(input), key.publicKey, sig);
  } else if (key.alg === 'ES256') {
    const k = { key: key.publicKey, dsaEncoding: 'ieee-p1363' };
    check = (input, sig) => cryptoVerify('sha256', Buffer.from(input), k, sig);
  } else {
    check = (input, sig) => cryptoVerify(null, Buffer.from(input), key.publicKey, sig);
  }
  return (token) => {
    const d1 = token.indexOf('.');
    const d2 = token.lastIndexOf('.');
    if (!check(token.slice(0, d2), Buffer.from(token.slice(d2 + 1), 'base64url'))) return false;
    return JSON.parse(Buffer.from(token.slice(d1 + 1, d2), 'base64url').toString('utf8')) !== null;
  };
}

async function joseKeyFor(key) {
  if (key.alg === 'HS256') return webcrypto.subtle.importKey('raw', key.secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
  return importJWK(key.publicJwk, key.alg);
}

function fastJwtFor(key, cache) {
  const k = key.alg === 'HS256' ? key.secret : key.publicKey.export({ type: 'spki', format: 'pem' });
  const verify = createVerifier({ key: k, algorithms: [key.alg], cache });
  return (token) => {
    try {
      verify(token);
      return true;
    } catch {
      return false;
    }
  };
}

/**
 * Runs `fn` `count` times over fresh strings of `bufs` from `from` on, wrapping around (each
 * request gets `buf.toString('latin1')`, so no contender profits from a string whose hash V8
 * already computed).
 */
function runCount(fn, bufs, ctxs, from, count) {
  const n = bufs.length;
  let bad = 0;
  let i = from % n;
  const t0 = hr();
  for (let k = 0; k < count; k++) {
    if (!fn(bufs[i].toString('latin1'), ctxs[i])) bad++;
    if (++i === n) i = 0;
  }
  return { ops: count, ns: Number(hr() - t0), bad };
}

async function runCountAsync(fn, bufs, ctxs, from, count) {
  const n = bufs.length;
  let bad = 0;
  let i = from % n;
  const t0 = hr();
  for (let k = 0; k < count; k++) {
    if (!(await fn(bufs[i].toString('latin1'), ctxs[i]))) bad++;
    if (++i === n) i = 0;
  }
  return { ops: count, ns: Number(hr() - t0), bad };
}

/** Runs `fn` (async) over `bufs[from..from+count)`, `concurrency` requests in flight at a time. */
async function runPooled(fn, bufs, ctxs, from, count, concurrency = POOL_CONCURRENCY) {
  let next = from;
  const to = from + count;
  let bad = 0;
  const t0 = hr();
  const lane = async () => {
    while (next < to) {
      const i = next++;
      if (!(await fn(bufs[i].toString('latin1'), ctxs[i]))) bad++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { ops: count, ns: Number(hr() - t0), bad };
}

const POOL_CONCURRENCY = 16;
// This machine's speed swings by 15-40 % for a few hundred ms at a time (a shared VM; seen in
// CPU time too), so contenders take turns in rounds of 10-60 ms: within one round they see the
// same machine. Much shorter turns make every contender start each turn with the CPU caches
// full of the others' data, which is not how a gateway runs (the guard keeps state; the plain
// verifiers barely do); BENCH_ROUNDS_PER_BLOCK raises the interleaving to see that effect.
const BLOCKS = 20;
const ROUNDS_PER_BLOCK = Number(process.env.BENCH_ROUNDS_PER_BLOCK ?? 1);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Side by side: `rounds` rounds, in each of which every contender runs one small batch (the order
 * rotates each round), so the machine's swings hit all of them alike. Rounds are grouped into
 * BLOCKS blocks: a contender's rate in a block is its ops / its time there; the reported rate is
 * the median over blocks, `spread` is (max - min) / median of the block rates, and a ratio
 * between two contenders is the median over blocks of their same-block ratio.
 */
async function compare(contenders, rounds) {
  const per = contenders.map(() => Array.from({ length: BLOCKS }, () => ({ ops: 0, ns: 0, bad: 0 })));
  for (let r = 0; r < rounds; r++) {
    const block = Math.min(BLOCKS - 1, Math.floor((r * BLOCKS) / rounds));
    for (let k = 0; k < contenders.length; k++) {
      const c = (k + r) % contenders.length;
      const res = await contenders[c].run(r);
      const acc = per[c][block];
      acc.ops += res.ops;
      acc.ns += res.ns;
      acc.bad += res.bad;
    }
    await sleep(1); // lets the guard's sync and telemetry timers run
  }
  return contenders.map((c, i) => {
    const rates = per[i].map((b) => (b.ops * 1e9) / b.ns);
    const med = median(rates);
    return {
      name: c.name,
      rates,
      rate: med,
      spread: (Math.max(...rates) - Math.min(...rates)) / med,
      ops: per[i].reduce((a, b) => a + b.ops, 0),
      bad: per[i].reduce((a, b) => a + b.bad, 0),
    };
  });
}

// ───────────────────────────────────────────────────────────────────────────────────────────
// Throughput
// ───────────────────────────────────────────────────────────────────────────────────────────

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const pad = (s, n) => String(s).padStart(n);
const padR = (s, n) => String(s).padEnd(n);
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function throughput(setup) {
  const { byAlg, legacy, guard } = setup;
  const scale = (n) => Math.max(BLOCKS * 100, Math.round(n * COLD_SCALE));
  const rows = [
    { title: 'HS256', note: `fresh staged key ${byAlg.HS256.kid}`, key: byAlg.HS256, cold: scale(40_000) },
    { title: 'RS256', note: `fresh staged key ${byAlg.RS256.kid} (2048-bit)`, key: byAlg.RS256, cold: scale(6_000) },
    { title: 'ES256', note: `fresh staged key ${byAlg.ES256.kid}`, key: byAlg.ES256, cold: scale(8_000) },
    { title: 'EdDSA', note: `fresh staged key ${byAlg.EdDSA.kid} (Ed25519)`, key: byAlg.EdDSA, cold: scale(8_000) },
    {
      title: 'HS256-compromised',
      note: `legacy kid ${legacy.kid}: compromised, cutover 10 % (users here are outside it), ledger + unknown-device forgery checks, per-token rate limit`,
      key: legacy,
      cold: scale(40_000),
    },
  ];
  const only = process.env.BENCH_ALGS ? new Set(process.env.BENCH_ALGS.split(',')) : undefined;
  const summary = [];
  // Internal stages, for a breakdown of the cold path (best effort: src/ is being edited).
  let internals;
  try {
    const [{ parseCompactJws }, { verifyToken }, { Replica }] = await Promise.all([import(DIST('guard/jws.js')), import(DIST('guard/verify-token.js')), import(DIST('guard/replica.js'))]);
    const replica = new Replica(setup.kek);
    replica.load(await setup.hot.snapshot());
    internals = { parseCompactJws, verifyToken, replica };
  } catch (error) {
    note(`cold-path breakdown unavailable: ${error?.message ?? error}`);
  }

  for (const row of rows.filter((r) => !only || only.has(r.title))) {
    const { key } = row;
    const t = Date.now();
    const [cold, warmup, pool] = [await mintTokens(setup, key, row.cold + 1), await mintTokens(setup, key, 2000), await mintTokens(setup, key, WARM_POOL)];
    // Its own cold set for authorizeAsync, so neither guard contender meets the other's tokens.
    const coldAsync = key.alg !== 'HS256' ? await mintTokens(setup, key, row.cold) : undefined;
    note(`${row.title}: minted ${fmtInt(row.cold + 1 + 2000 + WARM_POOL)} tokens in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const reasons = new Map();
    const judge = (v) => {
      if (v.decision === 'allow') return true;
      const r = `${v.decision}:${v.reasons.join(',')}`;
      reasons.set(r, (reasons.get(r) ?? 0) + 1);
      return false;
    };
    const guardFn = (token, ctx) => judge(guard.authorize(token, ctx));
    const guardAsyncFn = async (token, ctx) => judge(await guard.authorizeAsync(token, ctx));
    // The thread pool only takes asymmetric signatures (an HMAC is cheaper than the trip).
    const pooled = key.alg !== 'HS256';
    const joseKey = await joseKeyFor(key);
    const joseOpts = { algorithms: [key.alg] };
    const joseFn = async (token) => {
      try {
        await jwtVerify(token, joseKey, joseOpts);
        return true;
      } catch {
        return false;
      }
    };
    const fast = fastJwtFor(key, false);
    const fastCached = fastJwtFor(key, true);
    const floor = floorFor(key);
    const sanity = cold.bufs[0].toString('latin1');
    for (const [name, ok] of [
      ['guard', guardFn(sanity, cold.ctxs[0])],
      ['jose', await joseFn(sanity)],
      ['fast-jwt', fast(sanity)],
      ['floor', floor(sanity)],
    ]) {
      if (!ok) throw new Error(`${row.title}: ${name} rejects a valid token (${[...reasons.keys()].join(' ') || 'no reason'}): ${sanity}`);
    }
    // The sanity token is now in the guard's cache: drop it from the cold set.
    cold.bufs.shift();
    cold.ctxs.shift();
    const rounds = BLOCKS * ROUNDS_PER_BLOCK;
    const BATCH = Math.floor(cold.bufs.length / rounds);
    // jose is 10-20x slower: fewer calls a round keep its turns as short as the others'.
    const joseBatch = Math.max(1, Math.floor(BATCH / 12));
    const at = (r) => r * BATCH;

    // Warm-up of every code path (the guard's cold path on its own distinct tokens).
    runCount(guardFn, warmup.bufs, warmup.ctxs, 0, warmup.bufs.length);
    if (pooled) await runPooled(guardAsyncFn, warmup.bufs, warmup.ctxs, 0, warmup.bufs.length);
    await runCountAsync(joseFn, warmup.bufs, warmup.ctxs, 0, 200);
    runCount(fast, warmup.bufs, warmup.ctxs, 0, 2000);
    runCount(floor, warmup.bufs, warmup.ctxs, 0, 2000);
    for (let k = 0; k < 3; k++) runCount(guardFn, pool.bufs, pool.ctxs, 0, pool.bufs.length); // seen twice: cached
    runCount(fastCached, pool.bufs, pool.ctxs, 0, 2 * pool.bufs.length);
    const stages = [];
    if (internals) {
      const { parseCompactJws, verifyToken, replica } = internals;
      const parseFn = (token) => parseCompactJws(token).payload !== undefined;
      const verifyFn = (token) => 'claims' in verifyToken(replica, token);
      runCount(parseFn, warmup.bufs, warmup.ctxs, 0, 2000);
      runCount(verifyFn, warmup.bufs, warmup.ctxs, 0, 2000);
      stages.push(
        { name: '  (cold stage) parseCompactJws only', run: (r) => runCount(parseFn, cold.bufs, cold.ctxs, at(r), BATCH) },
        { name: '  (cold stage) verifyToken: parse+sig+claim types', run: (r) => runCount(verifyFn, cold.bufs, cold.ctxs, at(r), BATCH) },
      );
    }
    const loadBefore = load();

    // COLD: the guard sees each token once (round r takes the r-th batch of the cold set); jose,
    // fast-jwt and the floor keep no cache, so they take the same batches.
    const coldRes = await compare(
      [
        { name: 'cold  guard.authorize (full decision)', run: (r) => runCount(guardFn, cold.bufs, cold.ctxs, at(r), BATCH) },
        { name: 'cold  jose jwtVerify (pre-imported key)', run: (r) => runCountAsync(joseFn, cold.bufs, cold.ctxs, at(r), joseBatch) },
        { name: 'cold  fast-jwt verify (cache: false)', run: (r) => runCount(fast, cold.bufs, cold.ctxs, at(r), BATCH) },
        { name: 'cold  node:crypto verify + JSON.parse (floor)', run: (r) => runCount(floor, cold.bufs, cold.ctxs, at(r), BATCH) },
        ...(pooled
          ? [{ name: `cold  guard.authorizeAsync (pool, ${POOL_CONCURRENCY} in flight)`, run: (r) => runPooled(guardAsyncFn, coldAsync.bufs, coldAsync.ctxs, at(r), BATCH) }]
          : []),
        ...stages,
      ],
      rounds,
    );
    // WARM: a pool of 1,000 tokens reused round-robin, as a session's access token is.
    const warmBatch = 20 * BATCH;
    const warmAt = (r) => r * warmBatch;
    const warmRes = await compare(
      [
        { name: 'warm  guard.authorize (full decision)', run: (r) => runCount(guardFn, pool.bufs, pool.ctxs, warmAt(r), warmBatch) },
        { name: 'warm  jose jwtVerify (pre-imported key)', run: (r) => runCountAsync(joseFn, pool.bufs, pool.ctxs, warmAt(r), joseBatch) },
        { name: 'warm  fast-jwt verify (cache: false)', run: (r) => runCount(fast, pool.bufs, pool.ctxs, warmAt(r), BATCH) },
        { name: 'warm  fast-jwt verify (cache: true) [info]', run: (r) => runCount(fastCached, pool.bufs, pool.ctxs, warmAt(r), warmBatch) },
        { name: 'warm  node:crypto verify + JSON.parse (floor)', run: (r) => runCount(floor, pool.bufs, pool.ctxs, warmAt(r), BATCH) },
      ],
      rounds,
    );

    const total = cold.bufs[0].length;
    const sigLen = total - cold.bufs[0].lastIndexOf('.') - 1;
    log('');
    log(`── ${row.title} ── ${row.note}`);
    log(`   token ${total} B (signing input ${total - sigLen - 1} B + signature ${sigLen} B; claims sub, sid, jti, iat, exp); cold set ${fmtInt(cold.bufs.length)} distinct tokens, warm pool ${fmtInt(WARM_POOL)}; load avg ${loadBefore} → ${load()}`);
    log(`   ${padR('', 52)}${pad('ops/s', 10)}${pad('µs/op', 10)}${pad('spread', 8)}${pad('vs fast-jwt', 13)}${pad('vs floor', 10)}${pad('ops', 9)}`);
    log(`   (${rounds} interleaved rounds in ${BLOCKS} blocks: ops/s = median over blocks; spread = (max - min) / median; vs = median of same-block ratios)`);
    const paired = (a, b) => median(a.rates.map((x, i) => x / b.rates[i]));
    const print = (list) => {
      const fastRef = list.find((r) => r.name.includes('fast-jwt verify (cache: false)'));
      const floorRef = list.find((r) => r.name.includes('(floor)'));
      for (const r of list) {
        log(
          `   ${padR(r.name, 52)}${pad(fmtInt(r.rate), 10)}${pad((1e6 / r.rate).toFixed(2), 10)}${pad(`${Math.round(r.spread * 100)}%`, 8)}${pad(paired(r, fastRef).toFixed(2) + '×', 13)}${pad(paired(r, floorRef).toFixed(2) + '×', 10)}${pad(fmtInt(r.ops), 9)}${r.bad ? `   ${r.bad} REJECTED` : ''}`,
        );
      }
      const asyncRow = list.find((r) => r.name.includes('authorizeAsync'));
      return {
        guard: list[0].rate,
        jose: list[1].rate,
        fast: fastRef.rate,
        floor: floorRef.rate,
        vsFast: paired(list[0], fastRef),
        vsFloor: paired(list[0], floorRef),
        asyncVsFast: asyncRow ? paired(asyncRow, fastRef) : undefined,
      };
    };
    const c = print(coldRes);
    const w = print(warmRes);
    const coldRatio = c.vsFast;
    const warmRatio = w.vsFast;
    log(
      `   guard-cold / fast-jwt = ${coldRatio.toFixed(2)} (goal ≥ 1.0: ${coldRatio >= 1 ? 'MET' : 'NOT MET'}) · guard-warm / fast-jwt = ${warmRatio.toFixed(2)} (goal ≥ 5.0: ${warmRatio >= 5 ? 'MET' : 'NOT MET'}) · guard-cold / floor = ${c.vsFloor.toFixed(2)} · guard-warm / floor = ${w.vsFloor.toFixed(2)}`,
    );
    if (reasons.size) log(`   guard non-allow decisions: ${[...reasons].map(([r, n]) => `${r} ×${n}`).join(', ')}`);
    if (c.asyncVsFast !== undefined) log(`   guard-cold authorizeAsync / fast-jwt = ${c.asyncVsFast.toFixed(2)} (${os.cpus().length} cores; fast-jwt has no asynchronous verify)`);
    summary.push({ title: row.title, coldRatio, warmRatio, asyncRatio: c.asyncVsFast, coldUs: 1e6 / c.guard, warmUs: 1e6 / w.guard, joseUs: 1e6 / c.jose, fastUs: 1e6 / c.fast, floorUs: 1e6 / c.floor });
  }
  log('');
  log("summary (µs/op: medians over blocks of interleaved rounds; ratios: medians of same-block ops/s ratios, same run)");
  log(`   ${padR('', 20)}${pad('guard cold', 12)}${pad('guard warm', 12)}${pad('jose', 10)}${pad('fast-jwt', 10)}${pad('floor', 10)}${pad('cold/fast', 11)}${pad('warm/fast', 11)}${pad('async/fast', 12)}`);
  for (const s of summary) {
    log(
      `   ${padR(s.title, 20)}${pad(s.coldUs.toFixed(2), 12)}${pad(s.warmUs.toFixed(2), 12)}${pad(s.joseUs.toFixed(2), 10)}${pad(s.fastUs.toFixed(2), 10)}${pad(s.floorUs.toFixed(2), 10)}${pad(s.coldRatio.toFixed(2) + (s.coldRatio >= 1 ? ' ✓' : ' ✗'), 11)}${pad(s.warmRatio.toFixed(2) + (s.warmRatio >= 5 ? ' ✓' : ' ✗'), 11)}${pad(s.asyncRatio === undefined ? '-' : s.asyncRatio.toFixed(2), 12)}`,
    );
  }
  log('   (jose, fast-jwt and floor columns are their cold-set numbers; goals: cold/fast ≥ 1.0, warm/fast ≥ 5.0;');
  log(`    async/fast: authorizeAsync with ${POOL_CONCURRENCY} requests in flight, signatures on libuv's pool, against single-threaded fast-jwt: not the same resources, shown apart)`);
}

// ───────────────────────────────────────────────────────────────────────────────────────────
// Propagation
// ───────────────────────────────────────────────────────────────────────────────────────────

function pct(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${pct(s, 0.5).toFixed(2)} ms · p99 ${pct(s, 0.99).toFixed(2)} ms · max ${s.at(-1).toFixed(2)} ms (n=${s.length})`;
};

async function propagation(env, setup, children) {
  const { db, hot, revoke } = setup;
  const key = setup.byAlg.HS256;
  log('');
  log(`── revocation propagation: ${GUARDS} guard processes (createGuard on the same Postgres + Redis, default push), ${ROUNDS} rounds ──`);
  const procs = [];
  const pending = new Map(); // `${type}:${id}` → { need, got: [], resolve }
  const expect = (type, id, need, timeoutMs) =>
    new Promise((resolve) => {
      const entry = { need, got: [], resolve };
      pending.set(`${type}:${id}`, entry);
      entry.timer = setTimeout(() => {
        pending.delete(`${type}:${id}`);
        resolve(entry.got);
      }, timeoutMs);
    });
  const deliver = (type, id, msg) => {
    const entry = pending.get(`${type}:${id}`);
    if (!entry) return;
    entry.got.push(msg);
    if (entry.got.length === entry.need) {
      clearTimeout(entry.timer);
      pending.delete(`${type}:${id}`);
      entry.resolve(entry.got);
    }
  };
  const t0 = Date.now();
  const ready = expect('ready', 0, GUARDS, 60_000);
  for (let i = 0; i < GUARDS; i++) {
    const child = fork(path.join(HERE, 'propagation-child.mjs'), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    child.on('message', (m) => {
      if (m.type === 'error') process.stderr.write(`guard process ${child.pid}: ${m.message}\n`);
      deliver(m.type, m.type === 'ready' ? 0 : m.id, { ...m, proc: i });
    });
    procs.push(child);
  }
  const up = await ready;
  if (up.length !== GUARDS) throw new Error(`only ${up.length} of ${GUARDS} guard processes became ready`);
  note(`${GUARDS} guard processes ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const perProcess = [];
  const allProcs = [];
  const writeMs = [];
  const afterWrite = [];
  const via = new Map();
  let timeouts = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const { bufs, ctxs, jtis } = await mintTokens(setup, key, 1);
    const token = bufs[0].toString('latin1');
    const watching = expect('watching', round, GUARDS, 10_000);
    for (const p of procs) p.send({ type: 'watch', id: round, token, ctx: ctxs[0] });
    const acks = await watching;
    const notAllowed = acks.filter((a) => a.decision !== 'allow');
    if (acks.length !== GUARDS || notAllowed.length) {
      throw new Error(`round ${round}: ${acks.length}/${GUARDS} guards answered, not allowed: ${JSON.stringify(notAllowed.map((a) => a.reasons))}`);
    }
    await sleep(10 + Math.random() * 20); // de-phase from the guards' timers
    const denied = expect('denied', round, GUARDS, 5000);
    const start = stamp();
    await revoke(db, hot, 'jti', [{ value: jtis[0], expiresAt: new Date(Date.now() + 3600_000) }], { reason: 'bench-propagation' });
    const written = stamp();
    writeMs.push(written - start);
    const got = await denied;
    for (const m of got) afterWrite.push(m.t - written);
    if (got.length < GUARDS) timeouts += GUARDS - got.length;
    const lat = got.map((m) => m.t - start);
    for (const m of got) via.set(m.via, (via.get(m.via) ?? 0) + 1);
    perProcess.push(...lat);
    if (got.length === GUARDS) allProcs.push(Math.max(...lat));
  }
  log(`   measured from just before revoke(db, hot, 'jti', …) (the CLI's store API: Postgres INSERT, then Redis MULTI HSET + XADD) to each process's first deny`);
  log(`   revoke() call itself (Postgres + Redis write):            ${stats(writeMs)}`);
  log(`   per process (revoke() called → that process denies):      ${stats(perProcess)}`);
  log(`   per process (revoke() returned → that process denies):    ${stats(afterWrite)}`);
  log(`   all ${GUARDS} processes deny (revoke() called → last deny):  ${stats(allProcs)}`);
  log(`   goal p99 ≤ 50 ms: ${pct([...allProcs].sort((a, b) => a - b), 0.99) <= 50 ? 'MET' : 'NOT MET'} · load avg ${load()}`);
  log(`   detected via: ${[...via].map(([k, n]) => `${k} ×${n}`).join(', ')}${timeouts ? ` · ${timeouts} process-rounds TIMED OUT (> 5 s)` : ''}`);
  log(`   (${os.cpus().length} cores shared by ${GUARDS} guard processes, the benchmark process, Postgres and Redis)`);
  const closed = Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : p.once('exit', r)))));
  for (const p of procs) p.send({ type: 'close' });
  await Promise.race([closed, sleep(5000)]);
}

// ───────────────────────────────────────────────────────────────────────────────────────────
// Memory with 1,000,000 revoked jtis
// ───────────────────────────────────────────────────────────────────────────────────────────

async function memory(env, setup, children) {
  const { openRedisHotStore } = await import(DIST('store/hot/redis.js'));
  const { syncKeysToHotStore } = await import(DIST('state/keys.js'));
  const memPrefix = `${env.JWTIR_REDIS_PREFIX}mem:`;
  log('');
  log(`── memory: a guard whose store holds ${fmtInt(MEMORY_JTIS)} revoked jtis (separate process, node --expose-gc) ──`);
  const hot = await openRedisHotStore(REDIS_URL, memPrefix);
  const nowSec = Math.floor(Date.now() / 1000);
  const key = setup.byAlg.HS256;
  const probe = await mintTokens(setup, key, 2);
  try {
    await syncKeysToHotStore(setup.db, hot);
    const t = Date.now();
    const entries = new Array(MEMORY_JTIS);
    for (let i = 0; i < MEMORY_JTIS; i++) entries[i] = [randomBytes(16).toString('base64url'), nowSec + 3600];
    entries[0][0] = probe.jtis[0]; // the first probe token is revoked, the second is not
    await hot.putRevocations('jti', entries);
    log(`   written with hot.putRevocations('jti', …) directly (Redis only; revoke() would also INSERT ${fmtInt(MEMORY_JTIS)} Postgres rows) in ${((Date.now() - t) / 1000).toFixed(1)} s; jti = 22-char base64url`);
  } finally {
    await hot.close();
  }
  try {
    const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const [hash, stream] = [await r.call('MEMORY', 'USAGE', `${memPrefix}rev:jti`, 'SAMPLES', '0'), await r.call('MEMORY', 'USAGE', `${memPrefix}changes`, 'SAMPLES', '0')];
    r.disconnect();
    log(`   Redis: hash ${memPrefix}rev:jti ${(hash / 2 ** 20).toFixed(1)} MiB, change stream ${memPrefix}changes ${(stream / 2 ** 20).toFixed(1)} MiB`);
  } catch (error) {
    note(`MEMORY USAGE unavailable: ${error?.message ?? error}`);
  }

  const child = fork(fileURLToPath(import.meta.url), ['--memory-child'], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, ...env, JWTIR_REDIS_PREFIX: memPrefix },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  const result = await new Promise((resolve, reject) => {
    child.once('message', (m) => {
      if (m.type === 'start') child.send({ probes: probe.bufs.map((b) => b.toString('latin1')) });
    });
    child.on('message', (m) => {
      if (m.type === 'result') resolve(m);
      if (m.type === 'error') reject(new Error(m.message));
    });
    child.once('exit', (code) => reject(new Error(`memory child exited ${code}`)));
  });
  const mb = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const { before: b, after: a } = result;
  log(`   before createGuard:  heapUsed ${mb(b.heapUsed)} · rss ${mb(b.rss)} · external ${mb(b.external)}`);
  log(`   after (GC forced):   heapUsed ${mb(a.heapUsed)} · rss ${mb(a.rss)} · external ${mb(a.external)}`);
  log(`   delta:               heapUsed +${mb(a.heapUsed - b.heapUsed)} (${((a.heapUsed - b.heapUsed) / MEMORY_JTIS).toFixed(0)} B per revoked jti) · rss +${mb(a.rss - b.rss)}`);
  log(`   peak rss during load ${mb(result.peakRss)}`);
  log(`   createGuard (connect, snapshot, replica load, first sync): ${result.createMs.toFixed(0)} ms`);
  log(`   hot.snapshot() alone: ${result.snapshotMs.toFixed(0)} ms (${fmtInt(result.snapshotJtis)} jtis) · Replica.load(snapshot): ${result.loadMs.toFixed(1)} ms`);
  if (result.pruneMs !== undefined) log(`   Replica.pruneExpired() over ${fmtInt(result.snapshotJtis)} live jtis (runs every 60 s on the guard's event loop): ${result.pruneMs.toFixed(1)} ms`);
  log(`   load avg ${load()}`);
  log(`   probe decisions: revoked token → ${result.probe[0]}, other token → ${result.probe[1]}`);
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
}

async function memoryChild() {
  const env = process.env;
  const send = (m) => process.send(m);
  process.on('disconnect', () => process.exit(0));
  try {
    const { createGuard } = await import(DIST('guard/index.js'));
    // Load every module createGuard would import lazily, so the baseline counts code, not state.
    await import(DIST('store/open.js'));
    await import(DIST('store/postgres.js'));
    const { openRedisHotStore } = await import(DIST('store/hot/redis.js'));
    const { Replica } = await import(DIST('guard/replica.js'));
    const { probes } = await new Promise((resolve) => {
      process.once('message', resolve);
      send({ type: 'start' });
    });
    const gc = () => {
      for (let i = 0; i < 3; i++) globalThis.gc();
    };
    gc();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
    const t0 = performance.now();
    const guard = await createGuard({ databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL, schema: env.JWTIR_SCHEMA, redisPrefix: env.JWTIR_REDIS_PREFIX, kek: env.JWTIR_KEK });
    const createMs = performance.now() - t0;
    clearInterval(sampler);
    gc();
    const after = process.memoryUsage();
    const probe = probes.map((p) => {
      const v = guard.authorize(p);
      return `${v.decision}${v.reasons.length ? ` (${v.reasons.join(',')})` : ''}`;
    });
    await guard.close();
    // Phases on their own (after the measurement above, so they do not disturb it).
    const hot = await openRedisHotStore(env.REDIS_URL, env.JWTIR_REDIS_PREFIX);
    const t1 = performance.now();
    const snap = await hot.snapshot();
    const snapshotMs = performance.now() - t1;
    await hot.close();
    const snapshotJtis = snap.revocations.jti.size;
    const replica = new Replica(Buffer.from(env.JWTIR_KEK, 'base64'));
    const t2 = performance.now();
    replica.load(snap);
    const loadMs = performance.now() - t2;
    let pruneMs;
    if (typeof replica.pruneExpired === 'function') {
      const t3 = performance.now();
      replica.pruneExpired(Date.now() / 1000);
      pruneMs = performance.now() - t3;
    }
    send({ type: 'result', before, after, peakRss, createMs, snapshotMs, snapshotJtis, loadMs, pruneMs, probe });
    process.exit(0);
  } catch (error) {
    send({ type: 'error', message: String(error?.stack ?? error) });
    process.exit(1);
  }
}

// Entry point (last, so every module-level constant above is initialised).
if (process.argv.includes('--memory-child')) {
  await memoryChild();
} else {
  await main();
}
