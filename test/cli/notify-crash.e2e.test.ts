import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { BIN, runCli, runOk } from '../helpers/cli.js';
import { announcedRunId, notifyState } from '../helpers/notify.js';
import { Receiver } from '../helpers/receiver.js';
import { describeBackend, freshCase } from '../helpers/services.js';
import { withState } from '../helpers/state.js';

/**
 * Every notify runbook killed with SIGKILL at its step's `before` and `after` failpoints, then
 * resumed: each user is in the outbox once, and the local servers (which count every request)
 * receive each message once. Also a kill in the middle of a SET push, and one during a rollback.
 */
const c = freshCase('postgres+redis', 'notify_crash');

describeBackend(c, 'notify runs killed at any point resume without notifying anyone twice', () => {
  let hook: Receiver;
  let ssf: Receiver;
  let env: Record<string, string>;
  let state: Awaited<ReturnType<typeof notifyState>>;
  const jtiOf = (body: string) => decodeJwt(body).jti as string;

  const outbox = (runId: number) => withState(env, (b) => b.db.query<{ sub: string }>('SELECT sub FROM notify_outbox WHERE run_id = $1 ORDER BY sub', [runId]));
  const sends = (runId: number) => withState(env, (b) => b.db.query<{ jti: string; status: string }>('SELECT jti, status FROM notify_sends WHERE run_id = $1', [runId]));

  beforeAll(async () => {
    hook = await Receiver.start();
    ssf = await Receiver.start(() => ({ status: 202 }));
    env = {
      ...c.env,
      JWTIR_ONCALL_WEBHOOK_URL: hook.url('/services/T0/B0/crash'),
      JWTIR_SET_ISSUER: 'https://auth.example.com/',
      JWTIR_SET_RECEIVERS: JSON.stringify([{ url: ssf.url('/push'), audience: 'https://rp.example/' }]),
    };
    // 100 users; the rotation logs out the 20 admins and staff.
    state = await notifyState(env, { count: 100, privilegedEvery: 10, rotateTo: 'ES256' });
    expect(state.privilegedSubs).toHaveLength(20);
  });
  afterAll(async () => {
    await hook.close();
    await ssf.close();
  });

  const cases = [
    {
      runbook: 'users',
      step: 'enqueue',
      args: () => ['notify', 'users', '--from-run', String(state.rotateRun), '--kind', 'forced_logout'],
      check: async (runId: number) => expect((await outbox(runId)).map((r) => r.sub)).toEqual(state.privilegedSubs),
    },
    {
      runbook: 'oncall',
      step: 'post',
      args: (tag: string) => ['notify', 'oncall', '--message', tag],
      check: async (runId: number, tag: string) => {
        expect(hook.requests.filter((r) => JSON.parse(r.body).text === tag)).toHaveLength(1);
        expect(await sends(runId)).toEqual([expect.objectContaining({ status: 'sent' })]);
      },
    },
    {
      runbook: 'set',
      step: 'push',
      args: () => ['notify', 'set', '--event', 'session-revoked', '--from-run', String(state.rotateRun)],
      check: async (runId: number) => {
        const rows = await sends(runId);
        expect(rows.map((r) => r.status)).toEqual(Array(20).fill('sent'));
        const delivered = ssf.requests.map((r) => jtiOf(r.body)).filter((jti) => rows.some((row) => row.jti === jti));
        expect(delivered.sort()).toEqual(rows.map((r) => r.jti).sort());
      },
    },
  ];

  for (const k of cases) {
    for (const point of ['before', 'after'] as const) {
      it(`notify ${k.runbook} killed at ${k.step}:${point}, then resumed`, async () => {
        const tag = `crash ${k.runbook} ${point}`;
        const killed = await runCli([...k.args(tag), '--yes', '--json'], { env: { ...env, JWTIR_FAILPOINT: `${k.step}:${point}` } });
        expect(killed.signal).toBe('SIGKILL');
        const runId = announcedRunId(killed);
        const resumed = await runOk(['runs', 'resume', String(runId), '--yes', '--json'], { env });
        expect(resumed.json.status).toBe('done');
        await k.check(runId, tag);
        // The step's intent and completion are each in the audit trail once.
        const phases = await withState(env, (b) =>
          b.db.query<{ phase: string }>(`SELECT body->>'phase' AS phase FROM audit WHERE (body->>'run')::bigint = $1 AND body->>'step' = $2 ORDER BY seq`, [runId, k.step]),
        );
        expect(phases.map((p) => p.phase)).toEqual(['intent', 'done']);
      });
    }
  }

  it('killed in the middle of a SET push: what was acknowledged is not sent again; what was in flight is sent again with the same jti', async () => {
    const before = ssf.requests.length;
    // Two SETs are acknowledged; every later one hangs, in flight, until the CLI is killed.
    ssf.reply = () => (ssf.requests.length - before <= 2 ? { status: 202 } : 'hang');
    const child = spawn(process.execPath, [BIN, 'notify', 'set', '--event', 'session-revoked', '--from-run', String(state.rotateRun), '--yes'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', CI: 'true', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    let runId = 0;
    for (let i = 0; i < 600; i++) {
      runId = Number(/run (\d+): start/.exec(stderr)?.[1] ?? 0);
      if (runId && (await sends(runId)).filter((r) => r.status === 'sent').length === 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(runId).toBeGreaterThan(0);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const firstTry = ssf.requests.slice(before).map((r) => jtiOf(r.body));
    const acknowledged = firstTry.slice(0, 2);
    const inFlight = firstTry.slice(2);
    expect(inFlight.length).toBeGreaterThan(0);

    ssf.reply = () => ({ status: 202 });
    const resumed = await runOk(['runs', 'resume', String(runId), '--yes', '--json'], { env });
    expect(resumed.json.steps[0].outputs).toEqual({ sent: 20, subjects: 20 });
    const secondTry = ssf.requests.slice(before + firstTry.length).map((r) => jtiOf(r.body));
    const rows = await sends(runId);
    expect(rows.every((r) => r.status === 'sent')).toBe(true);
    expect(secondTry.filter((jti) => acknowledged.includes(jti))).toEqual([]);
    expect([...acknowledged, ...secondTry].sort()).toEqual(rows.map((r) => r.jti).sort());
    for (const jti of inFlight) expect(secondTry).toContain(jti);
  });

  it('a rollback killed just before its undo withdraws the notifications when run again', async () => {
    const res = await runOk(['notify', 'users', '--user', 'user-5', '--user', 'user-6', '--kind', 'suspicious_activity', '--yes', '--json'], { env });
    const runId = res.json.runId as number;
    expect(await outbox(runId)).toHaveLength(2);
    const killed = await runCli(['runs', 'rollback', String(runId), '--yes', '--json'], { env: { ...env, JWTIR_FAILPOINT: 'enqueue:undo' } });
    expect(killed.signal).toBe('SIGKILL');
    expect(await outbox(runId)).toHaveLength(2);
    const again = await runOk(['runs', 'rollback', String(runId), '--yes', '--json'], { env });
    expect(again.json.status).toBe('rolled_back');
    expect(await outbox(runId)).toEqual([]);
    const trail = await runOk(['audit', 'trail', '--json'], { env });
    expect(trail.json.intact).toBe(true);
  });
});
