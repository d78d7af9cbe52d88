import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, legacyService, seedLedger, withGuard, withState, type LegacyToken } from '../helpers/state.js';
import type { Guard } from '../../src/guard/index.js';

const SESSIONS = 100_000;
const isPrivileged = (t: { roles: string[] }) => t.roles.includes('admin') || t.roles.includes('staff');
// One legacy service for both backends: 100,000 sessions in the ledger; access tokens minted by
// jsonwebtoken for every privileged session and every 6th ordinary one (about 18,000 tokens).
const secret = randomBytes(32).toString('hex');
const service = legacyService(secret, 'legacy-hs256', SESSIONS, { tokenFor: (i, roles) => isPrivileged({ roles }) || i % 6 === 0 });
const privilegedSessions = service.sessions.filter(isPrivileged);

for (const c of backendCases('rotate', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir rotate --staged --compromised on a realistic legacy service', () => {
    const env = c.env;
    const tokens: LegacyToken[] = service.tokens;
    let newKid: string;
    let verifyUntil: number;
    let liveGuard: Guard | undefined;

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy-hs256', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, service.sessions);
    });

    afterAll(async () => {
      await liveGuard?.close();
    });

    it('accepts every legacy jsonwebtoken-minted token before the rotation', async () => {
      await withGuard(env, async (guard) => {
        const denied = tokens.filter((t) => guard.verify(t.token).decision !== 'allow');
        expect(denied).toEqual([]);
      });
    });

    it('--dry-run prints the plan with the default grace and blast radius, and changes nothing', async () => {
      const before = await runOk(['audit', 'trail', '--json'], { env });
      const res = await runOk(['rotate', '--staged', '--compromised', '--dry-run', '--json'], { env });
      expect(res.json.dryRun).toBe(true);
      // Default grace: the longest token lifetime in the ledger (1 h) plus the 30 s clock tolerance.
      expect(res.json.plan.params.grace).toBe(3_630_000);
      const end = res.json.plan.steps.find((s: { id: string }) => s.id === 'end-privileged-sessions');
      expect(end.impact).toMatchObject({ sessions: privilegedSessions.length, users: new Set(privilegedSessions.map((t) => t.sub)).size });
      expect(privilegedSessions.length).toBe(2000);
      const activate = res.json.plan.steps.find((s: { id: string }) => s.id === 'activate');
      expect(activate.impact.sessions).toBe(SESSIONS);
      const after = await runOk(['audit', 'trail', '--json'], { env });
      expect(after.json.rows).toBe(before.json.rows);
      const keys = await runOk(['keys', 'list', '--json'], { env });
      expect(keys.json.keys.map((k: { kid: string }) => k.kid)).toEqual(['legacy-hs256']);
    });

    it('rotates through the real binary: generate, publish, gate, activate, end privileged sessions, flag compromised', async () => {
      // A guard that is already running keeps running through the rotation (not possible on the
      // embedded default, whose database one process opens at a time).
      if (c.name !== 'embedded') liveGuard = await guardFor(env, { pollIntervalMs: 60_000 });
      const res = await runOk(['rotate', '--staged', '--compromised', '--grace', '10m', '--publish-wait', '1s', '--yes', '--json'], { env });
      expect(res.json.status).toBe('done');
      expect(res.json.steps.map((s: { step: string; state: string }) => `${s.step}:${s.state}`)).toEqual([
        'generate:done',
        'publish:done',
        'export:skipped',
        'publication-gate:done',
        'activate:done',
        'hand-off:skipped',
        'await-new-key:skipped',
        'end-privileged-sessions:done',
        'flag-compromised:done',
      ]);
      newKid = res.json.steps[0].outputs.kid;
      verifyUntil = Date.parse(res.json.steps.find((s: { step: string }) => s.step === 'activate').outputs.verifyUntil);
      const keys = await runOk(['keys', 'list', '--json'], { env });
      const byKid = Object.fromEntries(keys.json.keys.map((k: { kid: string }) => [k.kid, k]));
      expect(byKid['legacy-hs256']).toMatchObject({ state: 'retiring', compromised: true });
      expect(byKid[newKid]).toMatchObject({ state: 'active', alg: 'HS256', published: true, compromised: false });
    });

    it('a guard that was running all along follows the rotation without a restart (push, not polling)', async () => {
      if (!liveGuard) return expect(c.name).toBe('embedded');
      // Polling is set to a minute, so only the change feed can have brought the new state here.
      const admin = tokens.find((t) => t.roles.includes('admin'))!;
      const deadline = Date.now() + 3000;
      while (liveGuard.verify(admin.token).decision === 'allow' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(liveGuard.verify(admin.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_user'] });
      const customer = tokens.find((t) => t.roles.includes('customer'))!;
      expect(liveGuard.verify(customer.token).decision).toBe('allow');
    });

    it('during the grace period: ordinary legacy tokens pass, admin/staff legacy tokens are rejected, new tokens pass', async () => {
      await withGuard(env, async (guard) => {
        const verdicts = tokens.map((t) => ({ t, v: guard.verify(t.token) }));
        const wrong = verdicts.filter(({ t, v }) => (isPrivileged(t) ? v.decision !== 'deny' || v.reasons[0] !== 'revoked_user' : v.decision !== 'allow'));
        expect(wrong.slice(0, 3).map(({ t, v }) => ({ sub: t.sub, roles: t.roles, v }))).toEqual([]);
        expect(verdicts.filter(({ v }) => v.decision === 'deny').length).toBe(tokens.filter(isPrivileged).length);

        const fresh = await guard.issue({ sub: 'user-0', roles: ['admin'], ttlSec: 3600 });
        expect(fresh.kid).toBe(newKid);
        // The admin logs in again through the normal flow and gets in with a new-key token.
        expect(guard.verify(fresh.token)).toMatchObject({ decision: 'allow', kid: newKid });
      });
    });

    it('after the grace period: legacy tokens are rejected because their key retired; new tokens still pass', async () => {
      const fresh = await withGuard(env, (g) => g.issue({ sub: 'user-2', roles: ['customer'], ttlSec: 3600 }));
      await withGuard(
        env,
        async (guard) => {
          const customer = tokens.find((t) => t.roles.includes('customer'))!;
          expect(guard.verify(customer.token)).toMatchObject({ decision: 'deny', reasons: ['key_retired'] });
          const stillAllowed = tokens.filter((t) => guard.verify(t.token).decision === 'allow');
          expect(stillAllowed).toEqual([]);
          expect(guard.verify(fresh.token)).toMatchObject({ decision: 'allow', kid: newKid });
        },
        { now: () => verifyUntil + 1000 },
      );
    });

    it('records the issued sessions in the ledger and leaves an intact audit trail', async () => {
      const audit = await runOk(['audit', 'trail', '--json'], { env });
      expect(audit.json.intact).toBe(true);
      const n = await withState(env, async (b) => (await b.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM sessions WHERE kid = $1`, [newKid]))[0]!.n);
      expect(n).toBe(2);
    });
  });
}
