import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import type { Guard, Verdict } from '../../src/guard/index.js';
import type { LedgerSession } from '../../src/state/ledger.js';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, seedLedger, withGuard } from '../helpers/state.js';

/**
 * `jwtir blacklist add|remove|list` through the real binary, with a guard (the library) judging
 * tokens minted by jsonwebtoken the way a legacy service mints them: each selector denies what it
 * covers with its own reason and nothing else; remove and rollbacks bring access back or take it
 * away again; a findings file of 1,000 entries lands without the list or any token in the audit trail.
 */
const secret = randomBytes(32).toString('hex');
const nowSec = () => Math.floor(Date.now() / 1000);
const fphOf = (name: string) => createHash('sha256').update(name).digest('hex');
const LIFETIME = 3600;
const TOLERANCE = 30;
const MAX_LIFETIME = 30 * 24 * 3600;

interface TestToken {
  token: string;
  fingerprint?: string;
}
function mint(claims: { sub: string; sid: string; jti?: string; fph?: string; iat?: number }): TestToken {
  const token = jwt.sign({ iat: nowSec() - 60, ...claims }, secret, { algorithm: 'HS256', expiresIn: LIFETIME });
  return claims.fph ? { token, fingerprint: claims.fph } : { token };
}
const session = (sid: string, sub: string, fph: string | null = null): LedgerSession => ({
  sid,
  sub,
  kid: 'legacy',
  roles: ['customer'],
  fph,
  issuedAt: new Date((nowSec() - 60) * 1000),
  expiresAt: new Date((nowSec() - 60 + LIFETIME) * 1000),
  source: 'import',
});

const FRANK_DEVICE = fphOf('frank-laptop');
const STOLEN_DEVICE = fphOf('attacker-phone');
const tokens = {
  aliceJti: mint({ sub: 'alice', sid: 's-alice-1', jti: 'j-alice-1' }),
  aliceOther: mint({ sub: 'alice', sid: 's-alice-2', jti: 'j-alice-2' }),
  bobSession: mint({ sub: 'bob', sid: 's-bob', jti: 'j-bob' }),
  frankDevice: mint({ sub: 'frank', sid: 's-frank', jti: 'j-frank', fph: FRANK_DEVICE }),
  // No fph claim: only the request's fingerprint ties it to the stolen device.
  erinOnStolen: { ...mint({ sub: 'erin', sid: 's-erin', jti: 'j-erin' }), fingerprint: STOLEN_DEVICE },
  daveUser: mint({ sub: 'dave', sid: 's-dave', jti: 'j-dave' }),
  carol: mint({ sub: 'carol', sid: 's-carol', jti: 'j-carol' }),
};
const ledger = [
  session('s-alice-1', 'alice'),
  session('s-alice-2', 'alice'),
  session('s-bob', 'bob'),
  session('s-frank', 'frank', FRANK_DEVICE),
  session('s-erin', 'erin'),
  session('s-dave', 'dave'),
  session('s-dave-2', 'dave'),
  session('s-carol', 'carol'),
];
const ADD = ['blacklist', 'add', '--jti', 'j-alice-1', '--session', 's-bob', '--device', FRANK_DEVICE, '--device', STOLEN_DEVICE, '--user', 'dave', '--reason', 'incident 4'];
const EXPECTED: Record<keyof typeof tokens, Verdict['reasons']> = {
  aliceJti: ['revoked_jti'],
  aliceOther: [],
  bobSession: ['revoked_session'],
  frankDevice: ['revoked_device'],
  erinOnStolen: ['revoked_device'],
  daveUser: ['revoked_user'],
  carol: [],
};
const ALLOWED = Object.fromEntries(Object.keys(tokens).map((k) => [k, []]));

const judge = (g: Guard) =>
  Object.fromEntries(
    Object.entries(tokens).map(([name, t]) => {
      const v = g.authorize(t.token, t.fingerprint ? { fingerprint: t.fingerprint } : {});
      return [name, v.decision === 'allow' ? [] : v.reasons];
    }),
  );

