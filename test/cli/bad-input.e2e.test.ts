import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk } from '../helpers/cli.js';
import { expectFailure } from '../helpers/failure.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { legacyService, seedLedger, withGuard } from '../helpers/state.js';

/**
 * "Bad input gets a clear error and changes nothing": every mistake an operator can make at the
 * command line ends with a documented exit code, a stable error code in the --json output, a
 * message and a next step on stderr, and the state exactly as it was (keys, runs, audit trail).
 */
const secret = randomBytes(32).toString('hex');
const service = legacyService(secret, 'legacy', 200, { privilegedEvery: 50 });

/** What an operator can observe of the state; equal snapshots mean nothing changed. */
async function snapshot(env: Record<string, string>) {
  const calls = [['keys', 'list', '--json'], ['runs', 'list', '--limit', '1000', '--json'], ['audit', 'trail', '--json']];
  // The embedded database is opened by one process at a time; Postgres takes the three at once.
  const [keys, runs, trail] = env.JWTIR_STATE_DIR
    ? [await runOk(calls[0]!, { env }), await runOk(calls[1]!, { env }), await runOk(calls[2]!, { env })]
    : await Promise.all(calls.map((args) => runOk(args, { env })));
  return { keys: keys!.json.keys, runs: runs!.json.runs, audit: trail!.json };
}

