import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk } from '../helpers/cli.js';
import { expectFailure, notifySnapshot, notifyState } from '../helpers/notify.js';
import { Receiver, type Received } from '../helpers/receiver.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { withState } from '../helpers/state.js';

/**
 * `jwtir notify set`: Security Event Tokens pushed (RFC 8935) to real receivers on 127.0.0.1.
 * Receiver A verifies every SET with jose against the JWKS `jwtir keys publish --out` wrote, as a
 * relying party would, and answers 202; receiver B refuses with an RFC 8935 error.
 */
const ISSUER = 'https://auth.example.com/';
const AUD_A = 'https://rp-a.example/';
const AUD_B = 'https://rp-b.example/';
const SESSION_REVOKED = 'https://schemas.openid.net/secevent/caep/event-type/session-revoked';
const CREDENTIAL_COMPROMISE = 'https://schemas.openid.net/secevent/risc/event-type/credential-compromise';

type Verified = { payload: JWTPayload & Record<string, any>; header: Record<string, unknown>; received: Received };

for (const c of backendCases('notify_set', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir notify set: Shared Signals to receivers', () => {
    let a: Receiver;
    let b: Receiver;
    let env: Record<string, string>;
    let state: Awaited<ReturnType<typeof notifyState>>;
    let jwksFile: string;
    const verified: Verified[] = [];
    const rejected: string[] = [];

    beforeAll(async () => {
      a = await Receiver.start(async (received) => {
        try {
          const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksFile, 'utf8')));
          const { payload } = await jwtVerify(received.body, jwks, { typ: 'secevent+jwt', issuer: ISSUER, audience: AUD_A });
          verified.push({ payload, header: decodeProtectedHeader(received.body) as Record<string, unknown>, received });
          return { status: 202 };
        } catch (error) {
          rejected.push((error as Error).message);
          return { status: 400, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ err: 'invalid_request', description: (error as Error).message }) };
        }
      });
      b = await Receiver.start(() => ({ status: 400, headers: { 'content-type': 'application/json' }, body: '{"err":"invalid_key","description":"no key with that kid in our copy of your JWKS"}' }));
      jwksFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-set-')), 'jwks.json');
      env = { ...c.env, JWTIR_SET_ISSUER: ISSUER, JWTIR_SET_RECEIVERS: JSON.stringify([{ url: a.url('/ssf/push'), audience: AUD_A }]) };
      // 100 users, 10 of them admins or staff.
      state = await notifyState(env, { count: 100, privilegedEvery: 20 });
    });
    afterAll(async () => {
      await a.close();
      await b.close();
    });

    it('refuses while the only signing key is HS256: a SET signed with a shared secret proves nothing (exit 5)', async () => {
      const before = await notifySnapshot(env);
      const res = await runCli(['notify', 'set', '--event', 'session-revoked', '--user', 'user-3', '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.refused, 'ERR_SET_KEY_SYMMETRIC');
      expect(err.message).toBe('the active key legacy is HS256: a SET signed with a shared secret proves nothing to a receiver (anyone holding the secret, an attacker included, could forge one)');
      expect(err.hint).toContain('jwtir rotate --staged --alg ES256');
      expect(a.requests).toHaveLength(0);
      expect(await notifySnapshot(env)).toEqual(before);
    });

    it('after a rotation to ES256: one SET per logged-out user, each verifying against the published JWKS with the right claims', async () => {
      const rotate = await runOk(['rotate', '--staged', '--alg', 'ES256', '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'], { env });
      const kid = rotate.json.steps[0].outputs.kid as string;
      await runOk(['keys', 'publish', '--out', jwksFile, '--json'], { env });

      const dry = await runOk(['notify', 'set', '--event', 'session-revoked', '--from-run', String(rotate.json.runId), '--dry-run', '--json'], { env });
      expect(dry.json.plan.steps[0].impact).toMatchObject({ users: state.privilegedSubs.length, note: '10 SET(s): one per user and receiver' });
      expect(a.requests).toHaveLength(0);

      const res = await runOk(['notify', 'set', '--event', 'session-revoked', '--from-run', String(rotate.json.runId), '--reason', 'signing key leaked', '--yes', '--json'], { env });
      expect(res.json).toMatchObject({ status: 'done', steps: [{ step: 'push', state: 'done', outputs: { sent: 10, subjects: 10 } }] });
      expect(rejected).toEqual([]);
      expect(verified).toHaveLength(10);
      expect(verified.map((v) => v.payload.sub_id.sub).sort()).toEqual(state.privilegedSubs);
      const rows = await withState(env, (s) => s.db.query<{ jti: string; status: string; last_status: number; subject: string }>('SELECT jti, status, last_status, subject FROM notify_sends WHERE run_id = $1', [res.json.runId]));
      for (const v of verified) {
        expect(v.header).toEqual({ alg: 'ES256', kid, typ: 'secevent+jwt' });
        expect(v.received.headers).toMatchObject({ 'content-type': 'application/secevent+jwt', accept: 'application/json' });
        expect(v.payload).toEqual({
          iss: ISSUER,
          aud: AUD_A,
          iat: expect.any(Number),
          jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
          txn: `jwtir-run-${res.json.runId}`,
          sub_id: { format: 'iss_sub', iss: ISSUER, sub: v.payload.sub_id.sub },
          events: { [SESSION_REVOKED]: { initiating_entity: 'admin', event_timestamp: v.payload.iat, reason_admin: { en: 'signing key leaked' } } },
        });
        expect(rows).toContainEqual({ jti: v.payload.jti, status: 'sent', last_status: 202, subject: v.payload.sub_id.sub });
      }
      expect(new Set(verified.map((v) => v.payload.jti)).size).toBe(10);
    });

    it('RISC credential-compromise carries its credential_type; --kid signs with the key named', async () => {
      const kid = (await runOk(['keys', 'generate', '--alg', 'EdDSA', '--publish', '--yes', '--json'], { env })).json.steps[0].outputs.kid as string;
      await runOk(['keys', 'publish', '--out', jwksFile, '--json'], { env });
      const n = verified.length;
      await runOk(['notify', 'set', '--event', 'credential-compromise', '--credential-type', 'password', '--user', 'user-7', '--kid', kid, '--yes', '--json'], { env });
      expect(rejected).toEqual([]);
      const [v] = verified.slice(n);
      expect(v!.header).toEqual({ alg: 'EdDSA', kid, typ: 'secevent+jwt' });
      expect(v!.payload.sub_id).toEqual({ format: 'iss_sub', iss: ISSUER, sub: 'user-7' });
      expect(v!.payload.events).toEqual({ [CREDENTIAL_COMPROMISE]: { credential_type: 'password', event_timestamp: v!.payload.iat } });
    });

    it('a receiver that answers 400 {"err":"invalid_key"} is recorded failed with its reason, not retried, and the step fails (exit 7)', async () => {
      const both = JSON.stringify([
        { url: a.url('/ssf/push'), audience: AUD_A },
        { url: b.url('/events'), audience: AUD_B },
      ]);
      const n = a.requests.length;
      const res = await runCli(['notify', 'set', '--event', 'session-revoked', '--user', 'user-3', '--user', 'user-4', '--yes', '--json'], { env: { ...env, JWTIR_SET_RECEIVERS: both } });
      const err = expectFailure(res, ExitCode.runFailed, 'ERR_NOTIFY_SEND_FAILED');
      expect(err.message).toContain(`2 of 4 SET(s) not delivered: ${b.url('/events')}: the receiver rejected the SET: invalid_key (no key with that kid in our copy of your JWKS)`);
      expect(a.requests.length - n).toBe(2);
      expect(b.requests).toHaveLength(2);
      const listed = await runOk(['notify', 'list', '--status', 'failed', '--json'], { env });
      expect(listed.json.sends.map((s: Record<string, unknown>) => [s.target, s.audience, s.subject, s.status, s.attempts, s.lastStatus, s.lastError])).toEqual([
        [b.url('/events'), AUD_B, 'user-4', 'failed', 1, 400, 'the receiver rejected the SET: invalid_key (no key with that kid in our copy of your JWKS)'],
        [b.url('/events'), AUD_B, 'user-3', 'failed', 1, 400, 'the receiver rejected the SET: invalid_key (no key with that kid in our copy of your JWKS)'],
      ]);
      // Undone: nothing more is sent, the refusals stay on record.
      await runOk(['runs', 'rollback', String(/run (\d+) stopped/.exec(err.message)![1]), '--yes', '--json'], { env });
      expect(b.requests).toHaveLength(2);
    });

    if (c.name === 'postgres+redis') {
      it('a receiver that stays down costs one round of attempts, not a deadline per SET; notify retry then delivers all of them', async () => {
        const down = await Receiver.start(() => ({ status: 503 }));
        const receivers = JSON.stringify([{ url: down.url('/push'), audience: AUD_B }]);
        const users = state.sessions.slice(0, 20).flatMap((s) => ['--user', s.sub]);
        const res = await runCli(['notify', 'set', '--event', 'session-revoked', ...users, '--attempts', '2', '--yes', '--json'], { env: { ...env, JWTIR_SET_RECEIVERS: receivers } });
        const err = expectFailure(res, ExitCode.runFailed, 'ERR_NOTIFY_SEND_FAILED');
        const runId = Number(/run (\d+) stopped/.exec(err.message)![1]);
        expect(err.message).toContain(`20 of 20 SET(s) not delivered`);
        expect(err.message).toContain('not attempted after an earlier message to it failed');
        // Eight SETs are in flight at once; each tried twice, then the receiver counts as down.
        expect(down.requests).toHaveLength(16);
        const states = await withState(env, (s) => s.db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM notify_sends WHERE run_id = $1 GROUP BY status ORDER BY status', [runId]));
        expect(states).toEqual([{ status: 'failed', n: 8 }, { status: 'pending', n: 12 }]);

        down.reply = () => ({ status: 202 });
        const retried = await runOk(['notify', 'retry', '--yes', '--json'], { env });
        expect(retried.json.retried).toEqual([expect.objectContaining({ runId, status: 'done' })]);
        expect(down.requests).toHaveLength(36);
        const jtis = down.requests.slice(16).map((r) => JSON.parse(Buffer.from(r.body.split('.')[1]!, 'base64url').toString()).jti);
        expect(new Set(jtis).size).toBe(20);
        await down.close();
      });
    }

    describe('bad input is refused with nothing changed', () => {
      it('missing or malformed receiver and issuer settings, a symmetric or unknown --kid, a missing credential type, an unknown user', async () => {
        const before = await notifySnapshot(env);
        const n = a.requests.length;
        const set = (args: string[], extra: Record<string, string | undefined> = {}) =>
          runCli(['notify', 'set', '--event', 'session-revoked', '--yes', '--json', ...args], { env: { ...env, ...extra } });

        const malformed = expectFailure(
          await set(['--user', 'user-3'], { JWTIR_SET_RECEIVERS: JSON.stringify([{ url: 'https://user:pw@rp.example/push', audience: 'x' }, { url: 'ftp://rp.example', audience: '' }]) }),
          ExitCode.usage,
          'ERR_CONFIG_INVALID',
        );
        expect(malformed.message).toContain('JWTIR_SET_RECEIVERS has 3 problem(s)');
        expect(malformed.message).not.toContain('pw@');
        expectFailure(await set(['--user', 'user-3'], { JWTIR_SET_RECEIVERS: '{not json' }), ExitCode.usage, 'ERR_CONFIG_INVALID');
        expect(expectFailure(await set(['--user', 'user-3'], { JWTIR_SET_RECEIVERS: undefined }), ExitCode.usage, 'ERR_NOTIFY_NOT_CONFIGURED').hint).toContain('JWTIR_SET_RECEIVERS');
        expect(expectFailure(await set(['--user', 'user-3'], { JWTIR_SET_ISSUER: undefined }), ExitCode.usage, 'ERR_NOTIFY_NOT_CONFIGURED').hint).toContain('JWTIR_SET_ISSUER');
        expect(expectFailure(await set(['--user', 'user-3', '--kid', 'legacy']), ExitCode.refused, 'ERR_SET_KEY_SYMMETRIC').message).toMatch(/^key legacy is HS256/);
        expect(expectFailure(await set(['--user', 'user-3', '--kid', 'nope']), ExitCode.usage, 'ERR_KID_UNKNOWN').hint).toContain('legacy');
        const risc = await runCli(['notify', 'set', '--event', 'credential-compromise', '--user', 'user-3', '--yes', '--json'], { env });
        expect(expectFailure(risc, ExitCode.usage, 'ERR_USAGE').message).toContain('needs --credential-type');
        expect(expectFailure(await set(['--user', 'user-3', '--credential-type', 'pin']), ExitCode.usage, 'ERR_USAGE').message).toBe(
          '--credential-type is for --event credential-compromise only, not session-revoked',
        );
        expectFailure(await set(['--user', 'nobody-here']), ExitCode.usage, 'ERR_USER_UNKNOWN');
        expect(a.requests.length).toBe(n);
        expect(await notifySnapshot(env)).toEqual(before);
      });
    });
  });
}
