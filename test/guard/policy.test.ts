import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { setPolicy } from '../helpers/keys.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, openState, seedLedger, withState } from '../helpers/state.js';
import { cohortOf, prometheusMetrics, REFRESH_REUSED, type Guard, type GuardEvent } from '../../src/guard/index.js';
import { revoke } from '../../src/state/revocations.js';
import type { Backends } from '../../src/store/open.js';
import type { LedgerSession } from '../../src/state/ledger.js';

const secret = randomBytes(32).toString('hex');
const nowSec = () => Math.floor(Date.now() / 1000);
const fp = (label: string) => createHash('sha256').update(label).digest('hex');
/** A token signed with the legacy secret, the way the legacy service (or an attacker holding it) would. */
const legacyToken = (claims: Record<string, unknown>) => {
  const input = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
};

// 200 real legacy sessions: user-<i> with session sid-<i>, issued 10 minutes ago for an hour.
const ledger: LedgerSession[] = Array.from({ length: 200 }, (_, i) => ({
  sid: `sid-${i}`,
  sub: `user-${i}`,
  kid: 'legacy',
  roles: ['customer'],
  fph: null,
  issuedAt: new Date((nowSec() - 600) * 1000),
  expiresAt: new Date((nowSec() + 3000) * 1000),
}));
const realToken = (i: number, extra: Record<string, unknown> = {}) =>
  legacyToken({ sub: `user-${i}`, sid: `sid-${i}`, jti: randomUUID(), iat: nowSec() - 600, exp: nowSec() + 3000, ...extra });

