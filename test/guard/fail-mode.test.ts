import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { runOk } from '../helpers/cli.js';
import { setPolicy } from '../helpers/keys.js';
import { describeBackend, freshCase } from '../helpers/services.js';
import { guardFor } from '../helpers/state.js';
import type { Guard, GuardEvent } from '../../src/guard/index.js';

/** A Redis of this test's own, so it can be stopped without touching anyone else's. */
const port = 20000 + Math.floor(Math.random() * 20000);
let redis: ChildProcess | undefined;
async function startRedis(): Promise<void> {
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.quit();
      return;
    } catch {
      probe.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('redis-server did not start');
}
async function stopRedis(): Promise<void> {
  const r = redis;
  redis = undefined;
  if (!r) return;
  const gone = new Promise((resolve) => r.once('exit', resolve));
  r.kill('SIGKILL');
  await gone;
}

const base = freshCase('postgres+redis', 'failmode');
const c = { ...base, env: { ...base.env, REDIS_URL: `redis://127.0.0.1:${port}/0` } };
const secret = randomBytes(32).toString('hex');
const token = (() => {
  const now = Math.floor(Date.now() / 1000);
  const input = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'u1', iat: now, exp: now + 3600 })).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
})();

describeBackend(c, 'when Redis becomes unreachable the guard follows its fail mode', () => {
  let guard: Guard;
  const events: GuardEvent[] = [];
  const waitFor = async (what: () => boolean, ms = 5000) => {
    const t0 = Date.now();
    while (!what() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
    return what();
  };

  beforeAll(async () => {
    await startRedis();
    await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...c.env, S: secret } });
    guard = await guardFor(c.env, { pollIntervalMs: 100, staleAfterMs: 1000, onEvent: (e) => events.push(e) });
  });
  afterAll(async () => {
    await guard?.close();
    await stopRedis();
  });

  it('a quiet store is not an unreachable one: with rare polling and no changes, the guard stays healthy past its staleness bound', async () => {
    const quiet = await guardFor(c.env, { pollIntervalMs: 600_000, staleAfterMs: 400 });
    try {
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 250));
        expect(quiet.healthy).toBe(true);
        expect(quiet.authorize(token).decision).toBe('allow');
      }
    } finally {
      await quiet.close();
    }
  });

  it('closed (the default): every request is denied with store_unavailable, and the guard says so', async () => {
    expect(guard.authorize(token).decision).toBe('allow');
    await stopRedis();
    expect(await waitFor(() => !guard.healthy)).toBe(true);
    expect(events.find((e) => e.type === 'degraded')).toMatchObject({ type: 'degraded', failMode: 'closed' });
    expect(guard.authorize(token)).toMatchObject({ decision: 'deny', reasons: ['store_unavailable'] });
  });

  it('recovers when Redis is back, and `jwtir sync` rebuilds the hot copy a restarted (empty) Redis lost', async () => {
    await startRedis();
    const res = await runOk(['sync', '--json'], { env: c.env });
    expect(res.json).toMatchObject({ keys: 1 });
    expect(await waitFor(() => guard.healthy)).toBe(true);
    expect(events.some((e) => e.type === 'recovered')).toBe(true);
    expect(guard.authorize(token).decision).toBe('allow');
    // A guard started now (from the rebuilt copy) knows the key too.
    const fresh = await guardFor(c.env);
    expect(fresh.authorize(token).decision).toBe('allow');
    await fresh.close();
  });

  it('open-for-reads: reads go on with the last known state, critical operations are denied', async () => {
    const version = await setPolicy(c.env, (d) => ({ ...d, failMode: 'open-for-reads' }));
    expect(await waitFor(() => guard.policyVersion === version)).toBe(true);
    events.length = 0;
    await stopRedis();
    expect(await waitFor(() => !guard.healthy)).toBe(true);
    expect(events.find((e) => e.type === 'degraded')).toMatchObject({ failMode: 'open-for-reads' });
    expect(guard.authorize(token, { operation: 'read' }).decision).toBe('allow');
    expect(guard.authorize(token, { operation: 'critical' })).toMatchObject({ decision: 'deny', reasons: ['store_unavailable'] });
  });

  it('nothing hangs: a guard cannot start against an unreachable Redis and says so within seconds', async () => {
    const t0 = Date.now();
    await expect(guardFor(c.env)).rejects.toThrow(/cannot connect to Redis/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
