import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, withGuard, withState } from '../helpers/state.js';
import type { Guard, Session } from '../../src/guard/index.js';

/**
 * A logout (or `sessions revoke`) whose effect a `blacklist remove` lifted meanwhile, then both
 * rolled back in either order: the guard and `sessions list` end where they were before both.
 */
const secret = randomBytes(32).toString('hex');

for (const c of backendCases('logout_undo', ['postgres+redis'])) {
  describeBackend(c, 'logout undone after a blacklist remove', () => {
    const env = c.env;
    let byUser: Session;
    let bySid: Session;
    let live: Guard;

    /** The guard runs all along and only hears pushes; retried up to 2 s so the push has to deliver. */
    async function observe(check: (g: Guard) => void): Promise<void> {
      const deadline = Date.now() + 2000;
      for (;;) {
        try {
          return check(live);
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    const statusOf = async (user: string, sid: string) =>
      ((await runOk(['sessions', 'list', '--user', user, '--json'], { env })).json.sessions as Array<{ sid: string; status: string }>).find((s) => s.sid === sid)?.status;
    const rollback = (runId: number) => runOk(['runs', 'rollback', String(runId), '--yes', '--json'], { env });

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      // Logged in a minute ago, so a logout's cut-off (the run's start, in whole seconds) is after both
      // (a session renewed after the cut-off would be revoked one by one instead).
      await withGuard(
        env,
        async (g) => {
          byUser = await g.login({ sub: 'user-5' });
          bySid = await g.login({ sub: 'user-6' });
        },
        { now: () => Date.now() - 60_000 },
      );
      // The database stamped the refresh tokens with its own clock; they belong to the logins' time.
      await withState(env, (b) => b.db.query(`UPDATE refresh_tokens SET issued_at = issued_at - interval '1 minute'`));
      live = await guardFor(env, { pollIntervalMs: 60_000 });
    });

    afterAll(async () => {
      await live?.close();
    });

    it('logout --user, blacklist remove --user, rollback of the logout then of the remove: the user stays allowed', async () => {
      const logout = await runOk(['logout', '--user', 'user-5', '--yes', '--json'], { env });
      await observe((g) => expect(g.authorize(byUser.access.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_user'] }));
      const remove = await runOk(['blacklist', 'remove', '--user', 'user-5', '--yes', '--json'], { env });
      await rollback(logout.json.runId);
      await rollback(remove.json.runId);
      await observe((g) => expect(g.authorize(byUser.access.token).decision).toBe('allow'));
      expect(await statusOf('user-5', byUser.access.sid)).toBe('active');
      expect((await live.refresh(byUser.refreshToken)).access.sid).toBe(byUser.access.sid);
    });

    it('sessions revoke, blacklist remove --session, rollback of the revoke then of the remove: the session stays allowed', async () => {
      const revoke = await runOk(['sessions', 'revoke', bySid.access.sid, '--yes', '--json'], { env });
      await observe((g) => expect(g.authorize(bySid.access.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] }));
      const remove = await runOk(['blacklist', 'remove', '--session', bySid.access.sid, '--yes', '--json'], { env });
      await rollback(revoke.json.runId);
      await rollback(remove.json.runId);
      await observe((g) => expect(g.authorize(bySid.access.token).decision).toBe('allow'));
      expect(await statusOf('user-6', bySid.access.sid)).toBe('active');
      expect((await live.refresh(bySid.refreshToken)).access.sid).toBe(bySid.access.sid);
    });
  });
}
