import { randomBytes } from 'node:crypto';
import { beforeAll, expect, it } from '@jest/globals';
import { runCli, runOk } from '../helpers/cli.js';
import { describeBackend, freshCase, type BackendCase } from '../helpers/services.js';
import { legacyService, seedLedger, withState } from '../helpers/state.js';
import { verifyAuditChain } from '../../src/state/audit.js';

/**
 * Kills `jwtir tighten` (its tighten.yaml and cutover.yaml runs) with SIGKILL at the steps'
 * `before` and `after` failpoints, and a cutover stage also while its health gate watches; resumes
 * the run; and compares the policy (versions, document, the guards' hot copy) and the audit trail
 * with an uninterrupted run's: every policy version is written exactly once.
 */
const secret = randomBytes(32).toString('hex');
const ledger = legacyService(secret, 'legacy', 200, { tokenFor: () => false });
const TIGHTEN = ['tighten', '--max-age', '30m', '--rate-limit', '5/1m', '--step-up', 'new-device,bad-reputation', '--block-critical', 'dirty-device', '--yes', '--json'];
const CUTOVER = ['tighten', '--cutover', '50%,100%', '--every', '0s', '--yes', '--json'];
const CASES: Array<{ runbook: string; args: string[]; points: string[] }> = [
  {
    runbook: 'tighten',
    args: TIGHTEN,
    // All five steps are the same action (policy.set); killing the first (nothing done before it),
    // the second (its key-scoped field after another) and the last (four versions before it)
    // covers what differs between them.
    points: ['max-age', 'rate-limit', 'block-critical'].flatMap((s) => [`${s}:before`, `${s}:after`]),
  },
  { runbook: 'cutover', args: CUTOVER, points: ['stage-1', 'stage-2'].flatMap((s) => [`${s}:before`, `${s}:after`, `${s}:gate`]) },
];

const base = freshCase('postgres+redis', 'tighten_crash');
describeBackend(base, 'tighten and cutover runs killed at any point resume to the state of an uninterrupted run', () => {
  const baselines = new Map<string, FinalState>();

  /** A fresh state: the legacy key imported, the ledger seeded, rotated and flagged compromised. */
  async function prepared(): Promise<BackendCase> {
    const bc = { ...freshCase('postgres+redis', 'tighten_crash'), env: { ...freshCase('postgres+redis', 'tighten_crash').env, JWTIR_KEK: base.env.JWTIR_KEK! } };
    await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...bc.env, S: secret } });
    await seedLedger(bc.env, ledger.sessions);
    await runOk(['rotate', '--staged', '--compromised', '--grace', '1h', '--publish-wait', '0s', '--yes'], { env: bc.env });
    return bc;
  }

  beforeAll(async () => {
    for (const c of CASES) {
      const bc = await prepared();
      const res = await runOk(c.args, { env: bc.env });
      expect(res.json.runs[0].status).toBe('done');
      baselines.set(c.runbook, await finalState(bc, c.runbook));
    }
    // Sanity: the baselines are the runs we mean to compare against.
    expect(baselines.get('tighten')!.versionsByStep).toEqual(['max-age', 'rate-limit', 'step-up-new-device', 'step-up-bad-reputation', 'block-critical']);
    expect(baselines.get('cutover')!.policy.kids.legacy).toEqual({ cutoverPercent: 100 });
  });

  for (const c of CASES) {
    for (const point of c.points) {
      it(`${c.runbook}: killed at ${point}, then resumed`, async () => {
        const bc = await prepared();
        const killed = await runCli(c.args, { env: { ...bc.env, JWTIR_FAILPOINT: point } });
        expect(killed.signal).toBe('SIGKILL');
        const crashed = (await runOk(['runs', 'list', '--json'], { env: bc.env })).json.runs.find((r: { runbook: string }) => r.runbook === c.runbook);
        expect(crashed.status).toBe('running');
        // The crashed run keeps its lock: a second operator's run of the same kind is refused.
        const second = await runCli(c.args, { env: bc.env });
        expect(second.json.error.code).toBe('ERR_LOCK_HELD');
        const resumed = await runOk(['runs', 'resume', String(crashed.id), '--yes', '--json'], { env: bc.env });
        expect(resumed.json.status).toBe('done');
        expect(await finalState(bc, c.runbook)).toEqual(baselines.get(c.runbook));
      });
    }
  }
});

interface FinalState {
  policy: Record<string, any>;
  /** The step that wrote each policy version, in order. */
  versionsByStep: string[];
  hotPolicyVersion: number | undefined;
  audit: string[];
  auditIntact: boolean;
  steps: string[];
}

async function finalState(bc: BackendCase, runbook: string): Promise<FinalState> {
  return withState(bc.env, async (b) => {
    const trail = await verifyAuditChain(b.db);
    const versions = await b.db.query<{ version: number; step: string; doc: Record<string, any> }>('SELECT version, step, doc FROM policy_versions ORDER BY version');
    const snapshot = await b.hot.snapshot();
    const rows = await b.db.query<{ body: { action: string; step: string | null; phase: string | null; run: number | null } }>('SELECT body FROM audit ORDER BY seq');
    const steps = await b.db.query<{ step: string; state: string }>('SELECT s.step, s.state FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.runbook = $1 ORDER BY idx', [runbook]);
    return {
      policy: versions.at(-1)!.doc,
      versionsByStep: versions.map((v) => v.step),
      hotPolicyVersion: snapshot.policy?.version,
      // A resume adds its own `run.resume` row; every step's rows must appear exactly once, in order.
      audit: rows.map((r) => r.body).filter((b) => b.action !== 'run.resume').map((b) => `${b.action}|${b.step ?? ''}|${b.phase ?? ''}`),
      auditIntact: trail.intact,
      steps: steps.map((s) => `${s.step}:${s.state}`),
    };
  });
}