for (const c of backendCases('blacklist', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir blacklist', () => {
    const env = c.env;
    let liveGuard: Guard | undefined;
    let addRun: number;
    let removeRun: number;
    const verdicts = (): Promise<Record<string, Verdict['reasons']>> => withGuard(env, async (g) => judge(g));

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, ledger);
      expect(await verdicts()).toEqual(ALLOWED);
    });

    afterAll(async () => {
      await liveGuard?.close();
    });

    it('--dry-run prints each step with its blast radius and expiry rules, and changes nothing', async () => {
      const res = await runOk([...ADD, '--dry-run', '--json'], { env });
      const [revoke, users] = res.json.plan.steps;
      // s-bob by session, s-frank by its device; the stolen device and the jti are in no ledger session.
      expect(revoke).toMatchObject({ id: 'revoke', runs: true, undo: 'revocations.lift-own', impact: { sessions: 2, users: 2 } });
      expect(revoke.impact.note).toBe(
        'expiry: 1 by the ledger session\'s expiry + 30s, 3 by now + the maximum token lifetime 30d + 30s; the ledger knows no session by jti, so 1 jti count for none here',
      );
      expect(revoke.description).toContain('deny 1 jti, 1 session and 2 devices');
      expect(users).toMatchObject({ id: 'users', runs: true, undo: 'watermarks.clear', impact: { sessions: 2, users: 1 } });
      expect(res.json.plan.params).toMatchObject({ source: 'flags', jtis: 1, sessions: 1, devices: 2, users: 1, reason: 'incident 4', ttl: null });
      const runs = await runOk(['runs', 'list', '--json'], { env });
      expect(runs.json.runs.map((r: { runbook: string }) => r.runbook)).toEqual(['keys-import']);
      expect((await runOk(['blacklist', 'list', '--json'], { env })).json).toEqual({ total: 0, entries: [] });
    });

    it('add by jti, session, device (claim and request fingerprint) and user: each covered token is denied with its reason, the others pass', async () => {
      // Polling once a minute: only the push feed can bring the change to this guard in time.
      if (c.name !== 'embedded') liveGuard = await guardFor(env, { pollIntervalMs: 60_000 });
      const res = await runOk([...ADD, '--yes', '--json'], { env });
      addRun = res.json.runId;
      expect(res.json.status).toBe('done');
      expect(res.json.steps.map((s: { step: string; state: string }) => `${s.step}:${s.state}`)).toEqual(['revoke:done', 'users:done']);
      expect(res.json.steps[0].outputs).toEqual({ jtis: 1, sessions: 1, devices: 2, expiry: { 'ledger-session': 1, 'max-lifetime': 3 } });
      if (liveGuard) {
        const deadline = Date.now() + 2000;
        while (Date.now() < deadline && JSON.stringify(judge(liveGuard)) !== JSON.stringify(EXPECTED)) await new Promise((r) => setTimeout(r, 20));
        expect(judge(liveGuard)).toEqual(EXPECTED);
      }
      expect(await verdicts()).toEqual(EXPECTED);
    });

    it('a blacklisted user logs in again: a token issued from now on passes', async () => {
      const fresh = jwt.sign({ sub: 'dave', sid: randomUUID(), iat: nowSec() }, secret, { algorithm: 'HS256', expiresIn: LIFETIME });
      await withGuard(env, async (g) => expect(g.verify(fresh)).toMatchObject({ decision: 'allow', sub: 'dave' }));
    });

    it('list shows the live entries with expiry, rule, reason and run; fph shortened for people only', async () => {
      const res = await runOk(['blacklist', 'list', '--json'], { env });
      expect(res.json.total).toBe(5);
      const byValue = Object.fromEntries(res.json.entries.map((e: { value: string }) => [e.value, e]));
      expect(byValue['j-alice-1']).toMatchObject({ kind: 'jti', expiryRule: 'max-lifetime', reason: 'incident 4', runId: addRun });
      expect(byValue['s-bob']).toMatchObject({ kind: 'session', expiryRule: 'ledger-session' });
      // The ledger session's expiry plus the clock tolerance.
      expect(Date.parse(byValue['s-bob'].expiresAt)).toBe(ledger[2]!.expiresAt.getTime() + TOLERANCE * 1000);
      expect(byValue[FRANK_DEVICE]).toMatchObject({ kind: 'device', expiryRule: 'max-lifetime' });
      expect(byValue.dave).toMatchObject({ kind: 'user', expiryRule: 'max-lifetime', runId: addRun });
      const bound = Date.parse(byValue.dave.createdAt) + (MAX_LIFETIME + TOLERANCE) * 1000;
      expect(Math.abs(Date.parse(byValue['j-alice-1'].expiresAt) - bound)).toBeLessThan(5000);
      const devices = await runOk(['blacklist', 'list', '--kind', 'device'], { env });
      expect(devices.stderr).toContain(`${FRANK_DEVICE.slice(0, 12)}…`);
      expect(devices.stderr).not.toContain(FRANK_DEVICE);
      expect(devices.stderr).not.toContain('j-alice-1');
    });

    it('remove accepts the tokens again; rolling the remove back denies them again', async () => {
      const res = await runOk(['blacklist', 'remove', '--jti', 'j-alice-1', '--user', 'dave', '--device', STOLEN_DEVICE, '--yes', '--json'], { env });
      removeRun = res.json.runId;
      expect(res.json.steps.map((s: { outputs: unknown }) => s.outputs)).toEqual([{ jtis: 1, sessions: 0, devices: 1 }, { users: 1 }]);
      expect(await verdicts()).toEqual({ ...EXPECTED, aliceJti: [], daveUser: [], erinOnStolen: [] });
      const listed = await runOk(['blacklist', 'list', '--json'], { env });
      expect(listed.json.entries.map((e: { value: string }) => e.value).sort()).toEqual([FRANK_DEVICE, 's-bob'].sort());

      await runOk(['runs', 'rollback', String(removeRun), '--yes', '--json'], { env });
      expect(await verdicts()).toEqual(EXPECTED);
      expect((await runOk(['blacklist', 'list', '--json'], { env })).json.total).toBe(5);
    });

    it('rolling the add back accepts every token again', async () => {
      const res = await runOk(['runs', 'rollback', String(addRun), '--yes', '--json'], { env });
      expect(res.json.status).toBe('rolled_back');
      expect(await verdicts()).toEqual(ALLOWED);
      expect((await runOk(['blacklist', 'list', '--json'], { env })).json.total).toBe(0);
    });

    it('--ttl sets the expiry of jti, session and device entries', async () => {
      const res = await runOk(['blacklist', 'add', '--jti', 'j-ttl', '--session', 's-carol', '--ttl', '2h', '--yes', '--json'], { env });
      expect(res.json.steps[0].outputs.expiry).toEqual({ ttl: 2 });
      const listed = await runOk(['blacklist', 'list', '--kind', 'session', '--json'], { env });
      const entry = listed.json.entries[0];
      expect(entry).toMatchObject({ value: 's-carol', expiryRule: 'ttl' });
      expect(Math.abs(Date.parse(entry.expiresAt) - (Date.parse(entry.createdAt) + 2 * 3600_000))).toBeLessThan(5000);
      await runOk(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env });
    });

    it('an add rolled back after a remove lifted its entries stays undone when the remove is rolled back too', async () => {
      const add = await runOk(['blacklist', 'add', '--jti', 'j-alice-1', '--user', 'alice', '--yes', '--json'], { env });
      const remove = await runOk(['blacklist', 'remove', '--jti', 'j-alice-1', '--user', 'alice', '--yes', '--json'], { env });
      await runOk(['runs', 'rollback', String(add.json.runId), '--yes', '--json'], { env });
      // Undoing the remove restores what it lifted, except what belonged to the add that is now undone.
      await runOk(['runs', 'rollback', String(remove.json.runId), '--yes', '--json'], { env });
      expect(await verdicts()).toEqual(ALLOWED);
      expect((await runOk(['blacklist', 'list', '--json'], { env })).json.total).toBe(0);
    });

    it('a findings file of 1,000 entries (jsonwebtoken-minted tokens among them) lands; the audit trail is intact and holds no token and not the list', async () => {
      const now = nowSec();
      const fileTokens = Array.from({ length: 300 }, (_, i) => jwt.sign({ sub: `x-${i}`, jti: `leaked-${i}`, iat: now - 60 }, secret, { algorithm: 'HS256', expiresIn: 600 }));
      const extraSessions = Array.from({ length: 100 }, (_, i) => session(`s-file-${i}`, `u-file-${i}`));
      await seedLedger(env, extraSessions);
      const lines = [
        '# forensic scan, 1,000 findings',
        ...fileTokens.map((t, i) => JSON.stringify({ token: t, reason: i === 0 ? 'pastebin' : undefined })),
        ...Array.from({ length: 500 }, (_, i) => JSON.stringify({ jti: `seen-${i}`, exp: now + 900 })),
        ...extraSessions.map((s) => JSON.stringify({ session: s.sid })),
        ...Array.from({ length: 99 }, (_, i) => JSON.stringify({ jti: `old-${i}` })),
        // Further out than any token may live: capped at now + max lifetime + tolerance.
        JSON.stringify({ jti: 'far-future', exp: now + 10 * MAX_LIFETIME }),
      ];
      const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-findings-'));
      const file = path.join(dir, 'findings.ndjson');
      writeFileSync(file, lines.join('\n') + '\n');

      const res = await runOk(['blacklist', 'add', '--from-file', file, '--yes', '--json'], { env });
      expect(res.json.steps[0].outputs).toEqual({ jtis: 900, sessions: 100, devices: 0, expiry: { 'token-exp': 801, 'ledger-session': 100, 'max-lifetime': 99 } });
      expect(res.json.steps[1].state).toBe('skipped');

      const listed = await runOk(['blacklist', 'list', '--limit', '2000', '--json'], { env });
      expect(listed.json.total).toBe(1000);
      const byValue = Object.fromEntries(listed.json.entries.map((e: { value: string }) => [e.value, e]));
      const tokenExp = (jwt.decode(fileTokens[7]!) as { exp: number }).exp;
      expect(byValue['leaked-7']).toMatchObject({ kind: 'jti', expiryRule: 'token-exp', reason: 'blacklist', expiresAt: new Date((tokenExp + TOLERANCE) * 1000).toISOString() });
      expect(byValue['leaked-0'].reason).toBe('pastebin');
      expect(byValue['seen-3'].expiresAt).toBe(new Date((now + 900 + TOLERANCE) * 1000).toISOString());
      expect(byValue['s-file-5']).toMatchObject({ kind: 'session', expiryRule: 'ledger-session', expiresAt: new Date(extraSessions[5]!.expiresAt.getTime() + TOLERANCE * 1000).toISOString() });
      expect(byValue['old-1'].expiryRule).toBe('max-lifetime');
      expect(byValue['far-future'].expiryRule).toBe('token-exp');
      expect(Date.parse(byValue['far-future'].expiresAt)).toBe(Date.parse(byValue['old-1'].expiresAt));

      await withGuard(env, async (g) => {
        for (const t of fileTokens.slice(0, 50)) expect(g.verify(t)).toMatchObject({ decision: 'deny', reasons: ['revoked_jti'] });
        expect(g.verify(tokens.carol.token).decision).toBe('allow');
      });

      const shown = await runOk(['runs', 'show', String(res.json.runId), '--json'], { env });
      expect(shown.json.run.params).toMatchObject({ source: file, jtis: 900, sessions: 100, revocations: 1000, users: 0 });
      expect(shown.json.run.params.set).toMatch(/^[0-9a-f]{64}$/);
      const trail = await runOk(['audit', 'trail', '--json'], { env });
      expect(trail.json.intact).toBe(true);
      const audit = JSON.stringify(shown.json.audit);
      expect(audit).toContain(shown.json.run.params.set);
      for (const t of fileTokens) expect(audit).not.toContain(t.split('.')[1]);
      for (const value of ['leaked-1', 'seen-1', 's-file-1', 'old-1']) expect(audit).not.toContain(value);
    });
  });
}
