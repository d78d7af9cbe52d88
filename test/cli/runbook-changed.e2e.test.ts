import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from '@jest/globals';
import { ROOT, runCli, runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';

for (const c of backendCases('changed', ['postgres+redis'])) {
  describeBackend(c, 'resuming under a changed runbook', () => {
    it('is refused until the operator says so explicitly', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-runbooks-'));
      cpSync(path.join(ROOT, 'runbooks'), dir, { recursive: true });
      const env = { ...c.env, JWTIR_RUNBOOK_DIR: dir };
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...env, S: randomBytes(32).toString('hex') } });
      const killed = await runCli(['rotate', '--staged', '--grace', '5m', '--publish-wait', '0s', '--yes'], { env: { ...env, JWTIR_FAILPOINT: 'activate:before' } });
      expect(killed.signal).toBe('SIGKILL');
      appendFileSync(path.join(dir, 'rotate.yaml'), '\n# edited during the incident\n');

      const refused = await runCli(['runs', 'resume', '2', '--yes', '--json'], { env });
      expect(refused.code).toBe(3);
      expect(refused.json.error.code).toBe('ERR_RUNBOOK_CHANGED');
      expect(refused.json.error.hint).toContain('--allow-changed-runbook');
      const show = await runOk(['runs', 'show', '2', '--json'], { env });
      expect(show.json).toMatchObject({ runbookChanged: true, run: { status: 'running' } });

      const resumed = await runOk(['runs', 'resume', '2', '--allow-changed-runbook', '--yes', '--json'], { env });
      expect(resumed.json.status).toBe('done');
      const run = await runOk(['runs', 'show', '2', '--json'], { env });
      const resumeRow = run.json.audit.find((a: { action: string }) => a.action === 'run.resume');
      expect(resumeRow.params.runbookChanged).toBe(true);
    });
  });
}
