/**
 * The warm path: a token the guard has verified before is served from memory, and every
 * state-dependent check that passed is remembered. These tests prove that what is remembered is
 * never stale: each kind of change made through the CLI's store API takes effect on the very next
 * request for a token that was allowed (and remembered) a moment before.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, openState, withState } from '../helpers/state.js';
import { type Guard, type RequestContext } from '../../src/guard/index.js';
import { changePolicy, type PolicyDoc } from '../../src/state/policy.js';
import { revoke } from '../../src/state/revocations.js';
import { syncKeysToHotStore } from '../../src/state/keys.js';
import { syncWatermarks } from '../../src/state/watermarks.js';
import type { Backends } from '../../src/store/open.js';

const secret = randomBytes(32);
const nowSec = () => Math.floor(Date.now() / 1000);
const fp = (label: string) => createHash('sha256').update(label).digest('hex');
const token = (claims: Record<string, unknown>) => {
  const input = `${Buffer.from('{"alg":"HS256","kid":"warm"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
};
let n = 0;
/** A fresh, valid token for a fresh user. */
const fresh = (extra: Record<string, unknown> = {}) => {
  n += 1;
  return { sub: `user-${n}`, jti: randomUUID(), token: token({ sub: `user-${n}`, sid: `sid-${n}`, jti: randomUUID(), iat: nowSec() - 60, exp: nowSec() + 600, ...extra }) };
};