for (const c of backendCases('policy', ['postgres+redis', 'postgres', 'embedded'])) {
  describeBackend(c, 'the guard enforces the incident policy', () => {
    let guard: Guard;
    let shared: Backends | undefined;
    const events: GuardEvent[] = [];
    /** Changes state through the store API; on the embedded default through the guard's own connection. */
    const change = async (fn: (b: Backends) => Promise<unknown>) => {
      await (shared ? fn(shared) : withState(c.env, fn));
      await guard.sync();
    };
    const policy = async (_env: unknown, fn: Parameters<typeof setPolicy>[1]) => {
      let v = 0;
      await change(async (b) => {
        const { changePolicy } = await import('../../src/state/policy.js');
        v = (await changePolicy(b.db, b.hot, fn, { actor: 'test' })).version;
      });
      return v;
    };

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'S'], { env: { ...c.env, S: secret } });
      await seedLedger(c.env, ledger);
      await runOk(['rotate', '--staged', '--compromised', '--grace', '1h', '--publish-wait', '0s', '--yes'], { env: c.env });
      if (c.name === 'embedded') shared = await openState(c.env);
      guard = await guardFor(c.env, { onEvent: (e) => events.push(e), ...(shared ? { backends: shared } : {}) });
      // user-1..user-5 have a known, confirmed device each.
      for (let i = 1; i <= 5; i++) await guard.confirmDevice(`user-${i}`, fp(`device-${i}`));
    });
    afterAll(async () => {
      await guard?.close();
      await shared?.close();
    });

    it('a real legacy session passes during the grace period; forged tokens of the compromised key are denied and alerted', async () => {
      expect(guard.authorize(realToken(7))).toMatchObject({ decision: 'allow', sub: 'user-7' });
      // The attacker holds the secret: a perfectly signed token for a real user, but a session the service never issued.
      const forged = legacyToken({ sub: 'user-7', sid: 'sid-attacker', iat: nowSec() - 60, exp: nowSec() + 600 });
      expect(guard.authorize(forged)).toMatchObject({ decision: 'deny', reasons: ['forged_unknown_session'] });
      // A token issued after the key stopped signing cannot come from the service (seen two minutes
      // after the rotation, so the iat is not in the future).
      const later = await guardFor(c.env, { now: () => Date.now() + 120_000, ...(shared ? { backends: shared } : {}), onEvent: (e) => events.push(e) });
      expect(later.authorize(realToken(7, { iat: nowSec() + 60 }))).toMatchObject({ decision: 'deny', reasons: ['forged_after_retirement'] });
      await later.close();
      // A real session, used from a device that user never used.
      expect(guard.authorize(realToken(1), { fingerprint: fp('device-1') }).decision).toBe('allow');
      expect(guard.authorize(realToken(1), { fingerprint: fp('attacker-laptop') })).toMatchObject({ decision: 'deny', reasons: ['forged_unknown_device'] });
      const alerts = events.filter((e): e is Extract<GuardEvent, { type: 'alert' }> => e.type === 'alert').map((e) => e.alert);
      expect(alerts.map((a) => `${a.kind}:${a.reason}:${a.sub}`)).toEqual([
        'forged_token:forged_unknown_session:user-7',
        'forged_token:forged_after_retirement:user-7',
        'forged_token:forged_unknown_device:user-1',
      ]);
    });

    it('revocations by jti, session and device take effect, and expire with the tokens they cover', async () => {
      const byJti = realToken(10, { jti: 'jti-revoked' });
      const bySid = realToken(11);
      const byDevice = realToken(12);
      const expired = realToken(13, { jti: 'jti-expired-revocation' });
      const until = new Date(Date.now() + 3_600_000);
      await change(async (b) => {
        await revoke(b.db, b.hot, 'jti', [{ value: 'jti-revoked', expiresAt: until }, { value: 'jti-expired-revocation', expiresAt: new Date(Date.now() - 1000) }]);
        await revoke(b.db, b.hot, 'sid', [{ value: 'sid-11', expiresAt: until }]);
        await revoke(b.db, b.hot, 'fph', [{ value: fp('stolen-phone'), expiresAt: until }]);
      });
      expect(guard.authorize(byJti)).toMatchObject({ decision: 'deny', reasons: ['revoked_jti'] });
      expect(guard.authorize(bySid)).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] });
      expect(guard.authorize(byDevice, { fingerprint: fp('stolen-phone') })).toMatchObject({ decision: 'deny', reasons: ['revoked_device'] });
      expect(guard.authorize(expired).decision).toBe('allow');
    });

    it('cutover: the old key stops verifying for exactly the users in the cut-over cohorts', async () => {
      await policy(c.env, (d) => ({ ...d, kids: { ...d.kids, legacy: { ...d.kids.legacy, cutoverPercent: 10 } } }));
      const verdicts = ledger.slice(20, 200).map((_, j) => ({ i: j + 20, v: guard.authorize(realToken(j + 20)) }));
      for (const { i, v } of verdicts) {
        if (cohortOf(`user-${i}`) < 10) expect(v).toMatchObject({ decision: 'deny', reasons: ['key_cutover'] });
        else expect(v.decision).toBe('allow');
      }
      expect(verdicts.filter(({ v }) => v.decision === 'deny').length).toBeGreaterThan(5);
      // New-key tokens of cut-over users are unaffected.
      const cutUser = verdicts.find(({ v }) => v.decision === 'deny')!.i;
      const fresh = await guard.issue({ sub: `user-${cutUser}`, ttlSec: 600 });
      expect(guard.authorize(fresh.token).decision).toBe('allow');
      await policy(c.env, (d) => ({ ...d, kids: {} }));
    });

    it('a shorter maximum age and a per-token rate limit for old-key tokens', async () => {
      await policy(c.env, (d) => ({ ...d, kids: { legacy: { maxAgeSec: 900, rateLimit: { ops: 5, windowSec: 60 } } } }));
      expect(guard.authorize(realToken(30, { iat: nowSec() - 901 }))).toMatchObject({ decision: 'deny', reasons: ['too_old'] });
      const token = realToken(31, { iat: nowSec() - 100 });
      const decisions = Array.from({ length: 6 }, (_, n) => guard.authorize(token, { operation: n % 2 ? 'critical' : 'read' }));
      expect(decisions.slice(0, 5).map((d) => d.decision)).toEqual(['allow', 'allow', 'allow', 'allow', 'allow']);
      expect(decisions[5]).toMatchObject({ decision: 'deny', reasons: ['rate_limited'] });
      expect(decisions[5]!.retryAfterSec).toBeGreaterThanOrEqual(1);
      expect(decisions[5]!.retryAfterSec).toBeLessThanOrEqual(60);
      await policy(c.env, (d) => ({ ...d, kids: {} }));
    });

    it('step-up for new and bad-reputation devices; block_critical for a clean account on a dirty device', async () => {
      await policy(c.env, (d) => ({ ...d, stepUp: { newDevice: true, badReputation: true }, blockCritical: { dirtyDevice: true } }));
      // device-2 was confirmed with a second factor; a login from a tablet was not (yet).
      const session = await guard.login({ sub: 'user-2', fph: fp('device-2'), roles: ['customer'] });
      const ctx = { fingerprint: fp('device-2') };
      expect(guard.authorize(session.access.token, ctx).decision).toBe('allow');
      const other = await guard.login({ sub: 'user-2', fph: fp('tablet-2') });
      expect(guard.authorize(other.access.token, { fingerprint: fp('tablet-2') })).toMatchObject({ decision: 'step_up', reasons: ['new_device'] });
      await guard.confirmDevice('user-2', fp('tablet-2'));
      expect(guard.authorize(other.access.token, { fingerprint: fp('tablet-2') }).decision).toBe('allow');
      expect(guard.authorize(session.access.token, { ...ctx, signals: { reputation: 'bad' } })).toMatchObject({ decision: 'step_up', reasons: ['bad_reputation'] });
      expect(guard.authorize(session.access.token, { ...ctx, operation: 'critical', signals: { reputation: 'bad' } })).toMatchObject({
        decision: 'block_critical',
        reasons: ['dirty_device'],
      });
      await policy(c.env, (d) => ({ ...d, stepUp: { newDevice: false, badReputation: false }, blockCritical: { dirtyDevice: false } }));
    });

    it('refresh tokens rotate on every use; reusing a spent one revokes the whole family', async () => {
      const first = await guard.login({ sub: 'user-3', fph: fp('device-3'), refreshTtlSec: 3600 });
      const second = await guard.refresh(first.refreshToken, { fingerprint: fp('device-3') });
      expect(second.access.sid).toBe(first.access.sid);
      expect(second.refreshToken).not.toBe(first.refreshToken);
      expect(guard.authorize(second.access.token, { fingerprint: fp('device-3') }).decision).toBe('allow');
      await expect(guard.refresh(first.refreshToken, { fingerprint: fp('device-3') })).rejects.toMatchObject({ code: REFRESH_REUSED });
      await guard.sync();
      expect(guard.authorize(second.access.token, { fingerprint: fp('device-3') })).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] });
      await expect(guard.refresh(second.refreshToken, { fingerprint: fp('device-3') })).rejects.toMatchObject({ code: 'ERR_REFRESH_INVALID' });
      const stored = await (async () => {
        let rows: Array<{ hash: string }> = [];
        await change(async (b) => (rows = await b.db.query<{ hash: string }>('SELECT hash FROM refresh_tokens')));
        return rows.map((r) => r.hash);
      })();
      expect(stored).not.toContain(first.refreshToken);
    });

    it('counts decisions per minute by kid, decision, reason and cohort, readable by the CLI, and exports Prometheus metrics', async () => {
      const minute = Math.floor(Date.now() / 60_000);
      guard.authorize('not-a-token');
      guard.authorize(realToken(50));
      await guard.flush();
      const rows = await guard.counters(minute - 1);
      expect(rows.some((r) => r.kid === 'legacy' && r.decision === 'allow' && r.cohort === cohortOf('user-50'))).toBe(true);
      expect(rows.some((r) => r.decision === 'deny' && r.reason === 'not_jws')).toBe(true);
      const metrics = await prometheusMetrics(guard);
      const text = await metrics.render();
      expect(text).toMatch(/jwtir_guard_decisions_total\{kid="legacy",decision="allow",reason="-"\} \d+/);
      expect(text).toContain('jwtir_guard_store_healthy 1');
      // Alerts reached the database, where the CLI reads them.
      let kinds: string[] = [];
      await change(async (b) => (kinds = (await b.db.query<{ kind: string }>('SELECT kind FROM alerts ORDER BY id')).map((r) => r.kind)));
      expect(kinds).toEqual(expect.arrayContaining(['forged_token', 'refresh_reuse']));
      // The operator reads the same through the CLI (the embedded database is held by this process).
      if (!shared) {
        const cli = await runOk(['counters', '--since', '5m', '--kid', 'legacy', '--json'], { env: c.env });
        expect(cli.json.counters.some((r: { decision: string; n: number }) => r.decision === 'allow' && r.n >= 1)).toBe(true);
        const alerts = await runOk(['alerts', '--json'], { env: c.env });
        expect(alerts.json.alerts.map((a: { kind: string }) => a.kind)).toEqual(expect.arrayContaining(['forged_token', 'refresh_reuse']));
      }
    });

    it('a forged token replayed many times is one alert row with a count, not one row per request', async () => {
      const forged = legacyToken({ sub: 'user-77', sid: 'no-such-session', jti: 'replayed-forgery', iat: nowSec() - 600, exp: nowSec() + 3000 });
      for (let i = 0; i < 5000; i++) expect(guard.authorize(forged).reasons).toEqual(['forged_unknown_session']);
      await guard.flush();
      let rows: Array<{ n: number; count: number }> = [];
      await change(async (b) => (rows = await b.db.query(`SELECT count(*)::int AS n, max((detail->>'count')::int) AS count FROM alerts WHERE jti = 'replayed-forgery'`)));
      expect(rows[0]).toEqual({ n: 1, count: 5000 });
    });
  });
}
