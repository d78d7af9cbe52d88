import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, openState, withState } from '../helpers/state.js';
import { GuardError, REFRESH_INVALID, SESSION_NOT_FOUND, type Guard, type Session } from '../../src/guard/index.js';
import type { Backends } from '../../src/store/open.js';

/**
 * The guard's session API for a signed-in user (PLAYBOOK E2): list my sessions with device,
 * place, first and last seen; end one of mine, never someone else's.
 */
const secret = randomBytes(32).toString('hex');
const fp = (label: string) => createHash('sha256').update(label).digest('hex');

for (const c of backendCases('guard_sessions', ['postgres+redis', 'embedded'])) {
  describeBackend(c, "the guard's session API", () => {
    let guard: Guard;
    /** A second instance, as another gateway node would be. */
    let other: Guard | undefined;
    let shared: Backends | undefined;
    let clock = Date.now();
    let laptop: Session;
    let phone: Session;
    let victor: Session;

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET'], { env: { ...c.env, JWT_SECRET: secret } });
      // The embedded database is opened by one process at a time: both instances share one connection there.
      if (c.name === 'embedded') shared = await openState(c.env);
      const opts = { now: () => clock, ...(shared ? { backends: shared } : { pollIntervalMs: 60_000 }) };
      guard = await guardFor(c.env, opts);
      if (!shared) other = await guardFor(c.env, opts);
      laptop = await guard.login({ sub: 'uma', fph: fp('laptop'), device: 'Firefox on Linux', place: 'Berlin, DE' });
      clock += 1000;
      phone = await guard.login({ sub: 'uma', fph: fp('phone'), device: 'Safari on iPhone' });
      victor = await guard.login({ sub: 'victor', device: 'Chrome on Windows', place: 'Lyon, FR' });
    });

    afterAll(async () => {
      await other?.close();
      await guard?.close();
      await shared?.close();
    });

    it("lists the user's live sessions, newest first, with device, place and expiry, marking the caller's own", async () => {
      const mine = await guard.sessions('uma', laptop.access.sid);
      expect(mine).toEqual([
        { sid: phone.access.sid, device: 'Safari on iPhone', place: null, firstSeen: new Date(Math.floor(clock / 1000) * 1000), lastSeen: null, expiresAt: phone.refreshExpiresAt, current: false },
        { sid: laptop.access.sid, device: 'Firefox on Linux', place: 'Berlin, DE', firstSeen: new Date(Math.floor((clock - 1000) / 1000) * 1000), lastSeen: null, expiresAt: laptop.refreshExpiresAt, current: true },
      ]);
      expect((await guard.sessions('victor')).map((s) => s.sid)).toEqual([victor.access.sid]);
      expect(await guard.sessions('nobody')).toEqual([]);
    });

    it('lastSeen is written after a token is used, and moves on in a later minute', async () => {
      expect(guard.authorize(laptop.access.token, { fingerprint: fp('laptop') }).decision).toBe('allow');
      await guard.flush();
      const first = (await guard.sessions('uma')).find((s) => s.sid === laptop.access.sid)!.lastSeen;
      expect(first).toBeInstanceOf(Date);
      // Backdate it, then use the token again a minute later: the sighting is recorded again.
      const backdate = `UPDATE sessions SET last_seen_at = now() - interval '1 hour' WHERE sid = $1`;
      await (shared ? shared.db.query(backdate, [laptop.access.sid]) : withState(c.env, (b) => b.db.query(backdate, [laptop.access.sid])));
      const backdated = (await guard.sessions('uma')).find((s) => s.sid === laptop.access.sid)!.lastSeen!;
      clock += 60_000;
      expect(guard.authorize(laptop.access.token, { fingerprint: fp('laptop') }).decision).toBe('allow');
      await guard.flush();
      const later = (await guard.sessions('uma')).find((s) => s.sid === laptop.access.sid)!.lastSeen!;
      expect(later.getTime()).toBeGreaterThan(backdated.getTime() + 50 * 60_000);
      // A session whose tokens were never allowed has no last-seen time.
      expect((await guard.sessions('uma')).find((s) => s.sid === phone.access.sid)!.lastSeen).toBeNull();
    });

    it("refuses to end another user's session, or an unknown one, with one code, and changes nothing", async () => {
      for (const sid of [victor.access.sid, 'no-such-session']) {
        const error = await guard.endSession('uma', sid).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(GuardError);
        expect(error).toMatchObject({ code: SESSION_NOT_FOUND, message: 'no such session for this user' });
      }
      expect(guard.authorize(victor.access.token).decision).toBe('allow');
      expect((await guard.sessions('victor')).map((s) => s.sid)).toEqual([victor.access.sid]);
    });

    it('ends one of the user\'s own sessions: denied at once here and at another instance, gone from the list, not renewable', async () => {
      await guard.endSession('uma', phone.access.sid);
      expect(guard.authorize(phone.access.token, { fingerprint: fp('phone') })).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] });
      expect(guard.authorize(laptop.access.token, { fingerprint: fp('laptop') }).decision).toBe('allow');
      if (other) {
        // The other instance polls once a minute: only the push can tell it, within the propagation bound.
        const deadline = Date.now() + 2000;
        while (other.authorize(phone.access.token, { fingerprint: fp('phone') }).decision === 'allow' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        expect(other.authorize(phone.access.token, { fingerprint: fp('phone') })).toMatchObject({ decision: 'deny', reasons: ['revoked_session'] });
      }
      expect((await guard.sessions('uma', laptop.access.sid)).map((s) => s.sid)).toEqual([laptop.access.sid]);
      await expect(guard.refresh(phone.refreshToken, { fingerprint: fp('phone') })).rejects.toMatchObject({ code: REFRESH_INVALID });
    });

    it('issue() records device and place in the ledger without putting them in the token', async () => {
      const issued = await guard.issue({ sub: 'walt', device: 'curl', place: 'Nowhere' });
      const claims = JSON.parse(Buffer.from(issued.token.split('.')[1]!, 'base64url').toString());
      expect(claims).not.toHaveProperty('device');
      expect(claims).not.toHaveProperty('place');
      expect(await guard.sessions('walt')).toMatchObject([{ sid: issued.sid, device: 'curl', place: 'Nowhere', expiresAt: issued.expiresAt }]);
    });
  });
}
