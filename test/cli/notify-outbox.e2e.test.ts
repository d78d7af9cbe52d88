import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { MAILER_CLAIM_SQL, MAILER_FAILED_SQL, MAILER_SENT_SQL } from '../../src/notify/outbox.js';
import { runCli, runOk } from '../helpers/cli.js';
import { expectFailure, notifySnapshot, notifyState } from '../helpers/notify.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { withState } from '../helpers/state.js';

/**
 * `jwtir notify users`: notifications for users go to an outbox table that the service's mailer
 * consumes with the SQL the README documents. Set-based, one row per user and run step, undone
 * by rollback except for what the mailer already claimed.
 */
type Row = { id: number; sub: string; kind: string; payload: Payload; claimed_at: Date | null; sent_at: Date | null; last_error: string | null };
type Payload = {
  reason: string | null;
  at: string;
  source: { run: number; steps: string[] } | null;
  sessionCount: number;
  sessions: Array<{ sid: string; device: string | null; place: string | null; issuedAt: string; lastSeenAt: string | null }>;
};

const outboxOf = (env: Record<string, string>, runId: number) =>
  withState(env, (b) => b.db.query<Row>('SELECT id, sub, kind, payload, claimed_at, sent_at, last_error FROM notify_outbox WHERE run_id = $1 ORDER BY sub', [runId]));

