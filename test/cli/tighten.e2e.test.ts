import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { cohortOf, type Guard } from '../../src/guard/index.js';
import { runCli, runOk, type CliResult } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, legacyService, seedLedger, withGuard } from '../helpers/state.js';

/**
 * `jwtir tighten` through the real binary, with a guard observing each change: max age, the
 * per-token rate limit, step-up and block-critical rules, and the cohort-by-cohort cutover of the
 * old key with its health gates (a breached stage is undone by itself, and the audit trail says so).
 */
const secret = randomBytes(32).toString('hex');
// 2,000 legacy sessions, tokens minted by jsonwebtoken, issued 1 to 31 minutes ago, living an hour.
const service = legacyService(secret, 'legacy', 2000, { privilegedEvery: 1000 });
const customers = service.tokens.filter((t) => t.roles.includes('customer'));
const inCohortsBelow = (p: number) => customers.filter((t) => cohortOf(t.sub) < p);
const fp = (label: string) => createHash('sha256').update(label).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Seconds since the token was issued (its iat, as jsonwebtoken wrote it). */
const ageSec = (token: string) => Date.now() / 1000 - (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).iat as number);
/** Customers whose tokens stay younger than the 20 minute max age the tests set, for the whole file. */
const young = (inCohort: (cohort: number) => boolean = () => true) => customers.filter((t) => inCohort(cohortOf(t.sub)) && ageSec(t.token) < 12 * 60);

/** What an operator can observe of the policy; equal snapshots mean nothing changed. */
async function policyState(env: Record<string, string>) {
  const status = await runOk(['status', '--json'], { env });
  const runs = await runOk(['runs', 'list', '--json'], { env });
  const trail = await runOk(['audit', 'trail', '--json'], { env });
  return { policy: status.json.policy, runs: runs.json.runs.length, auditRows: trail.json.rows };
}

