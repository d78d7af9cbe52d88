import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import type { Guard } from '../../src/guard/index.js';
import { ROOT, runCli, runOk } from '../helpers/cli.js';
import { expectFailure } from '../helpers/failure.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor } from '../helpers/state.js';

/**
 * Handing the new key to the service's own issuer (issue 5): `jwtir keys export` writes what an
 * issuer reads, and `rotate --export-to --activate-cmd` switches a real issuer process (it signs
 * with jsonwebtoken and is restarted by the command), then waits until a guard has seen a token
 * signed with the new key before it goes on.
 */
const secret = randomBytes(32).toString('hex');
const ISSUER = path.join(ROOT, 'test/fixtures/issuer.mjs');
const mode = (file: string) => statSync(file).mode & 0o777;
const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string; alg: string };

for (const c of backendCases('handoff', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'handing the signing key to the service issuer', () => {
    const env = c.env;
    const work = mkdtempSync(path.join(os.tmpdir(), 'jwtir-handoff-'));
    const keysDir = path.join(work, 'keys');

    beforeAll(async () => {
      await runOk(['init'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...env, S: secret } });
    });

    it('keys export writes what an issuer reads: 0600 files in a 0700 directory, current pointing at the active key', async () => {
      const res = await runOk(['keys', 'export', '--kid', 'legacy', '--to', keysDir, '--yes', '--json'], { env });
      expect(res.json.steps[0].outputs).toMatchObject({ kid: 'legacy', current: 'legacy', files: ['alg', 'jwks.json', 'kid', 'secret'] });
      expect(readlinkSync(path.join(keysDir, 'current'))).toBe('legacy');
      expect(readFileSync(path.join(keysDir, 'current', 'secret'), 'utf8')).toBe(secret);
      expect(readFileSync(path.join(keysDir, 'current', 'kid'), 'utf8')).toBe('legacy\n');
      expect(mode(keysDir)).toBe(0o700);
      for (const f of ['kid', 'alg', 'secret', 'jwks.json']) expect(mode(path.join(keysDir, 'legacy', f))).toBe(0o600);
      // No temporary file or directory is left beside them.
      expect(readdirSync(keysDir).sort()).toEqual(['current', 'legacy']);
      // The audit trail records the export, never the material.
      const shown = await runOk(['runs', 'show', String(res.json.runId), '--json'], { env });
      expect(JSON.stringify(shown.json)).not.toContain(secret);
    });

    it('an asymmetric key is exported as PKCS#8 PEM and a private JWK; a staged key does not become current; rollback removes it', async () => {
      const gen = await runOk(['keys', 'generate', '--alg', 'ES256', '--publish', '--yes', '--json'], { env });
      const kid = gen.json.steps[0].outputs.kid as string;
      const res = await runOk(['keys', 'export', '--kid', kid, '--to', keysDir, '--yes', '--json'], { env });
      expect(res.stderr).toContain('is staged, not the signing key');
      expect(readlinkSync(path.join(keysDir, 'current'))).toBe('legacy');
      const pem = readFileSync(path.join(keysDir, kid, 'private.pem'), 'utf8');
      expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      const jwk = JSON.parse(readFileSync(path.join(keysDir, kid, 'private.jwk.json'), 'utf8'));
      expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', kid, alg: 'ES256', use: 'sig' });
      expect(typeof jwk.d).toBe('string');
      const jwks = JSON.parse(readFileSync(path.join(keysDir, kid, 'jwks.json'), 'utf8'));
      expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(kid);
      expect(JSON.stringify(jwks)).not.toContain(jwk.d);
      await runOk(['runs', 'rollback', String(res.json.runId), '--yes'], { env });
      expect(existsSync(path.join(keysDir, kid))).toBe(false);
      expect(readlinkSync(path.join(keysDir, 'current'))).toBe('legacy');
    });

    it('refuses an export directory it cannot write, or one others can write, an unknown kid, and changes nothing', async () => {
      const runs = (await runOk(['runs', 'list', '--json'], { env })).json.runs.length;
      const file = path.join(work, 'a-file');
      writeFileSync(file, 'x');
      const notDir = expectFailure(await runCli(['keys', 'export', '--kid', 'legacy', '--to', path.join(file, 'keys'), '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
      expect(notDir.message).toContain('is not a directory');
      const unwritable = expectFailure(await runCli(['keys', 'export', '--kid', 'legacy', '--to', '/proc/jwtir-keys', '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
      expect(unwritable.message).toContain('cannot write to /proc');
      const shared = path.join(work, 'shared');
      mkdirSync(shared);
      chmodSync(shared, 0o777);
      const open = expectFailure(await runCli(['keys', 'export', '--kid', 'legacy', '--to', shared, '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
      expect(open.message).toContain('can be written by other users');
      expectFailure(await runCli(['keys', 'export', '--kid', 'nope', '--to', path.join(work, 'k2'), '--yes', '--json'], { env }), ExitCode.usage, 'ERR_KID_UNKNOWN');
      const badRotate = expectFailure(await runCli(['rotate', '--staged', '--grace', '1h', '--export-to', path.join(file, 'x'), '--yes', '--json'], { env }), ExitCode.usage, 'ERR_USAGE');
      expect(badRotate.message).toContain('is not a directory');
      expect(existsSync(path.join(work, 'k2'))).toBe(false);
      expect((await runOk(['runs', 'list', '--json'], { env })).json.runs.length).toBe(runs);
    });

    if (c.name === 'postgres+redis') {
      let issuer: { state: string } | undefined;
      let guard: Guard;
      let traffic: NodeJS.Timeout | undefined;
      const children: ChildProcess[] = [];
      const issuerPort = () => Number(readFileSync(path.join(issuer!.state, 'port'), 'utf8'));
      const fetchToken = async () => {
        const res = await fetch(`http://127.0.0.1:${issuerPort()}/token?sub=user-1`);
        return (await res.json()) as { token: string; kid: string };
      };

      /** The service as it runs today: its issuer signs with the key the export directory holds (legacy). */
      async function startService() {
        const state = mkdtempSync(path.join(os.tmpdir(), 'jwtir-issuer-'));
        const child = spawn(process.execPath, [ISSUER, keysDir, state], { stdio: 'ignore', detached: true });
        children.push(child);
        issuer = { state };
        for (let i = 0; i < 100 && !existsSync(path.join(state, 'port')); i++) await new Promise((r) => setTimeout(r, 50));
        guard = await guardFor(env, { flushIntervalMs: 200 });
        // Its users keep making requests: every token it hands out is checked by a guard.
        traffic = setInterval(() => {
          fetchToken().then((t) => guard.authorize(t.token), () => undefined);
        }, 100);
      }

      afterAll(async () => {
        clearInterval(traffic);
        await guard?.close();
        for (const pidFile of [issuer && path.join(issuer.state, 'pid')]) {
          try {
            process.kill(Number(readFileSync(pidFile!, 'utf8')), 'SIGTERM');
          } catch {
            /* already gone */
          }
        }
        for (const child of children) child.kill('SIGTERM');
      });

      it('rotate --export-to --activate-cmd restarts the issuer on the new key and waits until a guard sees it', async () => {
        await startService();
        const before = await fetchToken();
        expect(headerOf(before.token)).toMatchObject({ kid: 'legacy', alg: 'HS256' });
        expect(guard.authorize(before.token).decision).toBe('allow');
        const restart = `kill $(cat ${issuer!.state}/pid); nohup ${process.execPath} ${ISSUER} ${keysDir} ${issuer!.state} > ${issuer!.state}/log 2>&1 < /dev/null &`;
        const res = await runOk(
          ['rotate', '--staged', '--from', 'legacy', '--alg', 'ES256', '--grace', '1h', '--publish-wait', '1s', '--export-to', keysDir, '--activate-cmd', restart, '--activate-timeout', '60s', '--yes', '--json'],
          { env },
        );
        expect(res.json.status).toBe('done');
        const newKid = res.json.steps.find((s: { step: string }) => s.step === 'generate').outputs.kid;
        const handOff = res.json.steps.find((s: { step: string }) => s.step === 'hand-off');
        expect(handOff.state).toBe('done');
        expect(handOff.outputs).toMatchObject({ kid: newKid, previous: 'legacy' });
        const awaited = res.json.steps.find((s: { step: string }) => s.step === 'await-new-key');
        expect(awaited.outputs.evidence).toBeGreaterThan(0);
        // The later steps ran only after the evidence: the privileged sessions ended after the hand-off finished.
        const steps = res.json.steps.map((s: { step: string; state: string }) => `${s.step}:${s.state}`);
        expect(steps).toEqual(['generate:done', 'publish:done', 'export:done', 'publication-gate:done', 'activate:done', 'hand-off:done', 'await-new-key:done', 'end-privileged-sessions:done', 'flag-compromised:skipped']);
        expect(readlinkSync(path.join(keysDir, 'current'))).toBe(newKid);
        const after = await fetchToken();
        expect(headerOf(after.token)).toMatchObject({ kid: newKid, alg: 'ES256' });
        expect(guard.authorize(after.token)).toMatchObject({ decision: 'allow', kid: newKid });
        expect(lstatSync(path.join(keysDir, 'current')).isSymbolicLink()).toBe(true);
      });

      it('without evidence in time the run stops with a clear message, and rollback switches the issuer back', async () => {
        const signing = (await runOk(['keys', 'list', '--json'], { env })).json.keys.find((k: { state: string }) => k.state === 'active').kid;
        // A command that "restarts" nothing: the issuer keeps signing with the current key.
        const res = await runCli(['rotate', '--staged', '--grace', '1h', '--publish-wait', '0s', '--export-to', keysDir, '--activate-cmd', 'true', '--activate-timeout', '3s', '--yes', '--json'], { env });
        const err = expectFailure(res, ExitCode.runFailed, 'ERR_ISSUER_HANDOFF');
        expect(err.message).toMatch(/no guard has allowed a token signed by \S+ within 3s/);
        expect(err.hint).toContain('jwtir runs rollback');
        const runId = Number(/run (\d+)/.exec(err.message)![1]);
        await runOk(['runs', 'rollback', String(runId), '--yes'], { env });
        const keys = (await runOk(['keys', 'list', '--json'], { env })).json.keys;
        expect(keys.find((k: { state: string }) => k.state === 'active').kid).toBe(signing);
        expect(readlinkSync(path.join(keysDir, 'current'))).toBe(signing);
        expect(headerOf((await fetchToken()).token).kid).toBe(signing);
      });
    }
  });
}