for (const c of backendCases('warm', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'the warm path never serves a stale decision', () => {
    let guard: Guard;
    let shared: Backends | undefined;
    const change = async (fn: (b: Backends) => Promise<unknown>) => {
      await (shared ? fn(shared) : withState(c.env, fn));
      await guard.sync();
    };
    const policy = (fn: (d: PolicyDoc) => PolicyDoc) => change((b) => changePolicy(b.db, b.hot, fn, { actor: 'test' }));
    /** Allowed three times in a row: verified, cached, and its checks remembered. */
    const warmUp = (t: string, ctx?: RequestContext) => {
      for (let i = 0; i < 3; i++) expect(guard.authorize(t, ctx).decision).toBe('allow');
    };

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'warm', '--alg', 'HS256', '--secret-env', 'S', '--secret-encoding', 'base64'], {
        env: { ...c.env, S: secret.toString('base64') },
      });
      if (c.name === 'embedded') shared = await openState(c.env);
      guard = await guardFor(c.env, shared ? { backends: shared } : {});
    });
    afterAll(async () => {
      await guard?.close();
      await shared?.close();
    });

    it('a revocation by jti, session or device denies a remembered token on its next request', async () => {
      const until = new Date(Date.now() + 3_600_000);
      const a = fresh({ jti: 'warm-jti' });
      const b = fresh({ sid: 'warm-sid' });
      const d = fresh();
      const ctx = { fingerprint: fp('warm-device') };
      warmUp(a.token);
      warmUp(b.token);
      warmUp(d.token, ctx);
      await change(async (s) => {
        await revoke(s.db, s.hot, 'jti', [{ value: 'warm-jti', expiresAt: until }]);
        await revoke(s.db, s.hot, 'sid', [{ value: 'warm-sid', expiresAt: until }]);
        await revoke(s.db, s.hot, 'fph', [{ value: fp('warm-device'), expiresAt: until }]);
      });
      expect(guard.authorize(a.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_jti'] });
      expect(guard.authorize(b.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] });
      expect(guard.authorize(d.token, ctx)).toMatchObject({ decision: 'deny', reasons: ['revoked_device'] });
    });

    it('a user watermark denies a remembered token issued before it', async () => {
      const t = fresh();
      warmUp(t.token);
      await change(async (s) => {
        await s.db.query(`INSERT INTO watermarks (scope, subject, not_before, run_id, step, reason) VALUES ('user', $1, now(), 0, 'test', 'test')`, [t.sub]);
        await syncWatermarks(s.db, s.hot, 'user', [t.sub]);
      });
      expect(guard.authorize(t.token)).toMatchObject({ decision: 'deny', reasons: ['revoked_user'] });
    });

    it('a policy change (cutover, step-up) applies to remembered tokens at once, and undoing it restores them', async () => {
      const tokens = Array.from({ length: 40 }, () => fresh());
      for (const t of tokens) warmUp(t.token);
      await policy((d) => ({ ...d, kids: { warm: { cutoverPercent: 100 } } }));
      for (const t of tokens) expect(guard.authorize(t.token)).toMatchObject({ decision: 'deny', reasons: ['key_cutover'] });
      await policy((d) => ({ ...d, kids: {}, stepUp: { newDevice: true, badReputation: false } }));
      expect(guard.authorize(tokens[0]!.token, { fingerprint: fp('never-confirmed') })).toMatchObject({ decision: 'step_up', reasons: ['new_device'] });
      await policy((d) => ({ ...d, stepUp: { newDevice: false, badReputation: false } }));
      for (const t of tokens) expect(guard.authorize(t.token).decision).toBe('allow');
    });

    it('a remembered token is judged again for another fingerprint, operation or signals', async () => {
      await policy((d) => ({ ...d, stepUp: { newDevice: false, badReputation: true }, blockCritical: { dirtyDevice: true } }));
      const bound = fresh({ fph: fp('phone') });
      warmUp(bound.token, { fingerprint: fp('phone') });
      expect(guard.authorize(bound.token, { fingerprint: fp('laptop') })).toMatchObject({ decision: 'deny', reasons: ['fingerprint_mismatch'] });
      expect(guard.authorize(bound.token)).toMatchObject({ decision: 'deny', reasons: ['fingerprint_missing'] });
      expect(guard.authorize(bound.token, { fingerprint: fp('phone'), signals: { reputation: 'bad' } })).toMatchObject({ decision: 'step_up' });
      expect(guard.authorize(bound.token, { fingerprint: fp('phone'), operation: 'critical', signals: { reputation: 'bad' } })).toMatchObject({
        decision: 'block_critical',
      });
      expect(guard.authorize(bound.token, { fingerprint: fp('phone') }).decision).toBe('allow');
      await policy((d) => ({ ...d, stepUp: { newDevice: false, badReputation: false }, blockCritical: { dirtyDevice: false } }));
    });

    it('disabling the key denies its remembered tokens', async () => {
      const t = fresh();
      warmUp(t.token);
      await change(async (s) => {
        await s.db.query(`UPDATE keys SET state = 'disabled' WHERE kid = 'warm'`);
        await syncKeysToHotStore(s.db, s.hot);
      });
      expect(guard.authorize(t.token)).toMatchObject({ decision: 'deny', reasons: ['key_disabled'] });
      await change(async (s) => {
        await s.db.query(`UPDATE keys SET state = 'active' WHERE kid = 'warm'`);
        await syncKeysToHotStore(s.db, s.hot);
      });
      expect(guard.authorize(t.token).decision).toBe('allow');
    });

    it('a shared allow verdict cannot be altered by one caller for the next', () => {
      const t = fresh({ roles: ['customer'] });
      warmUp(t.token);
      const v = guard.authorize(t.token);
      expect(() => {
        (v.claims as Record<string, unknown>).sub = 'admin';
      }).toThrow(TypeError);
      expect(() => {
        (v.claims!.roles as string[]).push('admin');
      }).toThrow(TypeError);
      expect(() => {
        (v as { decision: string }).decision = 'deny';
      }).toThrow(TypeError);
      expect(guard.authorize(t.token)).toMatchObject({ decision: 'allow', sub: t.sub, claims: { roles: ['customer'] } });
    });

    it('the rate limit counts every request of a remembered token, and a new window starts afresh', async () => {
      let clock = Math.floor(Date.now() / 60_000) * 60_000 + 1_000;
      const timed = await guardFor(c.env, { now: () => clock, ...(shared ? { backends: shared } : {}) });
      try {
        await policy((d) => ({ ...d, kids: { warm: { rateLimit: { ops: 5, windowSec: 60 } } } }));
        await timed.sync();
        const t = token({ sub: 'limited', jti: randomUUID(), iat: clock / 1000 - 60, exp: clock / 1000 + 3600 });
        const first = Array.from({ length: 6 }, () => timed.authorize(t));
        expect(first.map((v) => v.decision)).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'deny']);
        expect(first[5]).toMatchObject({ reasons: ['rate_limited'], retryAfterSec: 59 });
        clock += 60_000;
        expect(timed.authorize(t).decision).toBe('allow');
      } finally {
        await timed.close();
        await policy((d) => ({ ...d, kids: {} }));
      }
    });
  });
}