function expectUsage(res: CliResult, pattern: RegExp): void {
  if (res.code !== ExitCode.usage) throw new Error(`expected exit 2, got ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  expect(res.json.error.message).toMatch(pattern);
  expect(res.stderr).toContain('next: ');
}

for (const c of backendCases('tighten', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir tighten', () => {
    const env = c.env;
    const live = c.name !== 'embedded';
    let liveGuard: Guard | undefined;

    /**
     * Runs `check` against a guard that sees the CLI's change: on Postgres + Redis the guard that
     * was running all along (it polls once a minute, so only the push feed can bring the change);
     * on the embedded default, whose database one process opens at a time, a guard opened now.
     */
    async function observe(minPolicyVersion: number, check: (g: Guard) => Promise<void> | void) {
      if (!liveGuard) return withGuard(env, async (g) => check(g));
      const deadline = Date.now() + 3000;
      while (liveGuard.policyVersion < minPolicyVersion && Date.now() < deadline) await sleep(20);
      expect(liveGuard.policyVersion).toBeGreaterThanOrEqual(minPolicyVersion);
      return check(liveGuard);
    }
    const version = async () => (await runOk(['status', '--json'], { env })).json.policy.version as number;

    beforeAll(async () => {
      await runOk(['init'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...env, S: secret } });
      await seedLedger(env, service.sessions);
      await runOk(['rotate', '--staged', '--compromised', '--grace', '1h', '--publish-wait', '0s', '--yes'], { env });
      if (live) liveGuard = await guardFor(env, { pollIntervalMs: 60_000, flushIntervalMs: 60_000 });
    });
    afterAll(async () => {
      await liveGuard?.close();
    });

    it('picks the compromised key, and --dry-run prints the blast radius of every cutover stage and changes nothing', async () => {
      const before = await policyState(env);
      const olderThan20m = () => service.sessions.filter((s) => Date.now() - s.issuedAt.getTime() > 20 * 60_000).length;
      const olderBefore = olderThan20m();
      const res = await runOk(['tighten', '--max-age', '20m', '--cutover', '1%,10%,50%,100%', '--every', '15m', '--dry-run', '--json'], { env });
      const olderAfter = olderThan20m();
      expect(res.json.dryRun).toBe(true);
      const [tightenPlan, cutoverPlan] = res.json.plans;
      expect(tightenPlan.params.kid).toBe('legacy');
      // Sessions age while the command runs: the count lies between the counts before and after it.
      const maxAgeImpact = tightenPlan.steps.find((s: { id: string }) => s.id === 'max-age').impact.sessions;
      expect(maxAgeImpact).toBeGreaterThanOrEqual(olderBefore);
      expect(maxAgeImpact).toBeLessThanOrEqual(olderAfter);
      expect(olderBefore).toBeGreaterThan(500);
      // Each stage's blast radius: the live legacy sessions in the cohorts it adds.
      const bounds = [0, 1, 10, 50, 100];
      expect(cutoverPlan.steps.map((s: { id: string }) => s.id)).toEqual(['stage-1', 'stage-2', 'stage-3', 'stage-4']);
      cutoverPlan.steps.forEach((step: { impact: { sessions: number; users: number }; gate: string }, i: number) => {
        const added = service.sessions.filter((s) => cohortOf(s.sub) >= bounds[i]! && cohortOf(s.sub) < bounds[i + 1]!);
        expect(step.impact).toMatchObject({ sessions: added.length, users: new Set(added.map((s) => s.sub)).size });
        expect(step.gate).toContain('watch 15m');
      });
      expect(cutoverPlan.steps.reduce((n: number, s: { impact: { sessions: number } }) => n + s.impact.sessions, 0)).toBe(2000);
      expect(await policyState(env)).toEqual(before);
    });

    it('refuses bad input with a clear error and changes nothing', async () => {
      const before = await policyState(env);
      expectUsage(await runCli(['tighten', '--cutover', '1%,10%,50%', '--yes', '--json'], { env }), /ends at 50%, not 100%/);
      expectUsage(await runCli(['tighten', '--cutover', '10%,5%,100%', '--yes', '--json'], { env }), /stages must rise/);
      expectUsage(await runCli(['tighten', '--cutover', '0%,100%', '--yes', '--json'], { env }), /not a whole percentage/);
      expectUsage(await runCli(['tighten', '--rate-limit', '0/1m', '--yes', '--json'], { env }), /at least 1/);
      expectUsage(await runCli(['tighten', '--rate-limit', 'five per minute', '--yes', '--json'], { env }), /not <operations>\/<window>/);
      expectUsage(await runCli(['tighten', '--max-age', '2 hours', '--yes', '--json'], { env }), /not a duration/);
      expectUsage(await runCli(['tighten', '--step-up', 'new-device,full-moon', '--yes', '--json'], { env }), /unknown full-moon/);
      expectUsage(await runCli(['tighten', '--kid', 'nope', '--max-age', '1h', '--yes', '--json'], { env }), /there is no key "nope"/);
      expectUsage(await runCli(['tighten', '--yes', '--json'], { env }), /nothing to tighten/);
      expectUsage(await runCli(['tighten', '--every', '5m', '--max-age', '1h', '--yes', '--json'], { env }), /--every belongs to a cutover/);
      // Several mistakes at once are all reported.
      const many = await runCli(['tighten', '--rate-limit', '0/1m', '--cutover', '50%', '--max-denial-rate', '3', '--yes', '--json'], { env });
      expectUsage(many, /3 problems/);
      // Cutting over the key that signs new tokens would lock out everyone who logs in again.
      const active = (await runOk(['keys', 'list', '--json'], { env })).json.keys.find((k: { state: string }) => k.state === 'active').kid;
      const refused = await runCli(['tighten', '--kid', active, '--cutover', '100%', '--yes', '--json'], { env });
      expect(refused.code).toBe(ExitCode.conflict);
      expect(refused.json.error.message).toContain('active signing key');
      expect(await policyState(env)).toEqual(before);
    });

    it('--max-age: old-key tokens older than it are refused, younger ones still pass', async () => {
      const res = await runOk(['tighten', '--max-age', '20m', '--yes', '--json'], { env });
      expect(res.json.runs[0].steps.find((s: { step: string }) => s.step === 'max-age').state).toBe('done');
      await observe(await version(), (g) => {
        const verdicts = customers.map((t) => ({ age: ageSec(t.token), v: g.verify(t.token) }));
        for (const { age, v } of verdicts) {
          if (age > 20 * 60 + 5) expect(v).toMatchObject({ decision: 'deny', reasons: ['too_old'] });
          else if (age < 20 * 60 - 5) expect(v.decision).toBe('allow');
        }
        expect(verdicts.filter(({ v }) => v.decision === 'allow').length).toBeGreaterThan(500);
      });
    });

    it('--rate-limit 5/1m: the sixth operation of an old-key token in a minute is denied; new-key tokens are not limited', async () => {
      await runOk(['tighten', '--rate-limit', '5/1m', '--yes', '--json'], { env });
      await observe(await version(), async (g) => {
        const [a, b] = young();
        for (let i = 0; i < 5; i++) expect(g.authorize(a!.token, { operation: i % 2 ? 'critical' : 'read' }).decision).toBe('allow');
        const sixth = g.authorize(a!.token);
        expect(sixth).toMatchObject({ decision: 'deny', reasons: ['rate_limited'] });
        expect(sixth.retryAfterSec).toBeGreaterThan(0);
        expect(sixth.retryAfterSec).toBeLessThanOrEqual(60);
        // Another token of the same key has its own budget.
        expect(g.authorize(b!.token).decision).toBe('allow');
        const fresh = await g.issue({ sub: a!.sub, roles: ['customer'] });
        for (let i = 0; i < 10; i++) expect(g.authorize(fresh.token).decision).toBe('allow');
      });
    });

    it('--step-up and --block-critical: a second factor for unconfirmed devices, critical operations held for a dirty device', async () => {
      await runOk(['tighten', '--step-up', 'new-device,bad-reputation', '--block-critical', 'dirty-device', '--yes', '--json'], { env });
      await observe(await version(), async (g) => {
        const phone = fp('phone-of-user-7');
        const laptop = fp('laptop-of-user-7');
        const { token } = await g.issue({ sub: 'user-7', roles: ['customer'], fph: phone });
        expect(g.authorize(token, { fingerprint: phone })).toMatchObject({ decision: 'step_up', reasons: ['new_device'] });
        await g.confirmDevice('user-7', phone);
        expect(g.authorize(token, { fingerprint: phone }).decision).toBe('allow');
        const other = await g.issue({ sub: 'user-7', roles: ['customer'], fph: laptop });
        await g.confirmDevice('user-7', laptop);
        await g.setDeviceReputation('user-7', laptop, 'bad');
        expect(g.authorize(other.token, { fingerprint: laptop, operation: 'critical' })).toMatchObject({ decision: 'block_critical', reasons: ['dirty_device'] });
        expect(g.authorize(other.token, { fingerprint: laptop, operation: 'read' })).toMatchObject({ decision: 'step_up', reasons: ['bad_reputation'] });
      });
    });

    it('runs rollback undoes a tightening: exactly the fields it set go back', async () => {
      const runs = (await runOk(['runs', 'list', '--json'], { env })).json.runs;
      const rateRun = runs.find((r: { runbook: string; params: { rateLimitOps?: number } }) => r.runbook === 'tighten' && r.params.rateLimitOps === 5);
      await runOk(['runs', 'rollback', String(rateRun.id), '--yes', '--json'], { env });
      const status = await runOk(['status', '--json'], { env });
      expect(status.json.policy.doc.kids.legacy).toEqual({ maxAgeSec: 1200 });
      expect(status.json.policy.doc.stepUp).toEqual({ newDevice: true, badReputation: true });
      await observe(status.json.policy.version, (g) => {
        const token = young()[2]!.token;
        for (let i = 0; i < 8; i++) expect(g.authorize(token).decision).toBe('allow');
      });
    });

    it('rolling back tightenings in any order ends where none of them was: undoing an older run keeps a newer value', async () => {
      const maxAge = async () => (await runOk(['status', '--json'], { env })).json.policy.doc.kids.legacy?.maxAgeSec;
      const base = await maxAge();
      const a = (await runOk(['tighten', '--max-age', '2h', '--yes', '--json'], { env })).json.runs[0].runId;
      const b = (await runOk(['tighten', '--max-age', '1h', '--yes', '--json'], { env })).json.runs[0].runId;
      await runOk(['runs', 'rollback', String(a), '--yes'], { env });
      expect(await maxAge()).toBe(3600);
      await runOk(['runs', 'rollback', String(b), '--yes'], { env });
      expect(await maxAge()).toBe(base);
    });

    it('never switches a key back on: a cutover starting below the current stage is refused with nothing changed', async () => {
      const first = await runOk(['tighten', '--cutover', '50%,100%', '--every', '0s', '--yes', '--json'], { env });
      const refused = await runCli(['tighten', '--cutover', '10%,100%', '--every', '0s', '--yes', '--json'], { env });
      expectUsage(refused, /already switched off for 100 % of users/);
      await runOk(['runs', 'rollback', String(first.json.runs[0].runId), '--yes'], { env });
      expect((await runOk(['status', '--json'], { env })).json.policy.doc.kids.legacy?.cutoverPercent).toBeUndefined();
    });

    if (live) {
      it('cutover to 10 %: old-key tokens of users in those cohorts are denied and everyone else\'s still pass; then 100 %', async () => {
        const release = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-gate-')), 'go');
        // The service's check blocks until the test has looked at the 10 % stage.
        const child = runCli(['tighten', '--cutover', '10%,100%', '--every', '1s', '--check-cmd', `while [ ! -e ${release} ]; do sleep 0.05; done`, '--yes', '--json'], { env });
        const deadline = Date.now() + 10_000;
        while (liveGuard!.authorize(young((k) => k < 10)[0]!.token).decision !== 'deny' && Date.now() < deadline) await sleep(20);
        for (const t of young((k) => k < 10)) expect(liveGuard!.authorize(t.token)).toMatchObject({ decision: 'deny', reasons: ['key_cutover'] });
        for (const t of young((k) => k >= 10)) expect(liveGuard!.authorize(t.token).decision).toBe('allow');
        writeFileSync(release, '');
        const res = await child;
        expect(res.json.error).toBeUndefined();
        expect(res.code).toBe(0);
        expect(res.json.runs[0]).toMatchObject({ runbook: 'cutover', status: 'done' });
        const status = await runOk(['status', '--json'], { env });
        await observe(status.json.policy.version, () => {
          for (const t of young()) expect(liveGuard!.authorize(t.token).reasons).toEqual(['key_cutover']);
        });
        // Back to 0 % for the next test: the rollback undoes both stages.
        await runOk(['runs', 'rollback', String(res.json.runs[0].runId), '--yes'], { env });
      });

      it('a stage whose counters breach the health gate (users cannot log in again) is undone by itself; the audit trail shows the breach and the undo', async () => {
        const cut = young((k) => k < 10);
        const child = runCli(['tighten', '--cutover', '10%,100%', '--every', '4s', '--min-requests', '20', '--yes', '--json'], { env });
        // Users of the cut-over cohorts keep coming back with old-key tokens and never get a new one.
        const deadline = Date.now() + 10_000;
        while (liveGuard!.authorize(cut[0]!.token).decision !== 'deny' && Date.now() < deadline) await sleep(20);
        for (const t of cut) for (let i = 0; i < 3; i++) expect(liveGuard!.authorize(t.token).reasons).toEqual(['key_cutover']);
        await liveGuard!.flush();
        const res = await child;
        expect(res.code).toBe(ExitCode.runFailed);
        expect(res.json.error.code).toBe('ERR_HEALTH_GATE_BREACHED');
        expect(res.json.error.message).toMatch(/re-login rate 0\.0 % < 50\.0 % \(0 of \d+ users turned back got in again/);
        const runId = Number(/run (\d+)/.exec(res.json.error.message)![1]);
        const shown = await runOk(['runs', 'show', String(runId), '--json'], { env });
        expect(shown.json.run.status).toBe('failed');
        expect(shown.json.steps.map((s: { step: string; state: string }) => `${s.step}:${s.state}`)).toEqual(['stage-1:rolled_back', 'stage-2:pending']);
        const phases = shown.json.audit.filter((a: { step: string | null }) => a.step === 'stage-1').map((a: { phase: string }) => a.phase);
        expect(phases).toEqual(['intent', 'applied', 'gate-breach', 'undo-intent', 'undo-done', 'failed']);
        const breach = shown.json.audit.find((a: { phase: string }) => a.phase === 'gate-breach');
        expect(breach.result.traffic.cutoverDenials).toBeGreaterThanOrEqual(cut.length * 3);
        // Counted in users, not requests (Redis estimates them within about 1 %).
        expect(breach.result.relogin.returnedUsers).toBe(0);
        expect(Math.abs(breach.result.relogin.cutUsers - cut.length)).toBeLessThanOrEqual(Math.ceil(cut.length * 0.03));
        // The undo reached the guards: the cut-over users get in again.
        await observe(await version(), () => {
          for (const t of cut) expect(liveGuard!.authorize(t.token).decision).toBe('allow');
        });
        await runOk(['runs', 'rollback', String(runId), '--yes'], { env });
      });

      it('a stage whose users log in again passes its gate, though one user replays an old token and another floods expired ones', async () => {
        const cut = young((k) => k < 10);
        const release = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-gate-')), 'go');
        const child = runCli(['tighten', '--cutover', '10%,100%', '--every', '4s', '--min-requests', '20', '--check-cmd', `while [ ! -e ${release} ]; do sleep 0.05; done`, '--yes', '--json'], { env });
        const deadline = Date.now() + 10_000;
        while (liveGuard!.authorize(cut[0]!.token).decision !== 'deny' && Date.now() < deadline) await sleep(20);
        // Each cut-over user is turned back once, logs in again, and goes on with a new-key token.
        for (const t of cut) {
          expect(liveGuard!.authorize(t.token).reasons).toEqual(['key_cutover']);
          const fresh = await liveGuard!.issue({ sub: t.sub, roles: t.roles });
          for (let i = 0; i < 4; i++) expect(liveGuard!.authorize(fresh.token).decision).toBe('allow');
        }
        // Mallory, an ordinary user of those cohorts, tries to make the stage look harmful: she replays
        // her old-key token a thousand times and floods expired new-key tokens of her own.
        const mallory = cut[0]!;
        for (let i = 0; i < 1000; i++) liveGuard!.authorize(mallory.token);
        // A token of hers issued two minutes ago for one minute: past its expiry and the 30 s tolerance.
        const expired = await withGuard(env, (g) => g.issue({ sub: mallory.sub, roles: mallory.roles, ttlSec: 60 }), { now: () => Date.now() - 120_000 });
        for (let i = 0; i < 1000; i++) expect(liveGuard!.authorize(expired.token).reasons).toEqual(['expired']);
        await liveGuard!.flush();
        writeFileSync(release, '');
        const res = await child;
        expect(res.json.error).toBeUndefined();
        expect(res.code).toBe(0);
        const shown = await runOk(['runs', 'show', String(res.json.runs[0].runId), '--json'], { env });
        const pass = shown.json.audit.find((a: { step: string; phase: string }) => a.step === 'stage-1' && a.phase === 'gate-pass');
        // Every user turned back got in again: counted per user, Mallory's thousand replays count once.
        expect(pass.result.relogin.rate).toBeGreaterThan(0.95);
        // Counted under the stage's own policy version: the earlier tests' users turned back (all
        // young customers, perhaps within this same minute) are not counted against it.
        expect(pass.result.relogin.fromPolicyVersion).toBe(shown.json.steps.find((s: { step: string }) => s.step === 'stage-1').outputs.version);
        expect(Math.abs(pass.result.relogin.cutUsers - cut.length)).toBeLessThanOrEqual(Math.ceil(cut.length * 0.03));
        expect(pass.result.reloginJudged).toBe(true);
        expect(pass.result.traffic.cutoverDenials).toBeGreaterThanOrEqual(cut.length + 1000);
        // Her expired tokens are no harm done by the stage: the denial rate of new-key tokens stays 0.
        expect(pass.result.traffic).toMatchObject({ denials: 0, denialRate: 0 });
        expect(pass.result.ratesJudged).toBe(true);
      });
    } else {
      it("cutover to 10 %, then a stage whose service check fails is undone by itself: 10 % stays, the audit trail shows the breach", async () => {
        const res = await runCli(['tighten', '--cutover', '10%,100%', '--every', '1s', '--check-cmd', 'test "$JWTIR_CUTOVER_PERCENT" -lt 100', '--yes', '--json'], { env });
        expect(res.code).toBe(ExitCode.runFailed);
        expect(res.json.error).toMatchObject({ code: 'ERR_HEALTH_GATE_BREACHED' });
        expect(res.json.error.message).toContain('stage-2');
        expect(res.json.error.message).toContain('the health check exited 1');
        const runId = Number(/run (\d+)/.exec(res.json.error.message)![1]);
        const shown = await runOk(['runs', 'show', String(runId), '--json'], { env });
        expect(shown.json.steps.map((s: { step: string; state: string }) => `${s.step}:${s.state}`)).toEqual(['stage-1:done', 'stage-2:rolled_back']);
        expect(shown.json.audit.filter((a: { step: string | null }) => a.step === 'stage-2').map((a: { phase: string }) => a.phase)).toEqual(['intent', 'applied', 'gate-breach', 'undo-intent', 'undo-done', 'failed']);
        await withGuard(env, async (g) => {
          for (const t of young()) {
            if (cohortOf(t.sub) < 10) expect(g.verify(t.token)).toMatchObject({ decision: 'deny', reasons: ['key_cutover'] });
            else expect(g.verify(t.token).decision).toBe('allow');
          }
        });
        // Resume retries the stage (the check still fails); rollback undoes the 10 % too.
        const retried = await runCli(['runs', 'resume', String(runId), '--yes', '--json'], { env });
        expect(retried.json.error.code).toBe('ERR_HEALTH_GATE_BREACHED');
        await runOk(['runs', 'rollback', String(runId), '--yes'], { env });
        await withGuard(env, async (g) => {
          for (const t of inCohortsBelow(10).slice(0, 20)) expect(g.verify(t.token).reasons).not.toContain('key_cutover');
        });
        const trail = await runOk(['audit', 'trail', '--json'], { env });
        expect(trail.json.intact).toBe(true);
      });
    }
  });
}

