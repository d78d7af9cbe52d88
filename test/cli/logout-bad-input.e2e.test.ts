import { randomBytes } from 'node:crypto';
import { beforeAll, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk, type CliResult } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { legacyService, seedLedger, withState } from '../helpers/state.js';

/**
 * Bad input to `logout` and `sessions` gets a clear error with a stable code, exit 2, and
 * changes nothing: no run, no audit row, no watermark, revocation or revoked refresh token.
 */
const secret = randomBytes(32).toString('hex');
const service = legacyService(secret, 'legacy', 50, { privilegedEvery: 10, tokenFor: () => false });

function expectUsage(res: CliResult, code: string): { message: string; hint: string | null } {
  if (res.code !== ExitCode.usage || res.json?.error?.code !== code) {
    throw new Error(`expected exit 2 with ${code}, got exit ${res.code ?? res.signal} with ${res.json?.error?.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  expect(res.stderr).toContain(`jwtir: error ${code}: ${res.json.error.message}`);
  return res.json.error;
}

for (const c of backendCases('logout_bad', ['embedded', 'postgres+redis'])) {
  describeBackend(c, 'logout and sessions refuse bad input and change nothing', () => {
    const env = c.env;
    const state = () =>
      withState(env, async (b) => {
        const [row] = await b.db.query(
          `SELECT (SELECT count(*) FROM runs)::int AS runs, (SELECT count(*) FROM audit)::int AS audit,
                  (SELECT count(*) FROM watermarks)::int AS watermarks, (SELECT count(*) FROM revocations)::int AS revocations,
                  (SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL)::int AS refresh`,
        );
        return row;
      });
    let before: unknown;
    const logout = (...args: string[]) => runCli(['logout', ...args, '--yes', '--json'], { env });

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, service.sessions);
      before = await state();
    });

    it('an unknown user is named, with or without other selectors, in a dry run too', async () => {
      const alone = expectUsage(await logout('--user', 'nobody'), 'ERR_USER_UNKNOWN');
      expect(alone.message).toBe('unknown user "nobody": no session in the ledger and no device');
      expect(alone.hint).toContain('case matters');
      const two = expectUsage(await logout('--user', 'user-1', '--user', 'User-2', '--user', 'ghost', '--kid', 'legacy'), 'ERR_USER_UNKNOWN');
      expect(two.message).toBe('unknown users "User-2", "ghost": no session in the ledger and no device');
      expectUsage(await runCli(['logout', '--user', 'nobody', '--dry-run', '--json'], { env }), 'ERR_USER_UNKNOWN');
    });

    it('a selection that matches no live session is refused', async () => {
      const role = expectUsage(await logout('--role', 'ghost'), 'ERR_NO_MATCH');
      expect(role.message).toBe('no live sessions match: role ghost');
      // user-0 is an admin, user-3 is not: together they select nobody.
      const both = expectUsage(await logout('--user', 'user-3', '--role', 'admin'), 'ERR_NO_MATCH');
      expect(both.message).toBe('no live sessions match: user user-3, role admin');
      expectUsage(await logout('--device', 'f'.repeat(64)), 'ERR_NO_MATCH');
      const suspicious = expectUsage(await logout('--suspicious'), 'ERR_NO_MATCH');
      expect(suspicious.hint).toContain('--since');
    });

    it('malformed cohorts are each named; several problems are reported together', async () => {
      expect(expectUsage(await logout('--cohort', '100'), 'ERR_SELECTOR_INVALID').message).toBe('--cohort "100": "100" is not a cohort or range of cohorts 0..99 (example: 0-9,42)');
      expect(expectUsage(await logout('--cohort', '5-2'), 'ERR_SELECTOR_INVALID').message).toBe('--cohort "5-2": "5-2" is a range that runs backwards (write 2-5) (example: 0-9,42)');
      expect(expectUsage(await logout('--cohort', 'x'), 'ERR_SELECTOR_INVALID').message).toContain('"x" is not a cohort');
      expect(expectUsage(await logout('--cohort', '1,,2'), 'ERR_SELECTOR_INVALID').message).toContain('"" is not a cohort');
      const several = expectUsage(await logout('--cohort', '7,120', '--issued-before', 'yesterday', '--since', '1h'), 'ERR_SELECTOR_INVALID');
      expect(several.message).toBe(
        [
          '3 problems with the selectors:',
          '  - --cohort "7,120": "120" is not a cohort or range of cohorts 0..99 (example: 0-9,42)',
          '  - --issued-before "yesterday" is neither a time (2026-12-04T09:30:00Z) nor a duration ago (2h)',
          '  - --since applies to --suspicious only',
        ].join('\n'),
      );
    });

    it('a malformed, unreal or future --issued-before is refused', async () => {
      expect(expectUsage(await logout('--issued-before', 'yesterday'), 'ERR_SELECTOR_INVALID').message).toContain('neither a time');
      expect(expectUsage(await logout('--issued-before', '2026-13-45'), 'ERR_SELECTOR_INVALID').message).toBe('--issued-before "2026-13-45" is not a real date');
      // Date.parse would roll it over to 2026-03-02.
      expect(expectUsage(await logout('--issued-before', '2026-02-30T00:00:00Z'), 'ERR_SELECTOR_INVALID').message).toBe('--issued-before "2026-02-30T00:00:00Z" is not a real date');
      // A time without an offset would mean something else on each operator's machine.
      expect(expectUsage(await logout('--issued-before', '2026-01-01T10:00:00'), 'ERR_SELECTOR_INVALID').message).toContain('neither a time');
      const future = expectUsage(await logout('--issued-before', '2999-01-01T00:00:00Z'), 'ERR_SELECTOR_INVALID');
      expect(future.message).toBe('--issued-before "2999-01-01T00:00:00Z" is in the future; it must be a time that has passed');
      expect(expectUsage(await logout('--suspicious', '--since', '5 minutes'), 'ERR_SELECTOR_INVALID').message).toContain('--since "5 minutes" is not a duration');
    });

    it('no selector, an unknown key, or no --yes without a terminal', async () => {
      const none = expectUsage(await logout(), 'ERR_SELECTOR_INVALID');
      expect(none.message).toBe('say whom to log out: no selector was given');
      expect(none.hint).toContain('--user, --role, --kid, --cohort, --device, --issued-before or --suspicious');
      expect(expectUsage(await logout('--kid', 'nope'), 'ERR_KID_UNKNOWN').hint).toContain('known kids: legacy');
      expectUsage(await runCli(['logout', '--kid', 'legacy', '--json'], { env }), 'ERR_CONFIRMATION_REQUIRED');
    });

    it('sessions: an unknown session id or user', async () => {
      const sid = expectUsage(await runCli(['sessions', 'revoke', 'no-such-sid', '--json'], { env }), 'ERR_SESSION_UNKNOWN');
      expect(sid.message).toBe('no session "no-such-sid" in the session ledger');
      expectUsage(await runCli(['sessions', 'list', '--user', 'nobody', '--json'], { env }), 'ERR_USER_UNKNOWN');
      const missing = await runCli(['sessions', 'list', '--json'], { env });
      expect(missing.code).toBe(ExitCode.usage);
      expect(missing.json.error.message).toContain("required option '--user <sub>'");
    });

    it('after all of it, the state is exactly as it was', async () => {
      expect(await state()).toEqual(before);
    });
  });
}