for (const c of backendCases('bad_input', ['embedded', 'postgres+redis'])) {
  describeBackend(c, 'bad input gets a clear error and changes nothing', () => {
    const env = c.env;
    let before: Awaited<ReturnType<typeof snapshot>>;

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, service.sessions);
      before = await snapshot(env);
      expect(before.keys.map((k: { kid: string; state: string }) => `${k.kid}:${k.state}`)).toEqual(['legacy:active']);
      expect(before.runs).toHaveLength(1);
      expect(before.audit).toMatchObject({ intact: true });
      expect(before.audit.rows).toBeGreaterThan(0);
    });

    describe('refused with nothing changed', () => {
      it('an unknown kid names the kids that do exist', async () => {
        const show = expectFailure(await runCli(['keys', 'show', 'nope', '--json'], { env }), ExitCode.usage, 'ERR_KID_UNKNOWN');
        expect(show.message).toContain('"nope"');
        expect(show.hint).toContain('legacy');
        const rotate = expectFailure(await runCli(['rotate', '--staged', '--from', 'nope', '--yes', '--json'], { env }), ExitCode.usage, 'ERR_KID_UNKNOWN');
        expect(rotate.hint).toContain('known kids: legacy');
        expect(await snapshot(env)).toEqual(before);
      });

      it('malformed durations, a missing --staged or --yes and an unwritable --out are refused before anything runs', async () => {
        // As a shell passes it unquoted: "minutes" is a stray argument.
        const split = await runCli(['rotate', '--staged', '--grace', '10', 'minutes', '--json'], { env });
        expect(split.code).toBe(ExitCode.usage);
        expect(split.json.error).toMatchObject({ code: 'ERR_USAGE', exitCode: ExitCode.usage });
        expect(split.stderr).toMatch(/too many arguments for 'rotate'[^]*--help/);
        // Quoted: one value that is not a duration.
        const quoted = expectFailure(await runCli(['rotate', '--staged', '--grace', '10 minutes', '--json'], { env }), ExitCode.usage, 'ERR_DURATION_INVALID');
        expect(quoted.message).toBe('--grace "10 minutes" is not a duration');
        expect(quoted.hint).toMatch(/30s, 15m, 24h/);
        const negative = expectFailure(await runCli(['rotate', '--staged', '--grace', '-5m', '--json'], { env }), ExitCode.usage, 'ERR_DURATION_INVALID');
        expect(negative.message).toContain('--grace "-5m"');
        const wait = expectFailure(await runCli(['rotate', '--staged', '--grace', '1m', '--publish-wait', 'abc', '--json'], { env }), ExitCode.usage, 'ERR_DURATION_INVALID');
        expect(wait.message).toContain('--publish-wait "abc"');

        const unstaged = expectFailure(await runCli(['rotate', '--grace', '1m', '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
        expect(unstaged.message).toContain('pass --staged');
        expect(unstaged.hint).toContain('log out every user');

        // runCli runs with CI=true and a pipe for stdin: there is no terminal to ask on.
        const unconfirmed = expectFailure(await runCli(['rotate', '--staged', '--grace', '1m', '--json'], { env }), ExitCode.usage, 'ERR_CONFIRMATION_REQUIRED');
        expect(unconfirmed.hint).toContain('--yes');

        const publish = expectFailure(await runCli(['keys', 'publish', '--out', '/proc/nonexistent-dir/jwks.json', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
        expect(publish.message).toContain('/proc/nonexistent-dir');
        expect(publish.hint).toContain('directory');
        expect(existsSync('/proc/nonexistent-dir')).toBe(false);
        expect(await snapshot(env)).toEqual(before);
      });

      it('a runbook with several mistakes reports all of them at once and runs nothing', async () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-broken-runbook-'));
        writeFileSync(
          path.join(dir, 'rotate.yaml'),
          [
            'name: rotate',
            'summary: A broken rotation.',
            'lock: keys',
            'params:',
            '  alg: { type: enum, values: [HS256], description: algorithm }',
            'steps:',
            '  - id: generate',
            '    action: key.generate',
            '    summary: Generate a key, with no way back.',
            '    with: { alg: "${{ params.algorithm }}" }',
            '  - id: generate',
            '    action: key.teleport',
            '    summary: Not an action.',
            '    undo: { none: nothing to undo }',
            '',
          ].join('\n'),
        );
        const res = await runCli(['rotate', '--staged', '--grace', '1m', '--publish-wait', '0s', '--yes', '--json'], { env: { ...env, JWTIR_RUNBOOK_DIR: dir } });
        const err = expectFailure(res, ExitCode.usage, 'ERR_RUNBOOK_INVALID');
        expect(err.message).toContain(path.join(dir, 'rotate.yaml'));
        expect(err.message).toContain('has 4 problem(s)');
        expect(err.message).toContain('unknown action "key.teleport"');
        expect(err.message).toContain('step id "generate" is used twice');
        expect(err.message).toContain('${{ params.algorithm }} names no declared parameter');
        expect(err.message).toContain('action key.generate changes state, so the step must declare an undo');
        expect(err.hint).toContain('nothing was run');
        expect(await snapshot(env)).toEqual(before);
      });

      it('passwords and secrets are never echoed: an unreachable database (exit 4), a password in argv, a weak or misplaced secret', async () => {
        const url = 'postgres://app:s3cretpw@127.0.0.1:1/x';
        for (const debug of [undefined, '1']) {
          const res = await runCli(['keys', 'list', '--json'], { env: { ...env, DATABASE_URL: url, JWTIR_DEBUG: debug } });
          const err = expectFailure(res, ExitCode.unavailable, 'ERR_BACKEND_UNAVAILABLE');
          expect(err.message).toContain('postgres://app:***@127.0.0.1:1/x');
          expect(err.hint).toContain('DATABASE_URL');
          expect(res.stdout + res.stderr).not.toContain('s3cretpw');
          expect(res.stderr).toContain('***');
          if (debug) expect(res.stderr).toMatch(/\n\s+at /); // the stack trace is shown, masked as well
        }
        const argv = await runCli(['keys', 'list', '--database-url', 'postgres://app:s3cretpw@127.0.0.1:5432/test', '--json'], { env });
        const err = expectFailure(argv, ExitCode.usage, 'ERR_USAGE');
        expect(err.message).toContain('--database-url contains a password');
        expect(err.hint).toContain('DATABASE_URL');
        expect(argv.stdout + argv.stderr).not.toContain('s3cretpw');

        const weakRes = await runCli(['keys', 'import', '--kid', 'weakling', '--alg', 'HS256', '--secret-env', 'W', '--json'], { env: { ...env, W: 'Wk7qZp2x9v' } });
        const weak = expectFailure(weakRes, ExitCode.refused, 'ERR_SECRET_WEAK');
        expect(weak.message).toContain('10 bytes');
        expect(weak.hint).toContain('--allow-weak');
        expect(weakRes.stdout + weakRes.stderr).not.toContain('Wk7qZp2x9v');

        const none = expectFailure(await runCli(['keys', 'import', '--kid', 'x', '--alg', 'HS256', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
        expect(none.message).toContain('--secret-env');
        expect(none.message).toContain('--secret-stdin');
        expect(none.hint).toContain('never accepted as arguments');

        const unset = expectFailure(await runCli(['keys', 'import', '--kid', 'x', '--alg', 'HS256', '--secret-env', 'UNSET_VAR', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
        expect(unset.message).toContain('UNSET_VAR');

        // A secret typed as an argument is a usage error, and the value is not repeated back.
        const inArgv = await runCli(['keys', 'import', '--kid', 'x', '--alg', 'HS256', 'argv-secret-0123456789abcdef0123456789', '--json'], { env });
        expect(inArgv.code).toBe(ExitCode.usage);
        expect(inArgv.json.error.code).toBe('ERR_USAGE');
        expect(inArgv.stdout + inArgv.stderr).not.toContain('argv-secret');
        expect(await snapshot(env)).toEqual(before);
      });

      it('a wrong, an invalid or a missing KEK is refused before any run, key or audit row exists', async () => {
        const otherKek = randomBytes(32).toString('base64');
        const rotate = ['rotate', '--staged', '--grace', '1m', '--publish-wait', '0s', '--yes', '--json'];
        const wrong = expectFailure(await runCli(rotate, { env: { ...env, JWTIR_KEK: otherKek } }), ExitCode.refused, 'ERR_KEK_MISMATCH');
        expect(wrong.message).toContain('is not the one this state was set up with');
        expect(wrong.hint).toContain('use the original KEK');

        const invalid = expectFailure(await runCli(rotate, { env: { ...env, JWTIR_KEK: 'notbase64' } }), ExitCode.refused, 'ERR_KEK_MISSING');
        expect(invalid.message).toContain('JWTIR_KEK is not base64 of exactly 32 bytes');
        expect(invalid.hint).toContain('openssl rand -base64 32');

        // No JWTIR_KEK and no key file (this state was set up with JWTIR_KEK, so none was ever written).
        const missing = await runCli(['keys', 'import', '--kid', 'other', '--alg', 'HS256', '--secret-env', 'S', '--json'], {
          env: { ...env, JWTIR_KEK: undefined, S: randomBytes(32).toString('hex') },
        });
        const err = expectFailure(missing, ExitCode.refused, 'ERR_KEK_MISSING');
        expect(err.hint).toContain('JWTIR_KEK');
        expect(await snapshot(env)).toEqual(before);
      });
    });

    describe('the accepted ways still work', () => {
      it('--allow-weak imports a weak secret and records that in the audit trail, never the secret itself', async () => {
        const weakSecret = 'Wk7qZp2x9v';
        const res = await runOk(['keys', 'import', '--kid', 'weakling', '--alg', 'HS256', '--secret-env', 'W', '--allow-weak', '--json'], { env: { ...env, W: weakSecret } });
        expect(res.json.status).toBe('done');
        expect(res.stderr).toContain('weak 10-byte secret');
        const shown = await runOk(['runs', 'show', String(res.json.runId), '--json'], { env });
        const audit = shown.json.audit as Array<{ action: string; phase: string; params: Record<string, unknown> }>;
        const intent = audit.find((a) => a.action === 'key.import' && a.phase === 'intent');
        expect(intent?.params).toMatchObject({ kid: 'weakling', weak: true, sealedSecret: '[redacted]' });
        const start = audit.find((a) => a.action === 'run.start');
        expect(start?.params).toMatchObject({ params: { weak: true, sealedSecret: '[redacted]' } });
        // Not even the sealed form leaves the state: run parameters and step inputs are shown redacted too.
        expect(shown.json.run.params.sealedSecret).toBe('[redacted]');
        expect(shown.stdout).not.toMatch(/"v1\.[A-Za-z0-9_-]+\./);
        const everything = [res.stdout, res.stderr, shown.stdout, shown.stderr, JSON.stringify(audit)].join('\n');
        for (const form of [weakSecret, Buffer.from(weakSecret).toString('base64'), Buffer.from(weakSecret).toString('hex')]) {
          expect(everything).not.toContain(form);
        }
      });

      it('--secret-stdin reads the piped secret exactly (the trailing newline of echo is not part of it)', async () => {
        const piped = randomBytes(32).toString('base64url');
        const res = await runOk(['keys', 'import', '--kid', 'piped', '--alg', 'HS256', '--secret-stdin', '--no-kidless', '--json'], { env, input: piped + '\n' });
        expect(res.json.steps[0].outputs).toEqual({ kid: 'piped', state: 'staged' });
        expect(res.stdout + res.stderr).not.toContain(piped);
        // The stored key verifies tokens signed with exactly the piped bytes, and only those.
        const good = jwt.sign({ sub: 'user-7' }, piped, { algorithm: 'HS256', keyid: 'piped', expiresIn: 600 });
        const withNewline = jwt.sign({ sub: 'user-7' }, piped + '\n', { algorithm: 'HS256', keyid: 'piped', expiresIn: 600 });
        await withGuard(env, async (guard) => {
          expect(guard.verify(good)).toMatchObject({ decision: 'allow', kid: 'piped' });
          expect(guard.verify(withNewline)).toMatchObject({ decision: 'deny', reasons: ['bad_signature'] });
        });
      });

      it('keys publish --out writes the JWKS atomically: valid JSON, public keys only, no temporary file left', async () => {
        const generated = await runOk(['keys', 'generate', '--alg', 'ES256', '--publish', '--yes', '--json'], { env });
        const kid = generated.json.steps[0].outputs.kid as string;
        const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-jwks-'));
        const out = path.join(dir, 'jwks.json');
        writeFileSync(out, '{"keys":[{"kid":"stale"}]}\n');
        const res = await runOk(['keys', 'publish', '--out', out, '--json'], { env });
        expect(res.json.status).toBe('done');
        const jwks = JSON.parse(readFileSync(out, 'utf8'));
        expect(Array.isArray(jwks.keys)).toBe(true);
        // HS256 secrets are never published; the ES256 key is, without its private part.
        expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([kid]);
        expect(jwks.keys[0]).toMatchObject({ kid, kty: 'EC', crv: 'P-256' });
        expect(jwks.keys[0].d).toBeUndefined();
        expect(readdirSync(dir)).toEqual(['jwks.json']);
      });
    });
  });
}
