import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk } from '../helpers/cli.js';
import { expectFailure } from '../helpers/failure.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { legacyService, seedLedger, withState } from '../helpers/state.js';

/**
 * Every mistake an operator can make with `blacklist add|remove` is refused with exit 2, a stable
 * error code and a message naming the problem, and changes nothing: runs, audit trail, the
 * blacklist and the stored input sets are exactly as before.
 */
const secret = randomBytes(32).toString('hex');
const service = legacyService(secret, 'legacy', 20, { tokenFor: () => false });
const FPH = 'e3'.repeat(32);
const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-bad-findings-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

for (const c of backendCases('blacklist_bad', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'blacklist: bad input gets a clear error and changes nothing', () => {
    const env = c.env;
    let before: Awaited<ReturnType<typeof snapshot>>;

    /** What an operator can observe, plus the input sets no command lists. */
    async function snapshot() {
      const runs = await runOk(['runs', 'list', '--limit', '1000', '--json'], { env });
      const trail = await runOk(['audit', 'trail', '--json'], { env });
      const blacklist = await runOk(['blacklist', 'list', '--limit', '1000', '--json'], { env });
      const inputSets = await withState(env, async (b) => (await b.db.query<{ n: number }>('SELECT count(*)::int AS n FROM input_sets'))[0]!.n);
      return { runs: runs.json.runs, audit: trail.json, blacklist: blacklist.json, inputSets };
    }

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, service.sessions);
      await runOk(['blacklist', 'add', '--jti', 'listed-jti', '--user', 'user-3', '--yes', '--json'], { env });
      before = await snapshot();
      expect(before.blacklist.total).toBe(2);
      expect(before.inputSets).toBe(1);
    });

    it('a malformed findings file: every bad line is reported with its number, and a token is never repeated', async () => {
      const noClaims = jwt.sign({ sub: 'user-1' }, secret);
      const ndjson = file(
        'findings.ndjson',
        ['{"jti":"fine-1"}', '{"jti":', '', '{"fph":"ABC"}', '# a comment', '{"jti":"a","sid":"b"}', `{"token":"${noClaims}"}`, '{"sub":"user-1","exp":"soon"}', '{"jti":"fine-2"}'].join('\n'),
      );
      const res = await runCli(['blacklist', 'add', '--from-file', ndjson, '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_FINDINGS_INVALID');
      expect(err.message).toContain(`findings file ${ndjson} has 5 bad entries:`);
      for (const line of [2, 4, 6, 7, 8]) expect(err.message).toContain(`line ${line}: `);
      for (const line of [1, 3, 5, 9]) expect(err.message).not.toContain(`line ${line}: `);
      expect(err.message).toContain('line 4: device fingerprint "ABC" is not a lower-case hex SHA-256');
      expect(err.hint).toContain('nothing was changed');
      expect(res.stdout + res.stderr).not.toContain(noClaims.split('.')[1]);

      const array = file('findings.json', '[\n  {"jti": "fine"},\n  {"jti": ""},\n  {"session": "s", "reason": 42}\n]\n');
      const arr = expectFailure(await runCli(['blacklist', 'add', '--from-file', array, '--yes', '--json'], { env }), ExitCode.usage, 'ERR_FINDINGS_INVALID');
      expect(arr.message).toContain('line 3: element 2: jti must be a non-empty string');
      expect(arr.message).toContain('line 4: element 3: reason must be a string');
      expect(await snapshot()).toEqual(before);
    });

    it('a missing, an empty findings file', async () => {
      const missing = expectFailure(await runCli(['blacklist', 'add', '--from-file', path.join(dir, 'nope.ndjson'), '--yes', '--json'], { env }), ExitCode.usage, 'ERR_FINDINGS_INVALID');
      expect(missing.message).toBe(`cannot read findings file ${path.join(dir, 'nope.ndjson')}: no such file`);
      const empty = expectFailure(await runCli(['blacklist', 'add', '--from-file', file('empty.ndjson', '\n# nothing\n'), '--yes', '--json'], { env }), ExitCode.usage, 'ERR_FINDINGS_INVALID');
      expect(empty.message).toContain('has no entries');
      expect(await snapshot()).toEqual(before);
    });

    it('an unknown user is refused unless --allow-unknown; the known ones are not named', async () => {
      const res = await runCli(['blacklist', 'add', '--user', 'user-1', '--user', 'mallory', '--jti', 'x', '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_USER_UNKNOWN');
      expect(err.message).toBe('unknown user "mallory": no session in the ledger and no device');
      expect(err.hint).toContain('--allow-unknown');
      const fromFile = expectFailure(await runCli(['blacklist', 'add', '--from-file', file('users.ndjson', '{"sub":"ghost-1"}\n{"user":"ghost-2"}\n'), '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USER_UNKNOWN');
      expect(fromFile.message).toBe('unknown users "ghost-1", "ghost-2": no session in the ledger and no device');
      expect(await snapshot()).toEqual(before);
      const allowed = await runOk(['blacklist', 'add', '--user', 'mallory', '--allow-unknown', '--dry-run', '--json'], { env });
      expect(allowed.json.plan.steps[1]).toMatchObject({ id: 'users', runs: true, impact: { sessions: 0, users: 0 } });
    });

    it('a malformed device fingerprint, an empty value, a bad --ttl, no selector at all', async () => {
      const fph = expectFailure(await runCli(['blacklist', 'add', '--device', FPH.toUpperCase(), '--device', 'abc123', '--jti', '', '--yes', '--json'], { env }), ExitCode.usage, 'ERR_ENTRY_INVALID');
      expect(fph.message).toContain(`--device: device fingerprint "${FPH.toUpperCase()}" is not a lower-case hex SHA-256 (64 characters 0-9a-f)`);
      expect(fph.message).toContain('--device: device fingerprint "abc123"');
      expect(fph.message).toContain('--jti: jti must be a non-empty string');
      for (const [ttl, message] of [
        ['abc', '--ttl "abc" is not a duration'],
        ['0s', '--ttl "0s" is shorter than a second'],
        ['2y', '--ttl "2y" is not a duration'],
        ['9999d', '--ttl "9999d" is longer than 365d'],
      ] as const) {
        const err = expectFailure(await runCli(['blacklist', 'add', '--jti', 'x', '--ttl', ttl, '--yes', '--json'], { env }), ExitCode.usage, 'ERR_DURATION_INVALID');
        expect(err.message).toBe(message);
      }
      const none = expectFailure(await runCli(['blacklist', 'add', '--reason', 'why', '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
      expect(none.message).toBe('nothing selected: give --jti, --session, --user, --device or --from-file');
      expectFailure(await runCli(['blacklist', 'remove', '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
      expect(await snapshot()).toEqual(before);
    });

    it('removing what is not blacklisted names those values and lifts nothing, not even the listed ones', async () => {
      const res = await runCli(['blacklist', 'remove', '--jti', 'listed-jti', '--jti', 'never-listed', '--user', 'user-3', '--user', 'user-4', '--device', FPH, '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_NOT_BLACKLISTED');
      expect(err.message).toBe(`not blacklisted: device ${FPH}, jti never-listed, user user-4`);
      expect(err.hint).toContain('jwtir blacklist list');
      expect(await snapshot()).toEqual(before);
    });

    it('without --yes and without a terminal to ask on, nothing is stored or run', async () => {
      const err = expectFailure(await runCli(['blacklist', 'add', '--jti', 'unconfirmed', '--json'], { env }), ExitCode.usage, 'ERR_CONFIRMATION_REQUIRED');
      expect(err.hint).toContain('--yes');
      expect(await snapshot()).toEqual(before);
    });
  });
}
