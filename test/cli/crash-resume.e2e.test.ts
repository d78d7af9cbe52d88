import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from '@jest/globals';
import { runCli, runOk } from '../helpers/cli.js';
import { backendCases, describeBackend, freshCase, type BackendCase } from '../helpers/services.js';
import { legacyService, seedLedger, withState } from '../helpers/state.js';
import { verifyAuditChain } from '../../src/state/audit.js';
import { currentPolicy } from '../../src/state/policy.js';

/**
 * Kills `jwtir rotate` with SIGKILL at every step's `before` and `after` failpoint, resumes the
 * run, and compares the final keys, policy, watermarks, hot store and audit trail with those of
 * an uninterrupted run: every effect happens exactly once.
 */
const STEPS = ['generate', 'publish', 'publication-gate', 'activate', 'end-privileged-sessions', 'flag-compromised'];
const ROTATE = ['rotate', '--staged', '--compromised', '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'];
const secret = randomBytes(32).toString('hex');
const ledger = legacyService(secret, 'legacy', 300, { privilegedEvery: 10, tokenFor: () => false });

for (const c of backendCases('crash', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'a rotation killed at any point resumes to the state of an uninterrupted run', () => {
    let template: string | undefined;
    let baseline: FinalState;

    /** A fresh state with the legacy key imported and the ledger seeded. */
    async function prepared(): Promise<BackendCase> {
      if (c.name === 'embedded') {
        // Initialising PGlite costs seconds; copy one prepared directory instead.
        const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-crash-'));
        cpSync(template!, dir, { recursive: true });
        return { ...c, env: { ...c.env, JWTIR_STATE_DIR: dir } };
      }
      const fresh = { ...freshCase(c.name, 'crash'), env: { ...freshCase(c.name, 'crash').env, JWTIR_KEK: c.env.JWTIR_KEK! } };
      await setUp(fresh);
      return fresh;
    }

    async function setUp(bc: BackendCase) {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...bc.env, JWT_SECRET: secret } });
      await seedLedger(bc.env, ledger.sessions);
    }

    beforeAll(async () => {
      if (c.name === 'embedded') {
        await setUp(c);
        template = c.env.JWTIR_STATE_DIR;
      }
      const bc = await prepared();
      const res = await runOk(ROTATE, { env: bc.env });
      expect(res.json.status).toBe('done');
      baseline = await finalState(bc);
      // Sanity: the baseline is the rotation we mean to compare against.
      expect(baseline.keys.map((k) => `${k.role}:${k.state}:${k.compromised}`)).toEqual(['legacy:retiring:true', 'new:active:false']);
      expect(baseline.watermarkSubjects.length).toBe(60);
    });

    for (const step of STEPS) {
      for (const point of ['before', 'after'] as const) {
        it(`killed at ${step}:${point}, then resumed`, async () => {
          const bc = await prepared();
          const killed = await runCli(ROTATE, { env: { ...bc.env, JWTIR_FAILPOINT: `${step}:${point}` } });
          expect(killed.signal).toBe('SIGKILL');

          const runs = await runOk(['runs', 'list', '--json'], { env: bc.env });
          const crashed = runs.json.runs.find((r: { runbook: string }) => r.runbook === 'rotate');
          expect(crashed.status).toBe('running');
          // The crashed run still holds the keys lock: nobody can start a conflicting run meanwhile.
          const second = await runCli(ROTATE, { env: bc.env });
          expect(second.code).toBe(3);
          expect(second.json.error.code).toBe('ERR_LOCK_HELD');

          const resumed = await runOk(['runs', 'resume', String(crashed.id), '--yes', '--json'], { env: bc.env });
          expect(resumed.json.status).toBe('done');
          expect(await finalState(bc)).toEqual(baseline);
        });
      }
    }
  });
}

interface FinalState {
  keys: Array<Record<string, unknown>>;
  policyVersion: number;
  watermarkRows: number;
  watermarkSubjects: string[];
  hotKeys: Array<Record<string, unknown>>;
  hotWatermarkSubjects: string[];
  audit: string[];
  auditIntact: boolean;
  steps: string[];
}

/** Everything a rotation changes, with generated kids and timestamps replaced by what they mean. */
async function finalState(bc: BackendCase): Promise<FinalState> {
  return withState(bc.env, async (b) => {
    const policy = await currentPolicy(b.db);
    const trail = await verifyAuditChain(b.db);
    const keyRows = await b.db.query<Record<string, unknown>>(
      `SELECT kid, alg, state, kidless, compromised, private_enc IS NOT NULL AS has_private, published_at IS NOT NULL AS published,
              (extract(epoch FROM verify_until - retired_at))::int AS grace_s
       FROM keys ORDER BY created_at`,
    );
    const role = (kid: unknown) => (kid === 'legacy' ? 'legacy' : 'new');
    const keys = keyRows.map((k) => ({ ...k, kid: undefined, role: role(k.kid) }));
    const wm = await b.db.query<{ subject: string }>(`SELECT subject FROM watermarks ORDER BY subject`);
    const snapshot = await b.hot.snapshot();
    const auditRows = await b.db.query<{ body: { action: string; step: string | null; phase: string | null } }>('SELECT body FROM audit ORDER BY seq');
    const steps = await b.db.query<{ step: string; state: string }>(`SELECT s.step, s.state FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.runbook = 'rotate' ORDER BY idx`);
    return {
      keys,
      policyVersion: policy.version,
      watermarkRows: wm.length,
      watermarkSubjects: wm.map((w) => w.subject),
      hotKeys: snapshot.keys.map((k) => ({ role: role(k.kid), alg: k.alg, state: k.state, compromised: k.compromised, kidless: k.kidless, grace: k.verifyUntil && k.activatedAt ? 'set' : null })),
      hotWatermarkSubjects: [...snapshot.watermarks.user.keys()].sort(),
      // A resume adds its own `run.resume` row; every step's rows must appear exactly once, in order.
      audit: auditRows.map((r) => r.body).filter((b) => b.action !== 'run.resume').map((b) => `${b.action}|${b.step ?? ''}|${b.phase ?? ''}`),
      auditIntact: trail.intact,
      steps: steps.map((s) => `${s.step}:${s.state}`),
    };
  });
}
