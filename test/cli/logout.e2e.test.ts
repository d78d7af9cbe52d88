import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, withGuard, withState } from '../helpers/state.js';
import { cohortOf, REFRESH_INVALID, type Guard, type Reason } from '../../src/guard/index.js';

/**
 * `jwtir logout` end to end: each selector through the real binary, observed by a guard (on
 * postgres+redis one that runs all along and polls once a minute, so only the push feed can
 * tell it), the refresh token of an ended session refused, the dry run's counts equal to the
 * run's, and the rollback of each mechanism restoring access.
 */
const secret = randomBytes(32).toString('hex');
const fp = (label: string) => createHash('sha256').update(label).digest('hex');
const HOUR = 3600_000;

interface CastToken {
  name: string;
  sub: string;
  sid: string;
  kid: string;
  iat: number;
  fph?: string;
  token: string;
  refresh: string;
}

/** Who is logged in, and on what: legacy-key sessions from before a rotation, new-key ones after. */
const LEGACY_LOGINS = [
  { name: 'alice-laptop', sub: 'alice', fph: fp('A') },
  { name: 'alice-phone', sub: 'alice', fph: fp('B') },
  { name: 'bob', sub: 'bob', roles: ['admin'] },
  { name: 'carol-x', sub: 'carol', fph: fp('X') },
  { name: 'dave-1', sub: 'dave', fph: fp('D1') },
  { name: 'dave-2', sub: 'dave', fph: fp('D2') },
  { name: 'erin', sub: 'erin' },
];
const NEW_LOGINS = [
  { name: 'carol-y', sub: 'carol', fph: fp('Y') },
  { name: 'frank', sub: 'frank' },
];

interface Case {
  title: string;
  /** A function where the args name something made in setup (the new key's kid). */
  args: string[] | (() => string[]);
  /** The tokens it ends, with the reason the guard gives; every other token must still pass. */
  ends: (t: CastToken) => Reason | undefined;
  mechanism: 'by-key' | 'users' | 'sessions';
}

