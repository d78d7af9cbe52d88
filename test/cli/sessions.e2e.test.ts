import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, withGuard, withState } from '../helpers/state.js';
import { REFRESH_INVALID, type Guard, type Session } from '../../src/guard/index.js';

/**
 * `jwtir sessions list` shows a user's sessions with why each is no longer live, and
 * `jwtir sessions revoke` ends one (observed by a guard) until it is rolled back.
 */
const secret = randomBytes(32).toString('hex');
const fp = (label: string) => createHash('sha256').update(label).digest('hex');
const MIN = 60_000;

for (const c of backendCases('sessions', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir sessions list | revoke', () => {
    const env = c.env;
    let laptop: Session;
    let phone: Session;
    let old: Session;
    let expired: Session;
    let live: Guard | undefined;

    /** On postgres+redis a guard that runs all along (and only hears pushes); on the embedded default a fresh one. */
    async function observe(check: (g: Guard) => Promise<void> | void): Promise<void> {
      if (!live) return withGuard(env, async (g) => check(g));
      const deadline = Date.now() + 2000;
      for (;;) {
        try {
          return await check(live);
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    const list = async (...extra: string[]) => (await runOk(['sessions', 'list', '--user', 'sam', ...extra, '--json'], { env })).json.sessions as Array<Record<string, any>>;
    const bySid = (rows: Array<Record<string, any>>) => Object.fromEntries(rows.map((r) => [r.sid, r]));

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      // Two hours ago, for a minute: long expired, refresh token included.
      await withGuard(env, async (g) => void (expired = await g.login({ sub: 'sam', ttlSec: 60, refreshTtlSec: 60, device: 'Old tablet' })), { now: () => Date.now() - 120 * MIN });
      await withGuard(env, async (g) => void (old = await g.login({ sub: 'sam', ttlSec: 3600, device: 'Work PC', place: 'Hamburg, DE' })), { now: () => Date.now() - 30 * MIN });
      await withGuard(env, async (g) => {
        laptop = await g.login({ sub: 'sam', fph: fp('laptop'), device: 'Firefox on Linux', place: 'Berlin, DE' });
        phone = await g.login({ sub: 'sam', fph: fp('phone'), device: 'Safari on iPhone', place: 'Potsdam, DE' });
      });
      // The database stamped the refresh tokens with its own clock; they belong to the logins' time.
      await withState(env, async (b) => {
        await b.db.query(`UPDATE refresh_tokens SET issued_at = issued_at - interval '120 minutes' WHERE sid = $1`, [expired.access.sid]);
        await b.db.query(`UPDATE refresh_tokens SET issued_at = issued_at - interval '30 minutes' WHERE sid = $1`, [old.access.sid]);
      });
      // Every token sam had before ten minutes ago ends (a kid watermark on the one key).
      await runOk(['logout', '--issued-before', '10m', '--yes', '--json'], { env });
      if (c.name !== 'embedded') live = await guardFor(env, { pollIntervalMs: 60_000 });
    });

    afterAll(async () => {
      await live?.close();
    });

    it('lists live and ended sessions with device, place, times and status; --all adds the expired one', async () => {
      const rows = bySid(await list());
      expect(Object.keys(rows).sort()).toEqual([laptop.access.sid, phone.access.sid, old.access.sid].sort());
      expect(rows[laptop.access.sid]).toMatchObject({
        kid: 'legacy',
        device: 'Firefox on Linux',
        place: 'Berlin, DE',
        fph: fp('laptop'),
        status: 'active',
        why: null,
        lastSeenAt: null,
        issuedAt: new Date(Math.floor(laptop.access.expiresAt.getTime() / 1000 - 900) * 1000).toISOString(),
        // The refresh token keeps the session renewable for 30 days: that is when it ends.
        expiresAt: laptop.refreshExpiresAt.toISOString(),
      });
      expect(rows[old.access.sid]).toMatchObject({ device: 'Work PC', place: 'Hamburg, DE', status: 'ended', why: { by: 'kid watermark', scope: 'kid', subject: 'legacy', reason: 'forced logout' } });
      const all = bySid(await list('--all'));
      expect(Object.keys(all)).toHaveLength(4);
      expect(all[expired.access.sid]).toMatchObject({ device: 'Old tablet', status: 'expired', expiresAt: expired.refreshExpiresAt.toISOString() });
      const human = await runOk(['sessions', 'list', '--user', 'sam'], { env });
      expect(human.stderr).toMatch(/SID\s+KID\s+DEVICE\s+PLACE\s+ISSUED\s+LAST SEEN\s+EXPIRES\s+STATUS/);
      expect(human.stderr).toContain('(1 expired session not shown; --all shows them)');
    });

    it('sessions revoke ends one session at the guards and blocks its refresh; its dry run changes nothing; rollback restores it', async () => {
      const dry = await runOk(['sessions', 'revoke', phone.access.sid, '--dry-run', '--json'], { env });
      expect(dry.json.plan.steps[0].impact).toMatchObject({ sessions: 1, users: 1 });
      expect(bySid(await list())[phone.access.sid].status).toBe('active');

      const res = await runOk(['sessions', 'revoke', phone.access.sid, '--json'], { env });
      expect(res.json.status).toBe('done');
      expect(res.json.steps[0].outputs).toMatchObject({ sessions: 1, users: 1, refreshTokens: 1, notBefore: null });
      await observe(async (g) => {
        expect(g.authorize(phone.access.token, { fingerprint: fp('phone') })).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] });
        expect(g.authorize(laptop.access.token, { fingerprint: fp('laptop') }).decision).toBe('allow');
        await expect(g.refresh(phone.refreshToken, { fingerprint: fp('phone') })).rejects.toMatchObject({ code: REFRESH_INVALID });
      });
      const revoked = bySid(await list())[phone.access.sid];
      expect(revoked).toMatchObject({ status: 'revoked', why: { by: 'session', kind: 'sid', reason: 'session revoked by an operator', runId: res.json.runId } });
      // Once revoked its refresh token no longer keeps it alive: it ends with its access token.
      expect(revoked.expiresAt).toBe(phone.access.expiresAt.toISOString());

      const undone = await runOk(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env });
      expect(undone.json.status).toBe('rolled_back');
      await observe(async (g) => {
        expect(g.authorize(phone.access.token, { fingerprint: fp('phone') }).decision).toBe('allow');
        const renewed = await g.refresh(phone.refreshToken, { fingerprint: fp('phone') });
        expect(renewed.access.sid).toBe(phone.access.sid);
      });
      expect(bySid(await list())[phone.access.sid]).toMatchObject({ status: 'active', why: null });
    });
  });
}
