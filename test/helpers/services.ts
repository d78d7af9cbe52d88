import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { describe } from '@jest/globals';

/**
 * The real services every run needs. A missing one fails the run with what to do, instead of
 * silently skipping the suites that need it (`bash .ci/run` starts both when they are stopped).
 */
export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

async function reachable(check: () => Promise<unknown>): Promise<boolean> {
  try {
    await check();
    return true;
  } catch {
    return false;
  }
}

const hasPostgres = await reachable(async () => {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  await c.connect();
  await c.end();
});
const hasRedis = await reachable(async () => {
  // One attempt, no reconnecting in the background: a refused connection must not keep jest alive.
  const r = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
  } finally {
    r.disconnect();
  }
});

if (!hasPostgres || !hasRedis) {
  throw new Error(
    `the tests need Postgres (${hasPostgres ? 'ok' : 'unreachable'} at ${PG_URL}, TEST_DATABASE_URL) and Redis (${hasRedis ? 'ok' : 'unreachable'} at ${REDIS_URL}, TEST_REDIS_URL); ` +
      '`bash .ci/run` installs and starts them, then runs the suite',
  );
}

/** One way of running jwtir against real state; each test file gets its own schema, prefix and directory. */
export interface BackendCase {
  name: 'embedded' | 'postgres' | 'postgres+redis';
  /** Environment for the CLI child process and for library calls. */
  env: Record<string, string>;
}

export function backendCases(label: string, which: Array<BackendCase['name']> = ['embedded', 'postgres+redis']): BackendCase[] {
  return which.map((name) => freshCase(name, label));
}

export function freshCase(name: BackendCase['name'], label: string): BackendCase {
  const id = `${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const kek = randomBytes(32).toString('base64');
  const base: Record<string, string> = { JWTIR_KEK: kek, JWTIR_ACTOR: 'test@jwtir' };
  if (name === 'embedded') {
    return { name, env: { ...base, JWTIR_STATE_DIR: mkdtempSync(path.join(os.tmpdir(), `jwtir-${id}-`)) } };
  }
  const env = { ...base, DATABASE_URL: PG_URL, JWTIR_SCHEMA: `t_${id}` };
  if (name === 'postgres') return { name, env };
  return { name, env: { ...env, REDIS_URL: REDIS_URL, JWTIR_REDIS_PREFIX: `jwtir-test:${id}:` } };
}

/** `describe` for a backend, its name in the title. */
export function describeBackend(c: BackendCase, title: string, body: () => void): void {
  describe(`${title} [${c.name}]`, body);
}
