import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk, type CliResult } from '../helpers/cli.js';
import { expectFailure } from '../helpers/failure.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { legacyService, seedLedger, withState } from '../helpers/state.js';

/**
 * Input that is hostile or pasted into the wrong place: terminal escapes, a token where an id
 * belongs, a member given twice, an endless file, a limit of 0. Each is refused with exit 2,
 * nothing is echoed that a terminal would act on or that is a credential, and nothing changes.
 */
const secret = randomBytes(32).toString('hex');
const service = legacyService(secret, 'legacy', 5, { tokenFor: () => false });
const token = jwt.sign({ sub: 'user-1', jti: 'pasted' }, secret);
const payload = token.split('.')[1]!;
const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-hostile-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
/** ESC, BEL and the C1 CSI: what a terminal would act on. */
const CONTROL = /[\u0007\u001b\u009b]/;

for (const c of backendCases('blacklist_hostile', ['postgres+redis'])) {
  describeBackend(c, 'blacklist and logout refuse hostile or misplaced input', () => {
    const env = c.env;
    let before: unknown;
    const state = () =>
      withState(env, async (b) =>
        (await b.db.query(
          `SELECT (SELECT count(*) FROM runs)::int AS runs, (SELECT count(*) FROM audit)::int AS audit, (SELECT count(*) FROM input_sets)::int AS sets,
                  (SELECT count(*) FROM revocations)::int AS revocations, (SELECT count(*) FROM watermarks)::int AS watermarks`,
        ))[0],
      );
    const refused = async (args: string[], code: string): Promise<{ res: CliResult; message: string }> => {
      const res = await runCli([...args, '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, code);
      expect(res.stdout + res.stderr).not.toMatch(CONTROL);
      expect(res.stdout + res.stderr).not.toContain(payload);
      return { res, message: err.message };
    };

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, service.sessions);
      before = await state();
    });

    it('terminal escapes: a findings line is shown escaped; a reason with ESC or BEL is refused, from the file and from --reason', async () => {
      const escapes = file('escapes.ndjson', '\u001b[2J\u001b]0;owned\u0007\n{"jti":"a","reason":"see \\u001b[31mred"}\n');
      const { message } = await refused(['blacklist', 'add', '--yes', '--from-file', escapes], 'ERR_FINDINGS_INVALID');
      expect(message).toContain("line 1: not valid JSON (Unexpected token '\\u001b')");
      expect(message).toContain('line 2: reason contains control characters');
      const flag = await refused(['blacklist', 'add', '--yes', '--jti', 'a', '--reason', 'ring\u0007'], 'ERR_USAGE');
      expect(flag.message).toBe('--reason contains a control character (\\u0007 at character 5); write it without');
      expect((await refused(['logout', '--yes', '--user', 'user-1', '--notify', '--reason', '\u009b2J'], 'ERR_USAGE')).message).toContain('--reason contains a control character');
      expect(await state()).toEqual(before);
    });

    it('blacklist list shows an entry stored with control characters (by an older version) escaped', async () => {
      await withState(env, (b) => b.db.query(`INSERT INTO revocations (kind, value, expires_at, run_id, step, reason) VALUES ('jti', 'old\u001b[8m', now() + interval '1 hour', 0, '', 'x\u001b]0;t\u0007')`));
      const listed = await runOk(['blacklist', 'list'], { env });
      expect(listed.stderr).not.toMatch(CONTROL);
      expect(listed.stderr).toMatch(/old\\u001b\[8m\s+\S+\s+\S+\s+x\\u001b\]0;t\\u0007/);
      await withState(env, (b) => b.db.query(`DELETE FROM revocations WHERE run_id = 0`));
    });

    it('a token in the wrong field of a findings file or in a flag is refused without being repeated; a member given twice is refused', async () => {
      const misplaced = file('misplaced.ndjson', `{"jti":"${token}"}\n{"sub":"${token}"}\n{"jti":"a","jti":"b"}\n`);
      const { message } = await refused(['blacklist', 'add', '--yes', '--from-file', misplaced], 'ERR_FINDINGS_INVALID');
      expect(message).toContain('line 1: this looks like a token; put it in "token"');
      expect(message).toContain('line 2: this looks like a token; put it in "token"');
      expect(message).toContain('line 3: the member "jti" is given twice');
      for (const flag of ['--jti', '--session', '--user', '--device']) {
        expect((await refused(['blacklist', 'add', '--yes', flag, token], 'ERR_ENTRY_INVALID')).message).toContain('this looks like a token');
      }
      expect((await refused(['logout', '--yes', '--user', token], 'ERR_SELECTOR_INVALID')).message).toContain('this looks like a token, not a subject');
      expect(await state()).toEqual(before);
    });

    it('a findings file that never ends (/dev/zero) is refused at the cap, not read until memory runs out', async () => {
      const { message } = await refused(['blacklist', 'add', '--yes', '--from-file', '/dev/zero'], 'ERR_FINDINGS_INVALID');
      expect(message).toBe('findings file /dev/zero holds more than the 256 MiB accepted');
      expect(await state()).toEqual(before);
    });

    it('blacklist list --limit must be a whole number of at least 1', async () => {
      await runOk(['blacklist', 'add', '--jti', 'live-one', '--yes', '--json'], { env });
      expect((await refused(['blacklist', 'list', '--limit', '0'], 'ERR_USAGE')).message).toBe('--limit must be at least 1, got 0');
      expect((await refused(['blacklist', 'list', '--limit', 'ten'], 'ERR_USAGE')).message).toBe('--limit must be a whole number, got "ten"');
      expect((await runOk(['blacklist', 'list', '--limit', '1', '--json'], { env })).json).toMatchObject({ total: 1, entries: [{ value: 'live-one' }] });
    });
  });
}
