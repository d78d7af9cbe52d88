import { randomBytes } from 'node:crypto';
import { beforeAll, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk, type CliResult } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { legacyService, seedLedger, withGuard } from '../helpers/state.js';

/**
 * Undoing what a rotation did: partial and full rollbacks through the real binary, the refusals
 * around finished runs, and recovering from a rotation whose process was killed mid-step.
 */
const secret = randomBytes(32).toString('hex');
const service = legacyService(secret, 'legacy', 300, { privilegedEvery: 50 });
const admin = service.tokens.find((t) => t.roles.includes('admin'))!;
const staff = service.tokens.find((t) => t.roles.includes('staff'))!;
const customer = service.tokens.find((t) => t.roles.includes('customer'))!;

const ROTATE = ['rotate', '--staged', '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'];

type Key = { kid: string; state: string; published: boolean; compromised: boolean; verifyUntil: string | null; hasPrivateMaterial: boolean };
type AuditBody = { action: string; step: string | null; phase: string | null };

async function keysByKid(env: Record<string, string>): Promise<Record<string, Key>> {
  const res = await runOk(['keys', 'list', '--json'], { env });
  return Object.fromEntries((res.json.keys as Key[]).map((k) => [k.kid, k]));
}

const stepStates = (res: CliResult) => res.json.steps.map((s: { step: string; state: string }) => `${s.step}:${s.state}`);

/** The undo rows of a run's audit trail, in the order they were written. */
const undoRows = (audit: AuditBody[]) => audit.filter((a) => a.phase === 'undo-intent' || a.phase === 'undo-done').map((a) => `${a.step}:${a.action}:${a.phase}`);

