import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk } from '../helpers/cli.js';
import { expectFailure } from '../helpers/failure.js';
import { createSessionsTable, insertSessions, sql } from '../helpers/ledger-sources.js';
import { backendCases, describeBackend, PG_URL, REDIS_URL } from '../helpers/services.js';
import { legacyService, seedLedger, withState } from '../helpers/state.js';

/**
 * Every bad source is refused with exit 2, a stable code and a message naming the column, line
 * or key, and changes nothing: the ledger, runs, audit trail and import bookkeeping stay as they
 * were, even when the bad row comes after a chunk of good ones was already staged.
 */
const secret = randomBytes(32).toString('hex');
const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-ledger-bad-'));
const line = (i: number) => JSON.stringify({ sid: `s-${i}`, sub: `u-${i}`, issued_at: 1_700_000_000 + i, expires_at: 1_700_003_600 + i });
// 10,001 good lines (a full staged chunk) and then three bad ones.
const BROKEN = path.join(dir, 'broken.ndjson');
writeFileSync(BROKEN, [...Array.from({ length: 10_001 }, (_, i) => line(i)), '{"sid": "s-x", "sub":', line(20_000), '{"sid":"s-y","sub":"u","issued_at":"later","expires_at":1700003600}', '[1,2]'].join('\n') + '\n');

for (const c of backendCases('ledger_bad', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'ledger import: bad input gets a clear error and changes nothing', () => {
    const env = c.env;
    const schema = `app_bad_${randomBytes(4).toString('hex')}`;
    const prefix = `sess-bad-${randomBytes(4).toString('hex')}:`;
    let redis: Redis | undefined;
    let before: Awaited<ReturnType<typeof snapshot>>;

    async function snapshot() {
      return withState(env, async (b) => {
        const count = async (table: string) => (await b.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n;
        const [ledger] = await b.db.query<{ h: string }>(`SELECT md5(string_agg(sid || sub || coalesce(import_run, 0)::text, ',' ORDER BY sid)) AS h FROM sessions`);
        return {
          ledger: ledger!.h,
          sessions: await count('sessions'),
          runs: await count('runs'),
          audit: await count('audit'),
          imports: await count('ledger_imports'),
          staged: await count('ledger_staging'),
          sources: await count('ledger_sources'),
        };
      });
    }

    beforeAll(async () => {
      await runOk(['init', '--json'], { env });
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
      await seedLedger(env, legacyService(secret, 'legacy', 20, { tokenFor: () => false }).sessions);
      await createSessionsTable(schema);
      await insertSessions(schema, ['alice', 'bob'], () => 60);
      redis = new Redis(REDIS_URL);
      const cookie = { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000).toISOString() };
      await redis.set(`${prefix}good`, JSON.stringify({ cookie, userId: 'alice' }));
      await redis.set(`${prefix}broken`, '{"cookie": {"originalMaxAge": 3600000');
      before = await snapshot();
      expect(before.sessions).toBe(20);
    });

    afterAll(async () => {
      await redis?.del(`${prefix}good`, `${prefix}broken`);
      redis?.disconnect();
      await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    });

    it('a query that returns no session-id column: the error lists its columns and the --map to pass', async () => {
      const query = `SELECT user_id, created_at, expires_at FROM ${schema}.app_sessions`;
      const res = await runCli(['ledger', 'import', '--from-sql', query, '--source-url', PG_URL, '--map', 'sub=user_id,issued_at=created_at', '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_LEDGER_MAPPING');
      expect(err.message).toBe('the query returns no column "sid" for the session id (sid); its columns: user_id, created_at, expires_at');
      expect(err.hint).toContain('--map sid=<column>');
      expect(err.hint).toContain('nothing was changed');
    });

    it('a file with broken lines: each is named by its line number, and the chunk already staged is gone', async () => {
      const res = await runCli(['ledger', 'import', '--from-file', BROKEN, '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_LEDGER_ROWS_INVALID');
      expect(err.message).toContain(`NDJSON file ${BROKEN} has 3 rows that cannot be sessions:`);
      expect(err.message).toMatch(/\n {2}line 10002: not valid JSON \(/);
      expect(err.message).toContain('\n  line 10004: issued_at (issued_at) "later" is not a time (ISO 8601, or epoch seconds or milliseconds)');
      expect(err.message).toContain('\n  line 10005: not a JSON object');
      expect(err.message).not.toContain('line 10003');
      expect(err.hint).toContain('nothing was imported');
    });

    it('a Redis value that is not JSON: the key is named', async () => {
      const res = await runCli(['ledger', 'import', '--from-redis', `${prefix}*`, '--source-redis-url', REDIS_URL, '--map', 'sub=userId', '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_LEDGER_ROWS_INVALID');
      expect(err.message).toMatch(new RegExp(`has 1 row that cannot be sessions:\\n {2}key ${prefix}broken: not valid JSON \\(`));
    });

    it('a password in --source-url or --source-redis-url is refused and never printed', async () => {
      const pgUrl = new URL(PG_URL);
      pgUrl.username = 'reader';
      pgUrl.password = 'hunter2-pg';
      const res = await runCli(['ledger', 'import', '--from-sql', 'SELECT 1', '--source-url', pgUrl.toString(), '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_SECRET_IN_ARGV');
      expect(err.hint).toContain('--source-url-env <VAR>');
      const r = await runCli(['ledger', 'import', '--from-redis', 'sess:*', '--source-redis-url', 'redis://:hunter2-redis@127.0.0.1:6379', '--yes', '--json'], { env });
      expectFailure(r, ExitCode.usage, 'ERR_SECRET_IN_ARGV');
      expect(res.stdout + res.stderr + r.stdout + r.stderr).not.toMatch(/hunter2/);
    });

    it('an unknown --kid', async () => {
      const res = await runCli(['ledger', 'import', '--from-file', BROKEN, '--kid', 'nope', '--yes', '--json'], { env });
      const err = expectFailure(res, ExitCode.usage, 'ERR_KID_UNKNOWN');
      expect(err.hint).toContain('known kids: legacy');
    });

    it('left the ledger, runs, audit trail and import bookkeeping exactly as they were', async () => {
      expect(await snapshot()).toEqual(before);
    });
  });
}
