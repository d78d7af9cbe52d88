// Shared by the benchmarks: the real CLI as a child process, and cleanup of what a run created.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = (p) => new URL(`../dist/${p}`, import.meta.url).href;
export const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Runs bin/jwtir with only PATH, HOME and `env`; resolves with its stdout, rejects (with both streams) on a non-zero exit. */
export function runCli(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'jwtir'), ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`jwtir ${args.join(' ')} exited ${code}:\n${stdout}${stderr}`))));
  });
}

export async function dropSchema(schema) {
  try {
    const { openPostgres } = await import(DIST('store/postgres.js'));
    const db = await openPostgres(PG_URL, 'public', { max: 1 });
    try {
      await db.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await db.close();
    }
    return true;
  } catch (error) {
    process.stderr.write(`could not drop schema ${schema}: ${error?.message ?? error}\n`);
    return false;
  }
}

export async function deleteRedisPrefix(prefix) {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) deleted += await client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    return deleted;
  } catch (error) {
    process.stderr.write(`could not delete Redis keys under ${prefix}: ${error?.message ?? error}\n`);
    return 0;
  } finally {
    client.disconnect();
  }
}

/** The environment of a benchmark's own state: a fresh schema `<label>_<id>` and Redis prefix `jwtir-<label>:<id>:`. */
export function benchEnv(label) {
  const id = randomBytes(4).toString('hex');
  return {
    DATABASE_URL: PG_URL,
    REDIS_URL,
    JWTIR_SCHEMA: `${label}_${id}`,
    JWTIR_REDIS_PREFIX: `jwtir-${label}:${id}:`,
    JWTIR_KEK: randomBytes(32).toString('base64'),
    JWTIR_ACTOR: 'bench@jwtir',
    CI: 'true',
    NO_COLOR: '1',
  };
}
