#!/usr/bin/env node
// `npm run demo`: the main job on the embedded default, end to end. A legacy service whose HS256
// secret leaked (20,000 sessions, tokens minted by jsonwebtoken) gets a staged rotation through
// the real `jwtir` binary; the guard shows its verdicts before and after.
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import chalk from 'chalk';
import jwt from 'jsonwebtoken';
import { createGuard, recordSessions } from '../dist/guard/index.js';
import { openBackends } from '../dist/store/open.js';
import { resolveSettings } from '../dist/config/settings.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stateDir = process.env.JWTIR_STATE_DIR ?? mkdtempSync(path.join(os.tmpdir(), 'jwtir-demo-'));
const env = { ...process.env, JWTIR_STATE_DIR: stateDir, DATABASE_URL: '', REDIS_URL: '', JWTIR_KEK: '' };
const SESSIONS = 20_000;

if (process.env.NO_COLOR || !process.stderr.isTTY) chalk.level = 0;
const say = (text) => process.stderr.write(`\n${chalk.bold(`== ${text}`)}\n`);
function jwtir(...args) {
  process.stderr.write(`\n$ jwtir ${args.join(' ')}\n`);
  const res = spawnSync(process.execPath, [path.join(root, 'bin/jwtir'), ...args], { env, stdio: 'inherit' });
  if (res.status !== 0) {
    process.stderr.write(`jwtir exited ${res.status}; the demo stops here (state kept in ${stateDir})\n`);
    process.exit(res.status ?? 1);
  }
}

say(`A legacy service: ${SESSIONS.toLocaleString()} sessions signed with one leaked HS256 secret (state in ${stateDir})`);
jwtir('init');
const secret = randomBytes(32).toString('base64url');
env.JWT_SECRET = secret;
jwtir('keys', 'import', '--kid', 'legacy-hs256', '--alg', 'HS256', '--secret-env', 'JWT_SECRET');
delete env.JWT_SECRET;

const now = Math.floor(Date.now() / 1000);
const sessions = [];
const samples = {};
for (let i = 0; i < SESSIONS; i++) {
  const roles = i % 100 === 0 ? ['admin'] : i % 100 === 1 ? ['staff'] : ['customer'];
  const s = { sid: randomUUID(), sub: `user-${i}`, kid: 'legacy-hs256', roles, fph: null, issuedAt: new Date((now - 600) * 1000), expiresAt: new Date((now + 3000) * 1000), source: 'demo' };
  sessions.push(s);
  if (i < 3) samples[roles[0]] = jwt.sign({ sub: s.sub, sid: s.sid, roles, iat: now - 600 }, secret, { algorithm: 'HS256', expiresIn: 3600 });
}
const forged = jwt.sign({ sub: 'user-0', roles: ['admin'], iat: now - 600 }, randomBytes(32), { algorithm: 'HS256', expiresIn: 3600 });

async function verdicts(title, extra = {}) {
  const settings = resolveSettings({}, env);
  const backends = await openBackends(settings);
  if (sessions.length) {
    await recordSessions(backends.db, sessions.splice(0));
  }
  const guard = await createGuard({ backends, stateDir, ...extra });
  say(title);
  const rows = Object.entries(samples).map(([who, token]) => [who, guard.verify(token)]);
  rows.push(['token signed with another secret', guard.verify(forged)]);
  if (extra.issueNew) {
    const fresh = await guard.issue({ sub: 'user-0', roles: ['admin'], ttlSec: 7200 });
    samples['new token (after re-login)'] = fresh.token;
    rows.push(['new token (after re-login)', guard.verify(fresh.token)]);
  }
  for (const [who, v] of rows) {
    const mark = v.decision === 'allow' ? chalk.green('allow') : `${chalk.red('deny')}  ${v.reasons.join(',')}`;
    process.stderr.write(`  ${who.padEnd(34)} ${mark}${v.kid ? `  (kid ${v.kid})` : ''}\n`);
  }
  await guard.close();
  await backends.close();
}

await verdicts('Before: the guard accepts every legacy token (and the attacker could mint more)');
say('The plan first (nothing changes), then the staged rotation');
jwtir('rotate', '--staged', '--compromised', '--publish-wait', '2s', '--dry-run');
jwtir('rotate', '--staged', '--compromised', '--publish-wait', '2s', '--yes');
await verdicts('After: customers keep working during the grace period; admins and staff log in again', { issueNew: true });
await verdicts('After the grace period ends (clock moved 1 h 1 min ahead): the old key verifies nothing', { now: () => Date.now() + 3_660_000 });
jwtir('status');
jwtir('audit', 'trail');
say(`Done. Inspect the run: JWTIR_STATE_DIR=${stateDir} ./bin/jwtir runs show 2`);
