import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, withGuard, withState } from '../helpers/state.js';
import type { Guard, Session } from '../../src/guard/index.js';

/**
 * `logout --suspicious` with the leaked secret in an attacker's hands: tokens minted without a
 * session id for users the attacker picks raise forged_token alerts naming only those users.
 * Those tokens are denied already; the alerts must not make the logout end (or mail) anyone.
 */
const secret = randomBytes(32).toString('hex');
const fp = (label: string) => createHash('sha256').update(label).digest('hex');

for (const c of backendCases('logout_suspicious', ['postgres+redis'])) {
  describeBackend(c, 'logout --suspicious and forged alerts', () => {
    const env = c.env;
    const logins: Record<'alice' | 'bob' | 'carol', Session> = {} as never;
    let live: Guard;

    const forge = (sub: string) => jwt.sign({ sub, roles: ['admin'] }, secret, { algorithm: 'HS256', keyid: 'legacy', expiresIn: 600 });
    const verdict = (g: Guard, who: keyof typeof logins) => {
      const v = g.authorize(logins[who].access.token, { fingerprint: fp(who) });
      return v.decision === 'allow' ? 'allow' : `${v.decision}:${v.reasons.join(',')}`;
    };
    const outbox = () => withState(env, (b) => b.db.query<{ sub: string }>(`SELECT sub FROM notify_outbox ORDER BY sub`));
    const state = () =>
      withState(env, async (b) =>
        (await b.db.query(
          `SELECT (SELECT count(*) FROM runs)::int AS runs, (SELECT count(*) FROM revocations)::int AS revocations,
                  (SELECT count(*) FROM watermarks WHERE scope = 'user')::int AS "userWatermarks", (SELECT count(*) FROM notify_outbox)::int AS outbox`,
        ))[0],
      );

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await withGuard(env, async (g) => {
        for (const sub of ['alice', 'bob', 'carol'] as const) logins[sub] = await g.login({ sub, fph: fp(sub) });
      }, { now: () => Date.now() - 60_000 });
      await withState(env, (b) => b.db.query(`UPDATE refresh_tokens SET issued_at = issued_at - interval '1 minute'`));
      await runOk(['rotate', '--staged', '--compromised', '--grace', '2h', '--publish-wait', '0s', '--privileged-roles', '', '--yes', '--json'], { env });
      live = await guardFor(env, { pollIntervalMs: 60_000 });
      // The attacker picks bob and carol: forged tokens without a session id, denied and alerted on.
      for (const sub of ['bob', 'carol']) expect(live.authorize(forge(sub), { fingerprint: fp('attacker') }).decision).toBe('deny');
      await live.flush();
      const alerts = await withState(env, (b) => b.db.query<{ kind: string; sub: string; sid: string | null }>(`SELECT kind, sub, sid FROM alerts ORDER BY sub`));
      expect(alerts).toEqual([
        { kind: 'forged_token', sub: 'bob', sid: null },
        { kind: 'forged_token', sub: 'carol', sid: null },
      ]);
    });

    afterAll(async () => {
      await live?.close();
    });

    it('alerts that name no ledger session select nobody: refused, nothing changed', async () => {
      const before = await state();
      const res = await runCli(['logout', '--suspicious', '--notify', '--yes', '--json'], { env });
      expect(res.code).toBe(ExitCode.usage);
      expect(res.json.error).toMatchObject({ code: 'ERR_NO_MATCH', message: expect.stringContaining('no live sessions match') });
      expect(res.json.error.hint).toContain('forged tokens');
      expect(await state()).toEqual(before);
      expect(before).toMatchObject({ userWatermarks: 0, outbox: 0 });
    });

    it("a stolen real session among them: only that session ends and only its user is told; the attacker's picks keep theirs", async () => {
      // alice's real token used from a device she never used: on the compromised key an alert naming her session.
      expect(live.authorize(logins.alice.access.token, { fingerprint: fp('elsewhere') })).toMatchObject({ decision: 'deny', reasons: ['forged_unknown_device'] });
      await live.flush();
      const dry = await runOk(['logout', '--suspicious', '--dry-run', '--json'], { env });
      const step = dry.json.plan.steps.find((s: { runs: boolean }) => s.runs);
      expect(step.impact).toMatchObject({ sessions: 1, users: 1 });
      expect(step.impact.note).toContain('2 alerts name no ledger session');

      const res = await runOk(['logout', '--suspicious', '--notify', '--yes', '--json'], { env });
      expect(res.json.steps.find((s: { step: string }) => s.step === 'sessions').outputs).toMatchObject({ sessions: 1, users: 1, notBefore: null });
      // The guard only hears pushes (it polls once a minute): wait up to 2 s for alice's revocation.
      const deadline = Date.now() + 2000;
      while (verdict(live, 'alice') === 'allow' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect({ alice: verdict(live, 'alice'), bob: verdict(live, 'bob'), carol: verdict(live, 'carol') }).toEqual({ alice: 'deny:revoked_session', bob: 'allow', carol: 'allow' });
      expect(await outbox()).toEqual([{ sub: 'alice' }]);
      expect(await state()).toMatchObject({ userWatermarks: 0 });
    });
  });
}
