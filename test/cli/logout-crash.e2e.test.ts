import { randomBytes } from 'node:crypto';
import { expect, it } from '@jest/globals';
import { runCli, runOk } from '../helpers/cli.js';
import { describeBackend, freshCase, type BackendCase } from '../helpers/services.js';
import { withState } from '../helpers/state.js';

/**
 * Kills `jwtir logout` (one case per mechanism) and `jwtir sessions revoke` with SIGKILL at
 * their step's `before` and `after` failpoints and their rollback at `undo`, resumes (or rolls
 * back again), and compares watermarks, revocations, refresh tokens, the hot store and the audit
 * trail with an uninterrupted run's: every effect happens exactly once.
 */
const secret = randomBytes(32).toString('hex');
const T0 = Math.floor(Date.now() / 1000) * 1000;
const MIN = 60_000;
const DEVICE = 'd'.repeat(64);
const CUTOFF = new Date(T0 - 20 * MIN).toISOString();

/** 40 sessions of 20 users, issued 10 to 49 minutes ago; four admins; every fifth session on DEVICE; one refresh token each. */
const LEDGER = Array.from({ length: 40 }, (_, i) => ({
  sid: `sid-${String(i).padStart(2, '0')}`,
  sub: `u-${i % 20}`,
  roles: i % 20 < 4 ? ['admin'] : ['customer'],
  fph: i % 5 === 0 ? DEVICE : null,
  issuedAt: new Date(T0 - (10 + i) * MIN),
  expiresAt: new Date(T0 + 2 * 3600_000),
}));

const CASES = [
  { name: 'logout by key', args: ['logout', '--kid', 'legacy', '--issued-before', CUTOFF, '--yes', '--json'], step: 'by-key', runbook: 'logout' },
  { name: 'logout by user', args: ['logout', '--role', 'admin', '--issued-before', CUTOFF, '--yes', '--json'], step: 'users', runbook: 'logout' },
  { name: 'logout by session', args: ['logout', '--device', DEVICE, '--yes', '--json'], step: 'sessions', runbook: 'logout' },
  { name: 'sessions revoke', args: ['sessions', 'revoke', 'sid-07', '--json'], step: 'revoke', runbook: 'sessions-revoke' },
];

const c = freshCase('postgres+redis', 'logout_crash');
describeBackend(c, 'logout and sessions revoke killed at any point resume to the state of an uninterrupted run', () => {
  /** A fresh state: the key imported, the ledger and its refresh tokens seeded. */
  async function prepared(): Promise<BackendCase> {
    const bc = freshCase('postgres+redis', 'logout_crash');
    await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...bc.env, JWT_SECRET: secret } });
    await withState(bc.env, async (b) => {
      await b.db.query(
        `INSERT INTO sessions (sid, sub, kid, roles, fph, issued_at, expires_at, cohort)
         SELECT sid, sub, 'legacy', ARRAY[role], fph, issued_at, expires_at, jwtir_cohort(sub)
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[]) AS t(sid, sub, role, fph, issued_at, expires_at)`,
        [LEDGER.map((s) => s.sid), LEDGER.map((s) => s.sub), LEDGER.map((s) => s.roles[0]), LEDGER.map((s) => s.fph), LEDGER.map((s) => s.issuedAt.toISOString()), LEDGER.map((s) => s.expiresAt.toISOString())],
      );
      await b.db.query(
        `INSERT INTO refresh_tokens (hash, family, sid, sub, issued_at, expires_at) SELECT 'rt-' || sid, sid, sid, sub, issued_at, $1::timestamptz FROM sessions`,
        [new Date(T0 + 30 * 24 * 3600_000).toISOString()],
      );
    });
    return bc;
  }

  for (const k of CASES) {
    let baseline: FinalState;
    let rolledBack: FinalState;

    it(`${k.name}: an uninterrupted run and its rollback (the baselines)`, async () => {
      const bc = await prepared();
      const res = await runOk(k.args, { env: bc.env });
      expect(res.json.status).toBe('done');
      baseline = await finalState(bc);
      // Sanity: the run ended something and revoked refresh tokens.
      expect(baseline.watermarks.length + baseline.revocations.length).toBeGreaterThan(0);
      expect(baseline.refreshTokens.filter((t) => t.revoked).length).toBeGreaterThan(0);
      await runOk(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env: bc.env });
      rolledBack = await finalState(bc);
      expect(rolledBack.refreshTokens.filter((t) => t.revoked)).toEqual([]);
    });

    for (const point of ['before', 'after'] as const) {
      it(`${k.name}: killed at ${k.step}:${point}, then resumed`, async () => {
        const bc = await prepared();
        const killed = await runCli(k.args, { env: { ...bc.env, JWTIR_FAILPOINT: `${k.step}:${point}` } });
        expect(killed.signal).toBe('SIGKILL');
        const runs = await runOk(['runs', 'list', '--json'], { env: bc.env });
        const crashed = runs.json.runs.find((r: { runbook: string }) => r.runbook === k.runbook);
        expect(crashed.status).toBe('running');
        // The crashed run keeps its lock: a second one cannot start beside it.
        const second = await runCli(k.args, { env: bc.env });
        expect(second.code).toBe(3);
        expect(second.json.error.code).toBe('ERR_LOCK_HELD');
        const resumed = await runOk(['runs', 'resume', String(crashed.id), '--yes', '--json'], { env: bc.env });
        expect(resumed.json.status).toBe('done');
        expect(resumed.json.steps.find((s: { step: string }) => s.step === k.step).outputs).toEqual(baselineOutputs(baseline));
        expect(await finalState(bc)).toEqual(baseline);
      });
    }

    it(`${k.name}: its rollback killed at ${k.step}:undo, then rolled back again`, async () => {
      const bc = await prepared();
      const res = await runOk(k.args, { env: bc.env });
      const killed = await runCli(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env: { ...bc.env, JWTIR_FAILPOINT: `${k.step}:undo` } });
      expect(killed.signal).toBe('SIGKILL');
      await runOk(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env: bc.env });
      expect(await finalState(bc)).toEqual(rolledBack);
    });
  }
});