/** The run id a command announced on stderr ("run 7: start"), for runs whose process was killed before any JSON. */
function announcedRunId(res: CliResult): number {
  const m = /run (\d+): start/.exec(res.stderr);
  if (!m) throw new Error(`no run announced\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return Number(m[1]);
}

async function killedRotate(env: Record<string, string>): Promise<number> {
  const res = await runCli(ROTATE, { env: { ...env, JWTIR_FAILPOINT: 'activate:after' } });
  expect({ code: res.code, signal: res.signal }).toEqual({ code: null, signal: 'SIGKILL' });
  return announcedRunId(res);
}

for (const c of backendCases('rollback', ['embedded', 'postgres+redis'])) {
  describeBackend(c, 'jwtir runs rollback / resume / unlock', () => {
    const env = c.env;
    let first: { runId: number; kid: string };
    let second: { runId: number; kid: string };

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, service.sessions);
    });

    it('rollback --to publish undoes activate, end-privileged-sessions and flag-compromised, and keeps the published key', async () => {
      const rotated = await runOk(['rotate', '--staged', '--compromised', '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'], { env });
      expect(rotated.json.status).toBe('done');
      first = { runId: rotated.json.runId, kid: rotated.json.steps[0].outputs.kid };
      // The rotation took effect: the admin's legacy token is refused.
      await withGuard(env, async (guard) => {
        expect(guard.verify(admin.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_user'] });
      });

      const res = await runOk(['runs', 'rollback', String(first.runId), '--to', 'publish', '--yes', '--json'], { env });
      expect(res.json.status).toBe('rolled_back');
      expect(stepStates(res)).toEqual([
        'generate:done',
        'publish:done',
        'export:skipped',
        'publication-gate:rolled_back',
        'activate:rolled_back',
        'hand-off:skipped',
        'await-new-key:skipped',
        'end-privileged-sessions:rolled_back',
        'flag-compromised:rolled_back',
      ]);

      const keys = await keysByKid(env);
      expect(keys.legacy).toMatchObject({ state: 'active', compromised: false, verifyUntil: null });
      expect(keys[first.kid]).toMatchObject({ state: 'staged', published: true, compromised: false, hasPrivateMaterial: true });
      // The user watermarks are gone: privileged users' legacy tokens pass again, and so do everyone else's.
      await withGuard(env, async (guard) => {
        for (const t of [admin, staff, customer]) expect({ sub: t.sub, v: guard.verify(t.token) }).toMatchObject({ sub: t.sub, v: { decision: 'allow', kid: 'legacy' } });
      });

      const shown = await runOk(['runs', 'show', String(first.runId), '--json'], { env });
      expect(shown.json.run.status).toBe('rolled_back');
      const audit = shown.json.audit as AuditBody[];
      expect(undoRows(audit)).toEqual([
        'flag-compromised:key.unflag-compromised:undo-intent',
        'flag-compromised:key.unflag-compromised:undo-done',
        'end-privileged-sessions:watermarks.clear:undo-intent',
        'end-privileged-sessions:watermarks.clear:undo-done',
        'activate:key.reactivate:undo-intent',
        'activate:key.reactivate:undo-done',
      ]);
      const at = (action: string) => audit.findIndex((a) => a.action === action);
      expect(at('run.rollback')).toBeLessThan(audit.findIndex((a) => a.phase === 'undo-intent'));
      expect(at('run.rolled-back')).toBe(audit.length - 1);
    });

    it('the lock was released, and a full rollback of the next run destroys the key it generated', async () => {
      const rotated = await runOk(ROTATE, { env });
      expect(rotated.json.status).toBe('done');
      second = { runId: rotated.json.runId, kid: rotated.json.steps[0].outputs.kid };
      expect(second.runId).toBeGreaterThan(first.runId);

      const res = await runOk(['runs', 'rollback', String(second.runId), '--yes', '--json'], { env });
      expect(res.json.status).toBe('rolled_back');
      expect(stepStates(res)).toEqual([
        'generate:rolled_back',
        'publish:rolled_back',
        'export:skipped',
        'publication-gate:rolled_back',
        'activate:rolled_back',
        'hand-off:skipped',
        'await-new-key:skipped',
        'end-privileged-sessions:rolled_back',
        'flag-compromised:skipped',
      ]);

      const shownKey = await runOk(['keys', 'show', second.kid, '--json'], { env });
      expect(shownKey.json.key).toMatchObject({ kid: second.kid, state: 'destroyed', hasPrivateMaterial: false, published: false });
      const keys = await keysByKid(env);
      expect(keys.legacy).toMatchObject({ state: 'active', compromised: false });
      // The first run's partial rollback is untouched by this one.
      expect(keys[first.kid]).toMatchObject({ state: 'staged', published: true, hasPrivateMaterial: true });

      const shown = await runOk(['runs', 'show', String(second.runId), '--json'], { env });
      expect(undoRows(shown.json.audit)).toEqual([
        'end-privileged-sessions:watermarks.clear:undo-intent',
        'end-privileged-sessions:watermarks.clear:undo-done',
        'activate:key.reactivate:undo-intent',
        'activate:key.reactivate:undo-done',
        'publish:key.unpublish:undo-intent',
        'publish:key.unpublish:undo-done',
        'generate:key.destroy:undo-intent',
        'generate:key.destroy:undo-done',
      ]);
    });

    it('a finished run cannot be resumed (exit 3), and the refusal leaves the intact audit trail as it was', async () => {
      const before = await runOk(['audit', 'trail', '--json'], { env });
      expect(before.json.intact).toBe(true);
      const res = await runCli(['runs', 'resume', String(first.runId), '--yes', '--json'], { env });
      expect({ code: res.code, error: res.json?.error?.code }).toEqual({ code: ExitCode.conflict, error: 'ERR_INVALID_STATE' });
      expect(res.json.error.message).toBe(`run ${first.runId} is rolled back, so it cannot be resumed`);
      expect(res.stderr).toContain(`jwtir runs show ${first.runId}`);
      const after = await runOk(['audit', 'trail', '--json'], { env });
      expect(after.json).toEqual(before.json);
    });

    it('rolling back a run killed inside "activate" undoes that step from its recorded inputs (its undo needs no more), then everything before it', async () => {
      const runId = await killedRotate(env);
      const res = await runOk(['runs', 'rollback', String(runId), '--yes', '--json'], { env });
      expect(res.json.status).toBe('rolled_back');
      expect(stepStates(res)).toEqual([
        'generate:rolled_back',
        'publish:rolled_back',
        'export:skipped',
        'publication-gate:rolled_back',
        'activate:rolled_back',
        'hand-off:pending',
        'await-new-key:pending',
        'end-privileged-sessions:pending',
        'flag-compromised:pending',
      ]);
      const kid = res.json.steps[0].outputs.kid as string;

      const shown = await runOk(['runs', 'show', String(runId), '--json'], { env });
      const audit = (shown.json.audit as AuditBody[]).map((a) => `${a.step ?? '-'}:${a.action}:${a.phase}`);
      // The interrupted step is not redone: its undo follows the rollback, with no `done` row for it.
      const rollbackAt = audit.indexOf('-:run.rollback:rollback');
      const undoAt = audit.indexOf('activate:key.reactivate:undo-intent');
      expect(rollbackAt).toBeGreaterThan(audit.indexOf('activate:key.activate:intent'));
      expect(audit).not.toContain('activate:key.activate:done');
      expect(undoAt).toBeGreaterThan(rollbackAt);

      const keys = await keysByKid(env);
      expect(keys.legacy).toMatchObject({ state: 'active', verifyUntil: null });
      expect(keys[kid]).toMatchObject({ state: 'destroyed', hasPrivateMaterial: false });
    });

    it('a killed run keeps the lock (exit 3, naming it) until `runs unlock` releases it; then a new rotation runs', async () => {
      const runId = await killedRotate(env);
      const refused = await runCli(ROTATE, { env });
      expect({ code: refused.code, error: refused.json?.error?.code }).toEqual({ code: ExitCode.conflict, error: 'ERR_LOCK_HELD' });
      expect(refused.json.error.message).toContain(`held by run ${runId} (rotate`);
      expect(refused.json.error.hint).toContain(`jwtir runs unlock ${runId}`);

      const unlocked = await runOk(['runs', 'unlock', String(runId), '--yes', '--json'], { env });
      expect(unlocked.json).toEqual({ runId, released: 1 });

      const next = await runOk(ROTATE, { env });
      expect(next.json.status).toBe('done');
      expect(next.json.runId).toBeGreaterThan(runId);
      const runs = await runOk(['runs', 'list', '--json'], { env });
      expect(runs.json.runs.find((r: { id: number }) => r.id === runId)).toMatchObject({ status: 'failed', error: 'unlocked by an operator', holder: null });
    });
  });
}
