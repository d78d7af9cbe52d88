import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createLocalJWKSet, jwtVerify } from 'jose';
import jwt from 'jsonwebtoken';
import { runOk } from '../helpers/cli.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor, openState, withState } from '../helpers/state.js';
import type { Backends } from '../../src/store/open.js';
import { syncKeysToHotStore } from '../../src/state/keys.js';
import type { Guard } from '../../src/guard/index.js';

const secret = randomBytes(32).toString('hex');
const hs = (header: object, payload: object, key: string | Buffer = secret) => {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
};
const now = () => Math.floor(Date.now() / 1000);

// 'postgres' is Postgres without Redis: the hot store on tables, woken by NOTIFY.
for (const c of backendCases('guard', ['postgres+redis', 'postgres', 'embedded'])) {
  describeBackend(c, 'the guard, first cut', () => {
    let guard: Guard;
    // The embedded database is opened by one process at a time: there the guard and the change
    // share one in-process connection, as they would in a single-process service.
    let shared: Backends | undefined;
    const change = async (fn: (b: Backends) => Promise<void>) => (shared ? fn(shared) : withState(c.env, fn));

    beforeAll(async () => {
      await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET'], { env: { ...c.env, JWT_SECRET: secret } });
    });
    afterAll(async () => {
      await guard?.close();
    });

    it('answers for kid-less legacy tokens with the kid-less key, and by exact kid otherwise', async () => {
      if (c.name === 'embedded') shared = await openState(c.env);
      guard = await guardFor(c.env, { pollIntervalMs: c.name === 'embedded' ? 50 : 60_000, ...(shared ? { backends: shared } : {}) });
      const legacy = jwt.sign({ sub: 'alice' }, secret, { algorithm: 'HS256', expiresIn: 60 });
      expect(guard.verify(legacy)).toMatchObject({ decision: 'allow', kid: 'legacy' });
      expect(guard.verify(hs({ alg: 'HS256', kid: 'legacy' }, { sub: 'a', exp: now() + 60 }))).toMatchObject({ decision: 'allow' });
      expect(guard.verify(hs({ alg: 'HS256', kid: 'Legacy' }, { sub: 'a', exp: now() + 60 }))).toMatchObject({ decision: 'deny', reasons: ['kid_unknown'] });
      expect(guard.verify(hs({ alg: 'HS256', kid: 'legacy ' }, { sub: 'a', exp: now() + 60 }))).toMatchObject({ decision: 'deny', reasons: ['kid_unknown'] });
    });

    it('pins the algorithm to the kid and requires exp', () => {
      expect(guard.verify(hs({ alg: 'HS384', kid: 'legacy' }, { sub: 'a', exp: now() + 60 }))).toMatchObject({ decision: 'deny', reasons: ['alg_mismatch'] });
      expect(guard.verify(hs({ alg: 'RS256' }, { sub: 'a', exp: now() + 60 }))).toMatchObject({ decision: 'deny', reasons: ['alg_mismatch'] });
      expect(guard.verify(hs({ alg: 'none' }, { sub: 'a', exp: now() + 60 }))).toMatchObject({ decision: 'deny', reasons: ['alg_none'] });
      expect(guard.verify(hs({ alg: 'HS256' }, { sub: 'a' }))).toMatchObject({ decision: 'deny', reasons: ['exp_missing'] });
      expect(guard.verify(hs({ alg: 'HS256' }, { sub: 'a', exp: now() - 31 }))).toMatchObject({ decision: 'deny', reasons: ['expired'] });
      expect(guard.verify(hs({ alg: 'HS256' }, { sub: 'a', exp: now() + 60 }, 'x'.repeat(64)))).toMatchObject({ decision: 'deny', reasons: ['bad_signature'] });
    });

    it('follows a change made through the same store API the CLI uses, without a restart', async () => {
      const before = guard.version;
      const token = hs({ alg: 'HS256' }, { sub: 'bob', exp: now() + 60, iat: now() - 5 });
      expect(guard.verify(token).decision).toBe('allow');
      await change(async (b) => {
        await b.db.query(`UPDATE keys SET state = 'disabled' WHERE kid = 'legacy'`);
        await syncKeysToHotStore(b.db, b.hot);
      });
      const t0 = Date.now();
      while (guard.version === before && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      // Polling is a minute on the server backends, so there this can only be the push (Redis Stream / NOTIFY).
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(guard.verify(token)).toMatchObject({ decision: 'deny', reasons: ['key_disabled'] });
      await change(async (b) => {
        await b.db.query(`UPDATE keys SET state = 'active' WHERE kid = 'legacy'`);
        await syncKeysToHotStore(b.db, b.hot);
      });
      await guard.close();
      await shared?.close();
    });

    it('issues with an asymmetric key after a rotation, and jose verifies the token against the published JWKS', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-jwks-'));
      await runOk(['rotate', '--staged', '--alg', 'ES256', '--grace', '5m', '--publish-wait', '0s', '--yes'], { env: c.env });
      await runOk(['keys', 'publish', '--out', path.join(dir, 'jwks.json')], { env: c.env });
      guard = await guardFor(c.env);
      const issued = await guard.issue({ sub: 'carol', roles: ['customer'], ttlSec: 300, fph: 'f'.repeat(64) });
      // The token is bound to its device: it passes only with that device's fingerprint.
      expect(guard.authorize(issued.token, { fingerprint: 'f'.repeat(64) })).toMatchObject({ decision: 'allow', kid: issued.kid });
      expect(guard.verify(issued.token)).toMatchObject({ decision: 'deny', reasons: ['fingerprint_missing'] });
      const jwks = createLocalJWKSet(JSON.parse(readFileSync(path.join(dir, 'jwks.json'), 'utf8')));
      const { payload, protectedHeader } = await jwtVerify(issued.token, jwks, { algorithms: ['ES256'] });
      expect(protectedHeader).toMatchObject({ alg: 'ES256', kid: issued.kid });
      expect(payload).toMatchObject({ sub: 'carol', sid: issued.sid, jti: issued.jti, fph: 'f'.repeat(64) });
      // The legacy secret still verifies during its grace period.
      expect(guard.verify(jwt.sign({ sub: 'alice' }, secret, { algorithm: 'HS256', expiresIn: 60 })).decision).toBe('allow');
    });

    it('refuses to start without the KEK when an HS256 key must be verified', async () => {
      const { JWTIR_KEK: _, ...noKek } = c.env;
      await guard.close();
      await expect(guardFor({ ...noKek, JWTIR_KEK: '' }, { kek: undefined })).rejects.toThrow(/HS256 and the guard has no KEK/);
    });
  });
}