for (const c of backendCases('logout', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir logout', () => {
    const env = c.env;
    const cast: CastToken[] = [];
    let live: Guard | undefined;
    let alertedSid: string;

    async function login(g: Guard, l: { name: string; sub: string; fph?: string; roles?: string[] }, ttlSec = 1800): Promise<CastToken> {
      const s = await g.login({ sub: l.sub, roles: l.roles ?? ['customer'], ttlSec, ...(l.fph ? { fph: l.fph } : {}) });
      const iat = JSON.parse(Buffer.from(s.access.token.split('.')[1]!, 'base64url').toString()).iat as number;
      return { name: l.name, sub: l.sub, sid: s.access.sid, kid: s.access.kid, iat, token: s.access.token, refresh: s.refreshToken, ...(l.fph ? { fph: l.fph } : {}) };
    }

    /** Runs a check on a guard: the live one (retried up to 2 s, so the push has to deliver), or a fresh one on the embedded default. */
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

    const verdicts = (g: Guard) =>
      Object.fromEntries(
        cast.map((t) => {
          const v = g.authorize(t.token, t.fph ? { fingerprint: t.fph } : {});
          return [t.name, v.decision === 'allow' ? 'allow' : `${v.decision}:${v.reasons.join(',')}`];
        }),
      );
    const expected = (ends: Case['ends']) => Object.fromEntries(cast.map((t) => [t.name, ends(t) ? `deny:${ends(t)}` : 'allow']));

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await withGuard(env, async (g) => {
        for (const l of LEGACY_LOGINS) cast.push(await login(g, l));
      });
      // Olga logged in two hours ago (tokens live three hours): --issued-before 1h ends her and nobody else.
      await withGuard(env, async (g) => void cast.push(await login(g, { name: 'olga-old-legacy', sub: 'olga' }, 3 * 3600)), { now: () => Date.now() - 2 * HOUR });
      await runOk(['rotate', '--staged', '--grace', '2h', '--publish-wait', '0s', '--privileged-roles', '', '--yes', '--json'], { env });
      await withGuard(env, async (g) => {
        for (const l of NEW_LOGINS) cast.push(await login(g, l));
        // A stolen token: dave's first session used from another device raises an alert naming it.
        const dave = cast.find((t) => t.name === 'dave-1')!;
        alertedSid = dave.sid;
        expect(g.authorize(dave.token, { fingerprint: fp('elsewhere') })).toMatchObject({ decision: 'deny', reasons: ['fingerprint_mismatch'] });
        await g.flush();
      });
      await withGuard(env, async (g) => void cast.push(await login(g, { name: 'olga-old-new', sub: 'olga' }, 3 * 3600)), { now: () => Date.now() - 2 * HOUR });
      await withState(env, async (b) => {
        // The database stamped olga's refresh tokens with its own clock; they belong two hours back too.
        await b.db.query(`UPDATE refresh_tokens SET issued_at = issued_at - interval '2 hours' WHERE sub = 'olga'`);
        // An alert that names only a user (a forged token without a session id): --suspicious leaves erin be.
        await b.db.query(`INSERT INTO alerts (kind, sub, kid, detail) VALUES ('forged_token', 'erin', 'legacy', '{"reason":"forged_unknown_session"}')`);
      });
      expect(new Set(cast.map((t) => t.kid)).size).toBe(2);
      if (c.name !== 'embedded') live = await guardFor(env, { pollIntervalMs: 60_000 });
      await observe((g) => expect(verdicts(g)).toEqual(expected(() => undefined)));
    });

    afterAll(async () => {
      await live?.close();
    });

    const frankCohort = cohortOf('frank');
    const newKid = () => cast.find((t) => t.name === 'frank')!.kid;
    const cases: Case[] = [
      { title: '--kid legacy', args: ['--kid', 'legacy'], mechanism: 'by-key', ends: (t) => (t.kid === 'legacy' ? 'revoked_kid' : undefined) },
      { title: '--cohort <frank\'s>', args: ['--cohort', `${frankCohort}`], mechanism: 'by-key', ends: (t) => (cohortOf(t.sub) === frankCohort ? 'revoked_cohort' : undefined) },
      {
        title: "--kid <new> --cohort <frank's>",
        args: () => ['--kid', newKid(), '--cohort', `${frankCohort}`],
        mechanism: 'by-key',
        ends: (t) => (t.kid === newKid() && cohortOf(t.sub) === frankCohort ? 'revoked_cohort' : undefined),
      },
      { title: '--issued-before 1h', args: ['--issued-before', '1h'], mechanism: 'by-key', ends: (t) => (t.iat * 1000 < Date.now() - HOUR ? 'revoked_kid' : undefined) },
      { title: '--user alice', args: ['--user', 'alice'], mechanism: 'users', ends: (t) => (t.sub === 'alice' ? 'revoked_user' : undefined) },
      { title: '--role admin', args: ['--role', 'admin'], mechanism: 'users', ends: (t) => (t.sub === 'bob' ? 'revoked_user' : undefined) },
      { title: '--device <carol\'s X>', args: ['--device', fp('X')], mechanism: 'sessions', ends: (t) => (t.name === 'carol-x' ? 'revoked_session' : undefined) },
      {
        title: '--suspicious',
        args: ['--suspicious', '--since', '1h'],
        mechanism: 'sessions',
        ends: (t) => (t.sid === alertedSid ? 'revoked_session' : undefined),
      },
    ];

    for (const k of cases) {
      it(`logout ${k.title}: the dry run counts what the run ends, the guard denies exactly those, refresh fails, rollback restores`, async () => {
        const args = typeof k.args === 'function' ? k.args() : k.args;
        const dry = await runOk(['logout', ...args, '--dry-run', '--json'], { env });
        const planned = dry.json.plan.steps.filter((s: { runs: boolean }) => s.runs);
        expect(planned.map((s: { id: string }) => s.id)).toEqual([k.mechanism]);

        const res = await runOk(['logout', ...args, '--yes', '--json'], { env });
        expect(res.json.status).toBe('done');
        const step = res.json.steps.find((s: { state: string }) => s.state === 'done');
        expect(step.step).toBe(k.mechanism);
        expect({ sessions: step.outputs.sessions, users: step.outputs.users }).toEqual({ sessions: planned[0].impact.sessions, users: planned[0].impact.users });
        const endedCast = cast.filter((t) => k.ends(t));
        expect(endedCast.length).toBeGreaterThan(0);
        // The cast is every session in the ledger except alice's logins again in an earlier case.
        expect(step.outputs.sessions).toBeGreaterThanOrEqual(endedCast.length);
        expect(step.outputs.refreshTokens).toBeGreaterThanOrEqual(endedCast.length);

        const victim = endedCast[0]!;
        try {
          await observe(async (g) => {
            expect(verdicts(g)).toEqual(expected(k.ends));
            // A forced logout that left the refresh token alive would be no logout.
            await expect(g.refresh(victim.refresh, victim.fph ? { fingerprint: victim.fph } : {})).rejects.toMatchObject({ code: REFRESH_INVALID });
          });

          if (k.mechanism === 'users' && k.title.includes('alice')) {
            // A user logged out by watermark logs in again, and the new token passes at once.
            await observe(async (g) => {
              const again = await g.login({ sub: 'alice', roles: ['customer'], fph: fp('A') });
              expect(g.authorize(again.access.token, { fingerprint: fp('A') })).toMatchObject({ decision: 'allow', sub: 'alice' });
            });
          }
        } finally {
          // Rolled back even when an assertion failed, so one failure does not cascade into the next case.
          const undone = await runOk(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env });
          expect(undone.json.status).toBe('rolled_back');
        }
        await observe(async (g) => {
          expect(verdicts(g)).toEqual(expected(() => undefined));
          const renewed = await g.refresh(victim.refresh, victim.fph ? { fingerprint: victim.fph } : {});
          expect(renewed.access.sid).toBe(victim.sid);
          victim.refresh = renewed.refreshToken;
        });
        // Cut-offs are whole seconds: a session renewed in the same second as the next case's cut-off
        // counts as renewed after it and is revoked one by one (revoked_session, not the case's reason).
        await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
      });
    }

    it('logout --notify tells exactly the logged-out users why, through the outbox; rollback withdraws it', async () => {
      const outbox = () =>
        withState(env, (b) => b.db.query<{ sub: string; kind: string; reason: string | null }>(`SELECT sub, kind, payload->>'reason' AS reason FROM notify_outbox ORDER BY sub`));
      const before = await outbox();
      const res = await runOk(['logout', '--role', 'admin', '--notify', '--reason', 'security incident: please sign in again', '--yes', '--json'], { env });
      expect(res.json.steps.filter((s: { state: string }) => s.state === 'done').map((s: { step: string }) => s.step)).toEqual(['users', 'notify-users']);
      expect((await outbox()).slice(before.length)).toEqual([{ sub: 'bob', kind: 'forced_logout', reason: 'security incident: please sign in again' }]);
      await runOk(['runs', 'rollback', String(res.json.runId), '--yes', '--json'], { env });
      expect(await outbox()).toEqual(before);
      await observe((g) => expect(verdicts(g)).toEqual(expected(() => undefined)));
    });

    it('a dry run changes nothing: no run, no audit row, no watermark, revocation or revoked refresh token', async () => {
      const counts = () =>
        withState(env, async (b) => {
          const [row] = await b.db.query(
            `SELECT (SELECT count(*) FROM runs)::int AS runs, (SELECT count(*) FROM audit)::int AS audit,
                    (SELECT count(*) FROM watermarks WHERE cleared_at IS NULL)::int AS watermarks,
                    (SELECT count(*) FROM revocations WHERE lifted_at IS NULL)::int AS revocations,
                    (SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL)::int AS refresh`,
          );
          return row;
        });
      if (live) await live.close();
      live = undefined;
      const before = await counts();
      for (const args of [['--kid', 'legacy'], ['--role', 'admin'], ['--device', fp('X')], ['--suspicious']]) {
        const dry = await runOk(['logout', ...args, '--dry-run', '--json'], { env });
        expect(dry.json.dryRun).toBe(true);
      }
      expect(await counts()).toEqual(before);
    });
  });
}