for (const c of backendCases('notify_outbox', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir notify users: the user outbox', () => {
    const env = c.env;
    let state: Awaited<ReturnType<typeof notifyState>>;
    let fromRun: number;

    beforeAll(async () => {
      // 300 users with one session each; 60 admins and staff, whose sessions the rotation ends.
      state = await notifyState(env, { count: 300, privilegedEvery: 10, rotateTo: 'ES256' });
    });

    it('--user: one row per user (named twice, written once) listing that user\'s live sessions, never a token', async () => {
      const res = await runOk(['notify', 'users', '--user', 'user-3', '--user', 'user-4', '--user', 'user-3', '--kind', 'suspicious_activity', '--reason', 'sign-in from a new country', '--yes', '--json'], { env });
      expect(res.json).toMatchObject({ runbook: 'notify-users', status: 'done', steps: [{ step: 'enqueue', state: 'done', outputs: { users: 2 } }] });
      const rows = await outboxOf(env, res.json.runId);
      expect(rows.map((r) => `${r.sub}:${r.kind}`)).toEqual(['user-3:suspicious_activity', 'user-4:suspicious_activity']);
      const ledger = state.sessions.find((s) => s.sub === 'user-3')!;
      expect(rows[0]!.payload).toEqual({
        reason: 'sign-in from a new country',
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        source: null,
        sessionCount: 1,
        sessions: [{ sid: ledger.sid, device: ledger.device, place: ledger.place, issuedAt: ledger.issuedAt.toISOString().replace('.000Z', 'Z'), lastSeenAt: null }],
      });
      expect(JSON.stringify(rows)).not.toMatch(/eyJ|token/i);
    });

    it('--from-run: the users whose sessions the rotation ended, each with exactly those sessions; the dry run counts them and writes nothing', async () => {
      const dry = await runOk(['notify', 'users', '--from-run', String(state.rotateRun), '--kind', 'forced_logout', '--dry-run', '--json'], { env });
      expect(dry.json.plan.steps[0].impact).toMatchObject({ sessions: state.privileged.length, users: state.privilegedSubs.length });
      const res = await runOk(
        ['notify', 'users', '--from-run', String(state.rotateRun), '--step', 'end-privileged-sessions', '--kind', 'forced_logout', '--reason', 'security incident', '--yes', '--json'],
        { env },
      );
      fromRun = res.json.runId;
      expect(res.json.steps[0].outputs).toEqual({ users: state.privilegedSubs.length });
      const rows = await outboxOf(env, fromRun);
      expect(rows.map((r) => r.sub).sort()).toEqual(state.privilegedSubs);
      for (const row of rows) {
        const ended = state.privileged.filter((s) => s.sub === row.sub);
        expect(row.payload.source).toEqual({ run: state.rotateRun, steps: ['end-privileged-sessions'] });
        expect(row.payload.sessions.map((s) => s.sid).sort()).toEqual(ended.map((s) => s.sid).sort());
        expect(row.payload.sessionCount).toBe(ended.length);
      }
    });

    it("the mailer's claim, sent and failed statements (README) hand out each row once; a rollback withdraws only the unclaimed rows", async () => {
      const outcome = await withState(env, async (b) => {
        const claimed = await b.db.query<{ id: number; sub: string; kind: string; payload: Payload }>(MAILER_CLAIM_SQL, [5]);
        const again = await b.db.query<{ id: number }>(MAILER_CLAIM_SQL, [5]);
        await b.db.query(MAILER_SENT_SQL, [claimed.slice(0, 2).map((r) => r.id)]);
        await b.db.query(MAILER_FAILED_SQL, [claimed[2]!.id, 'smtp 451 try later']);
        return { claimed: claimed.map((r) => Number(r.id)), again: again.map((r) => Number(r.id)) };
      });
      // Oldest first, and never a row twice while it is claimed.
      expect(outcome.claimed).toHaveLength(5);
      expect(Math.max(...outcome.claimed)).toBeLessThan(Math.min(...outcome.again));
      const released = (await withState(env, (b) => b.db.query<Row & { run_id: number }>('SELECT run_id, claimed_at, last_error FROM notify_outbox WHERE id = $1', [outcome.claimed[2]])))[0]!;
      expect({ ...released, run_id: Number(released.run_id) }).toEqual({ run_id: fromRun, claimed_at: null, last_error: 'smtp 451 try later' });

      const before = await outboxOf(env, fromRun);
      const held = before.filter((r) => r.claimed_at !== null || r.sent_at !== null);
      expect(held).toHaveLength(7);
      const rollback = await runOk(['runs', 'rollback', String(fromRun), '--yes'], { env });
      expect(rollback.stderr).toContain('7 already claimed by the mailer cannot be unsent');
      // What the mailer holds stays; the rest, including the row it gave back, is withdrawn.
      const after = await outboxOf(env, fromRun);
      expect(after.map((r) => r.id)).toEqual(held.map((r) => r.id));
      const trail = await runOk(['audit', 'trail', '--json'], { env });
      expect(trail.json.intact).toBe(true);
    });

    if (c.name === 'postgres+redis') {
      it('two mailers claiming at the same time get disjoint rows (FOR UPDATE SKIP LOCKED)', async () => {
        await runOk(['notify', 'users', '--from-run', String(state.rotateRun), '--kind', 'session_revoked', '--yes', '--json'], { env });
        const [a, b] = await withState(env, async (s) => {
          let release!: () => void;
          const held = new Promise<void>((r) => (release = r));
          let first: number[] = [];
          const tx1 = s.db.transaction(async (tx) => {
            first = (await tx.query<{ id: number }>(MAILER_CLAIM_SQL, [10])).map((r) => Number(r.id));
            await held;
          });
          for (let i = 0; first.length === 0 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
          const second = await s.db.transaction(async (tx) => (await tx.query<{ id: number }>(MAILER_CLAIM_SQL, [10])).map((r) => Number(r.id)));
          release();
          await tx1;
          return [first, second];
        });
        expect(a).toHaveLength(10);
        expect(b).toHaveLength(10);
        expect(a.filter((id) => b.includes(id))).toEqual([]);
      });

      it('inside another runbook, fromStep alone names an earlier step of the same run (how a logout runbook notifies whom it logged out)', async () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-notify-runbook-'));
        // Stands in for notify-users.yaml: ends the admins' legacy sessions, then notifies exactly them.
        writeFileSync(
          path.join(dir, 'notify-users.yaml'),
          [
            'name: notify-users',
            'summary: End admin sessions and tell them.',
            'lock: notify-users',
            'params:',
            '  kind: { type: string, description: kind, required: true }',
            '  users: { type: list, description: users }',
            '  fromRun: { type: integer, description: run }',
            '  fromStep: { type: string, description: step }',
            '  reason: { type: string, description: reason }',
            'steps:',
            '  - id: end-admins',
            '    action: sessions.end-for-roles',
            '    summary: End the legacy sessions of admins.',
            '    with: { kid: legacy, roles: [admin] }',
            '    undo: { action: watermarks.clear, with: { scope: user } }',
            '  - id: tell-them',
            '    action: notify.enqueue',
            '    summary: Tell them.',
            '    with: { kind: "${{ params.kind }}", reason: null, users: null, fromRun: null, fromStep: end-admins }',
            '    undo: { action: notify.withdraw, with: {} }',
            '',
          ].join('\n'),
        );
        const res = await runOk(['notify', 'users', '--user', 'user-0', '--kind', 'forced_logout', '--yes', '--json'], { env: { ...env, JWTIR_RUNBOOK_DIR: dir } });
        const admins = [...new Set(state.sessions.filter((s) => s.roles.includes('admin')).map((s) => s.sub))].sort();
        expect(res.json.steps.map((s: { step: string; outputs: unknown }) => [s.step, s.outputs])).toEqual([
          ['end-admins', expect.objectContaining({ users: admins.length })],
          ['tell-them', { users: admins.length }],
        ]);
        const rows = await outboxOf(env, res.json.runId);
        expect(rows.map((r) => r.sub).sort()).toEqual(admins);
        expect(rows[0]!.payload.source).toEqual({ run: res.json.runId, steps: ['end-admins'] });
      });
    }

    describe('bad input is refused with nothing changed', () => {
      it('unknown users, runs and steps, a run that ended nobody, and contradicting or missing flags', async () => {
        const before = await notifySnapshot(env);
        const users = (args: string[]) => runCli(['notify', 'users', '--kind', 'forced_logout', '--yes', '--json', ...args], { env });

        const unknown = expectFailure(await users(['--user', 'user-1', '--user', 'User-2', '--user', 'ghost']), ExitCode.usage, 'ERR_USER_UNKNOWN');
        expect(unknown.message).toBe('unknown users "User-2", "ghost": no session in the ledger and no device');
        expect(unknown.hint).toContain('case matters');
        const run = expectFailure(await users(['--from-run', '9999']), ExitCode.usage, 'ERR_RUN_UNKNOWN');
        expect(run.message).toBe('there is no run 9999');
        const step = expectFailure(await users(['--from-run', String(state.rotateRun), '--step', 'nope']), ExitCode.usage, 'ERR_USAGE');
        expect(step.hint).toContain('end-privileged-sessions');
        // Run 1 imported the key: it ended no session.
        const nobody = expectFailure(await users(['--from-run', '1']), ExitCode.usage, 'ERR_USAGE');
        expect(nobody.message).toBe('run 1 ended no session that is in the ledger, so there is nobody to notify');
        expect(expectFailure(await users(['--user', 'user-1', '--from-run', '1']), ExitCode.usage, 'ERR_USAGE').message).toBe('give --user or --from-run, not both');
        expect(expectFailure(await users([]), ExitCode.usage, 'ERR_USAGE').message).toContain('say whom this is about');
        expect(expectFailure(await users(['--user', 'user-1', '--step', 'x']), ExitCode.usage, 'ERR_USAGE').message).toBe('--step needs --from-run');
        expect(expectFailure(await users(['--user', 'user-1', '--reason', '  ']), ExitCode.usage, 'ERR_USAGE').message).toBe('--reason is empty');
        expect(expectFailure(await users(['--from-run', 'abc']), ExitCode.usage, 'ERR_USAGE').message).toBe('--from-run must be a whole number, got "abc"');
        const kind = await runCli(['notify', 'users', '--user', 'user-1', '--kind', 'spam', '--json'], { env });
        expect(kind.code).toBe(ExitCode.usage);
        expect(kind.stderr).toContain("argument 'spam' is invalid");
        // No terminal and no --yes: refused before any run exists.
        const unconfirmed = await runCli(['notify', 'users', '--user', 'user-1', '--kind', 'forced_logout', '--json'], { env });
        expectFailure(unconfirmed, ExitCode.usage, 'ERR_CONFIRMATION_REQUIRED');
        expect(await notifySnapshot(env)).toEqual(before);
      });
    });
  });
}
