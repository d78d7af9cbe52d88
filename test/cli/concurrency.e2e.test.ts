import { randomBytes } from 'node:crypto';
import { beforeAll, expect, it } from '@jest/globals';
import { runCli, runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { legacyService, seedLedger } from '../helpers/state.js';

const secret = randomBytes(32).toString('hex');

for (const c of backendCases('concurrent', ['postgres+redis', 'postgres', 'embedded'])) {
  describeBackend(c, 'two operators start a rotation at the same moment', () => {
    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET'], { env: { ...c.env, JWT_SECRET: secret } });
      await seedLedger(c.env, legacyService(secret, 'legacy', 50, { tokenFor: () => false }).sessions);
    });

    it('exactly one proceeds; the other is refused with the holder named and nothing changed by it', async () => {
      // The publication gate keeps the first run busy long enough for the second to collide with it.
      const args = ['rotate', '--staged', '--grace', '10m', '--publish-wait', '6s', '--yes', '--json'];
      const [a, b] = await Promise.all([runCli(args, { env: c.env }), runCli(args, { env: c.env })]);
      const results = [a, b].sort((x, y) => (x.code ?? 99) - (y.code ?? 99));
      expect(results.map((r) => r.code)).toEqual([0, 3]);
      const [winner, loser] = results as [typeof a, typeof a];
      expect(winner.json.status).toBe('done');
      if (c.name === 'embedded') {
        // One process at a time may open the embedded database; the second learns who holds it.
        expect(loser.json.error.code).toBe('ERR_CONFLICT');
        expect(loser.stderr).toMatch(/in use by pid \d+/);
      } else {
        expect(loser.json.error.code).toBe('ERR_LOCK_HELD');
        expect(loser.stderr).toContain(`held by run ${winner.json.runId}`);
      }
      const keys = await runOk(['keys', 'list', '--json'], { env: c.env });
      expect(keys.json.keys.map((k: { state: string }) => k.state).sort()).toEqual(['active', 'retiring']);
      const runs = await runOk(['runs', 'list', '--json'], { env: c.env });
      expect(runs.json.runs.filter((r: { runbook: string }) => r.runbook === 'rotate').length).toBe(1);
    });
  });
}
