import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { runOk, type CliResult } from '../helpers/cli.js';
import { createSessionsTable, insertSessions, serviceToken, sql, startSessionApp, type AppSession, type SessionApp } from '../helpers/ledger-sources.js';
import { backendCases, describeBackend, PG_URL, REDIS_URL } from '../helpers/services.js';
import { withGuard, withState } from '../helpers/state.js';

/**
 * A legacy service as it is: its sessions in its own Postgres table, in an NDJSON export, and in
 * an express-session store in Redis; its tokens minted by jsonwebtoken with the leaked secret.
 * jwtir imports all three into its ledger through the real binary, incrementally, and after
 * `rotate --compromised` the guard tells the service's real tokens from forged ones.
 */
const secret = randomBytes(32).toString('hex');
const HOUR = 3600;
const nowSec = () => Math.floor(Date.now() / 1000);
const fileLine = (i: number, issuedAt: number) =>
  JSON.stringify({ sid: `f-${i}`, sub: `file-user-${i}`, issued_at: issuedAt, expires_at: new Date((issuedAt + HOUR) * 1000).toISOString(), roles: 'customer,beta' });
const outputs = (res: CliResult) => res.json.steps[0].outputs;

for (const c of backendCases('ledger', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir ledger import from the places a service keeps its sessions', () => {
    const env = c.env;
    const schema = `app_${randomBytes(4).toString('hex')}`;
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-ledger-')), 'sessions.ndjson');
    const SQL = ['ledger', 'import', '--from-sql', `SELECT * FROM ${schema}.app_sessions`, '--source-url', PG_URL, '--map', 'sid=id,sub=user_id,issued_at=created_at,device=user_agent', '--yes', '--json'];
    const FILE = ['ledger', 'import', '--from-file', file, '--yes', '--json'];
    let REDIS: string[];
    let app: SessionApp;
    let fromSql: AppSession[];
    const fromRedis: Array<{ user: string; sid: string; token: string; at: number }> = [];

    async function login(user: string) {
      const at = Date.now();
      fromRedis.push({ user, at, ...(await app.login(user)) });
    }

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await createSessionsTable(schema);
      fromSql = await insertSessions(schema, Array.from({ length: 40 }, (_, i) => `sql-user-${i}`), (i) => 900 - i * 10, (i) => (i === 0 ? ['admin'] : ['customer']));
      const t = nowSec() - 600;
      writeFileSync(file, Array.from({ length: 30 }, (_, i) => fileLine(i, t + i)).join('\n') + '\n');
      app = await startSessionApp(secret);
      for (let i = 0; i < 10; i++) await login(`redis-user-${i}`);
      REDIS = ['ledger', 'import', '--from-redis', `${app.prefix}*`, '--source-redis-url', REDIS_URL, '--map', 'sub=userId', '--yes', '--json'];
    });

    afterAll(async () => {
      await app?.close();
      await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    });

    it('imports a Postgres sessions table (--map), an NDJSON file and an express-session store in Redis', async () => {
      expect(outputs(await runOk(SQL, { env }))).toMatchObject({ read: 40, new: 40, known: 0, pushed: 0 });
      expect(outputs(await runOk(FILE, { env }))).toMatchObject({ read: 30, new: 30, known: 0, mark: { lines: 30 } });
      expect(outputs(await runOk(REDIS, { env }))).toMatchObject({ read: 10, new: 10, known: 0, mark: null });

      const rows = await withState(env, (b) =>
        b.db.query<{ sid: string; sub: string; kid: string; roles: string[]; issued_at: Date; expires_at: Date; device: string | null; source: string }>(
          'SELECT sid, sub, kid, roles, issued_at, expires_at, device, source FROM sessions',
        ),
      );
      const bySid = new Map(rows.map((r) => [r.sid, r]));
      expect(rows).toHaveLength(80);
      const admin = bySid.get(fromSql[0]!.id)!;
      expect(admin).toMatchObject({ sub: 'sql-user-0', kid: 'legacy', roles: ['admin'], device: 'Firefox on Linux', source: 'import:sql' });
      expect(new Date(admin.issued_at).getTime()).toBe(fromSql[0]!.createdAt.getTime());
      expect(bySid.get('f-7')).toMatchObject({ sub: 'file-user-7', roles: ['customer', 'beta'], source: 'import:ndjson', device: null });
      for (const s of fromRedis) {
        const r = bySid.get(s.sid)!;
        expect(r).toMatchObject({ sub: s.user, kid: 'legacy', source: 'import:redis' });
        // express-session keeps no issue time: @cookie reads it as cookie.expires - originalMaxAge (the login).
        expect(Math.abs(new Date(r.issued_at).getTime() - s.at)).toBeLessThan(2000);
        // The hour the cookie was given. express-session stores originalMaxAge as `expires - now`
        // read just after setting expires, so a millisecond that ticks in between makes it 3599999.
        expect(Math.abs(new Date(r.expires_at).getTime() - new Date(r.issued_at).getTime() - HOUR * 1000)).toBeLessThanOrEqual(5);
      }
    });

    it('a re-run imports only what is new; with nothing new, only the audit trail changes', async () => {
      await insertSessions(schema, ['sql-late-0', 'sql-late-1', 'sql-late-2'], () => 5);
      appendFileSync(file, [30, 31].map((i) => fileLine(i, nowSec() - 5)).join('\n') + '\n');
      await login('redis-late-0');

      // SQL reads from the mark on (the row at the mark again, as known); the file from its byte offset.
      expect(outputs(await runOk(SQL, { env }))).toMatchObject({ read: 4, new: 3, known: 1 });
      expect(outputs(await runOk(FILE, { env }))).toMatchObject({ read: 2, new: 2, known: 0, mark: { lines: 32 } });
      expect(outputs(await runOk(REDIS, { env }))).toMatchObject({ read: 11, new: 1, known: 10 });

      const before = await ledgerState(env);
      expect(before.sessions).toBe(86);
      const again = await runOk(FILE, { env });
      expect(again.json.status).toBe('done');
      expect(outputs(again)).toMatchObject({ read: 0, new: 0, known: 0, mark: { lines: 32 } });
      const after = await ledgerState(env);
      expect({ ...after, audit: 0, runs: 0 }).toEqual({ ...before, audit: 0, runs: 0 });
      expect(after.runs).toBe(before.runs + 1);
      expect(after.audit).toBeGreaterThan(before.audit);
    });

    it('after rotate --compromised: a forged token for a real user is denied, the real tokens pass during grace, and a later import reaches the guard', async () => {
      // A session the service issued before the rotation that is not imported yet.
      const t = nowSec() - 60;
      appendFileSync(file, fileLine(99, t) + '\n');
      const late = serviceToken(secret, 'file-user-99', 'f-99');

      await runOk(['rotate', '--staged', '--compromised', '--publish-wait', '0s', '--grace', '1h', '--yes', '--json'], { env });
      await withGuard(env, async (guard) => {
        const real = fromSql[5]!;
        expect(guard.verify(serviceToken(secret, real.userId, randomUUID()))).toMatchObject({ decision: 'deny', reasons: ['forged_unknown_session'] });
        expect(guard.verify(serviceToken(secret, real.userId, real.id))).toMatchObject({ decision: 'allow', kid: 'legacy', sid: real.id });
        expect(guard.verify(serviceToken(secret, 'file-user-4', 'f-4')).decision).toBe('allow');
        for (const s of fromRedis) expect(guard.verify(s.token)).toMatchObject({ decision: 'allow', sub: s.user });
        expect(guard.verify(late)).toMatchObject({ decision: 'deny', reasons: ['forged_unknown_session'] });
      });

      // Imported now, with the key compromised: pushed to the guards' reference ledger at once.
      expect(outputs(await runOk(FILE, { env }))).toMatchObject({ read: 1, new: 1, pushed: 1 });
      await withGuard(env, async (guard) => {
        expect(guard.verify(late)).toMatchObject({ decision: 'allow', sid: 'f-99' });
      });
    });
  });
}

/** The ledger as rows (hashed), the sources' marks, and how many runs and audit rows exist. */
async function ledgerState(env: Record<string, string>) {
  return withState(env, async (b) => {
    const [s] = await b.db.query<{ n: number; h: string }>(
      `SELECT count(*)::int AS n, md5(string_agg(sid || sub || kid || issued_at::text || expires_at::text || coalesce(import_run, 0)::text, ',' ORDER BY sid)) AS h FROM sessions`,
    );
    const marks = await b.db.query('SELECT id, mark FROM ledger_sources ORDER BY id');
    const [runs] = await b.db.query<{ n: number }>('SELECT count(*)::int AS n FROM runs');
    const [audit] = await b.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit');
    const [staged] = await b.db.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger_staging');
    return { sessions: s!.n, hash: s!.h, marks, runs: runs!.n, audit: audit!.n, staged: staged!.n };
  });
}