interface FinalState {
  watermarks: string[];
  revocations: string[];
  refreshTokens: Array<{ hash: string; revoked: boolean; by: string | null }>;
  hot: { watermarks: Record<string, Array<[string, number]>>; sessions: Array<[string, number]> };
  audit: string[];
  steps: string[];
  outputs: unknown;
}

const baselineOutputs = (s: FinalState) => s.outputs;

/** Everything a logout changes, with run ids replaced by what they mean. */
async function finalState(bc: BackendCase): Promise<FinalState> {
  return withState(bc.env, async (b) => {
    const wm = await b.db.query<{ row: string }>(
      `SELECT concat_ws('|', scope, subject, not_before::text, step, cleared_at IS NOT NULL) AS row FROM watermarks ORDER BY 1`,
    );
    const rev = await b.db.query<{ row: string }>(
      `SELECT concat_ws('|', kind, value, expires_at::text, step, reason, lifted_at IS NOT NULL) AS row FROM revocations ORDER BY 1`,
    );
    const rt = await b.db.query<{ hash: string; revoked: boolean; by: string | null }>(
      `SELECT hash, revoked_at IS NOT NULL AS revoked, regexp_replace(revoked_by, '^[0-9]+:', '') AS by FROM refresh_tokens ORDER BY hash`,
    );
    const snap = await b.hot.snapshot();
    const sorted = (m: Map<string, number>) => [...m.entries()].sort(([a], [b2]) => a.localeCompare(b2));
    const audit = await b.db.query<{ body: { action: string; step: string | null; phase: string | null } }>('SELECT body FROM audit ORDER BY seq');
    const steps = await b.db.query<{ step: string; state: string; outputs: unknown }>(
      `SELECT s.step, s.state, s.outputs FROM run_steps s JOIN runs r ON r.id = s.run_id WHERE r.runbook <> 'keys-import' ORDER BY s.idx`,
    );
    return {
      watermarks: wm.map((r) => r.row),
      revocations: rev.map((r) => r.row),
      refreshTokens: rt,
      hot: { watermarks: { user: sorted(snap.watermarks.user), kid: sorted(snap.watermarks.kid), cohort: sorted(snap.watermarks.cohort) }, sessions: sorted(snap.revocations.sid) },
      // A resume or a second rollback adds its own run.resume / run.rollback row; every step's rows must appear exactly once, in order.
      audit: audit.map((r) => r.body).filter((x) => x.action !== 'run.resume' && x.action !== 'run.rollback').map((x) => `${x.action}|${x.step ?? ''}|${x.phase ?? ''}`),
      steps: steps.map((s) => `${s.step}:${s.state}`),
      outputs: steps.find((s) => s.state === 'done' || s.state === 'rolled_back')?.outputs ?? null,
    };
  });
}
