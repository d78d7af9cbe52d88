import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { BIN, runCli, runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';

const secret = randomBytes(32).toString('hex');

for (const c of backendCases('ux', ['postgres+redis'])) {
  describeBackend(c, 'an operator at a real terminal', () => {
    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...c.env, S: secret } });
    });

    it('sees spinners, and the command finishes (a pty with a width, and one reporting 0 columns)', () => {
      for (const stty of ['stty cols 100 rows 40;', 'stty cols 0 rows 0;']) {
        const env = { ...process.env, ...c.env, CI: '', NO_COLOR: '' };
        const res = spawnSync('script', ['-qec', `${stty} ${process.execPath} ${BIN} keys generate --alg ES256 --yes`, '/dev/null'], { env, timeout: 30_000, encoding: 'utf8' });
        expect(res.error).toBeUndefined();
        expect(res.status).toBe(0);
        expect(res.stdout).toMatch(/keys-generate.*done/);
        // A spinner that is not stopped redraws without end; the output stays small.
        expect(res.stdout.length).toBeLessThan(20_000);
      }
    });

    it('can continue a rollback that stopped part of the way (--to), after previewing it with --dry-run', async () => {
      const run = await runOk(['rotate', '--staged', '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'], { env: c.env });
      const id = String(run.json.runId);
      await runOk(['runs', 'rollback', id, '--to', 'activate', '--yes'], { env: c.env });
      let keys = await runOk(['keys', 'list', '--json'], { env: c.env });
      expect(keys.json.keys.find((k: { kid: string }) => k.kid === 'legacy').state).toBe('retiring');
      const preview = await runOk(['runs', 'rollback', id, '--dry-run', '--json'], { env: c.env });
      expect(preview.json.undo.map((u: { step: string }) => u.step)).toEqual(['activate', 'publication-gate', 'publish', 'generate']);
      keys = await runOk(['keys', 'list', '--json'], { env: c.env });
      expect(keys.json.keys.find((k: { kid: string }) => k.kid === 'legacy').state).toBe('retiring');
      const rest = await runOk(['runs', 'rollback', id, '--yes', '--json'], { env: c.env });
      expect(rest.json.steps.every((s: { state: string }) => s.state === 'rolled_back' || s.state === 'skipped')).toBe(true);
      keys = await runOk(['keys', 'list', '--json'], { env: c.env });
      expect(keys.json.keys.find((k: { kid: string }) => k.kid === 'legacy').state).toBe('active');
    });

    it('Ctrl-C during a run exits 130 and names the run to resume or roll back; the run keeps its lock until then', async () => {
      const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', CI: 'true', ...c.env };
      const child = spawn(process.execPath, [BIN, 'rotate', '--staged', '--grace', '10m', '--publish-wait', '120s', '--yes'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.on('data', (d) => (stderr += d));
      const deadline = Date.now() + 30_000;
      while (!/publication-gate/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(stderr).toMatch(/publication-gate/);
      const code = await new Promise<number | null>((resolve) => {
        child.on('close', (c2) => resolve(c2));
        child.kill('SIGINT');
      });
      expect(code).toBe(130);
      const runId = /interrupted \(SIGINT\) while run (\d+) was in progress/.exec(stderr)?.[1];
      expect(runId).toBeDefined();
      expect(stderr).toContain(`jwtir runs resume ${runId}`);
      // The run still holds its lock: a second rotation is refused and named.
      const second = await runCli(['rotate', '--staged', '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'], { env: c.env });
      expect(second.json.error.code).toBe('ERR_LOCK_HELD');
      expect(second.json.error.message).toContain(`run ${runId}`);
      const rolled = await runOk(['runs', 'rollback', runId!, '--yes', '--json'], { env: c.env });
      expect(rolled.json.steps.every((s: { state: string }) => ['rolled_back', 'skipped', 'pending'].includes(s.state))).toBe(true);
      const keys = await runOk(['keys', 'list', '--json'], { env: c.env });
      expect(keys.json.keys.find((k: { kid: string }) => k.kid === 'legacy').state).toBe('active');
    });

    it('a dry run already refuses a wrong KEK', async () => {
      const res = await runCli(['rotate', '--staged', '--grace', '1h', '--dry-run', '--json'], { env: { ...c.env, JWTIR_KEK: randomBytes(32).toString('base64') } });
      expect(res.code).toBe(5);
      expect(res.json.error.code).toBe('ERR_KEK_MISMATCH');
    });
  });
}

describe('the embedded default in the wrong directory', () => {
  it('read-only commands do not create an empty state; they say where they looked and what to do', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-empty-'));
    for (const args of [['status'], ['keys', 'list'], ['rotate', '--staged', '--grace', '1h', '--yes']]) {
      const res = await runCli([...args, '--json'], { env: { JWTIR_STATE_DIR: dir } });
      expect(res.code).toBe(2);
      expect(res.json.error.code).toBe('ERR_NOT_FOUND');
      expect(res.json.error.message).toBe(`there is no jwtir state in ${dir}`);
      expect(res.json.error.hint).toContain('jwtir init');
    }
    expect(spawnSync('ls', ['-A', dir], { encoding: 'utf8' }).stdout).toBe('');
  });
});
