import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { resolveSettings } from '../../src/config/settings.js';
import { recordSessions, type LedgerSession } from '../../src/state/ledger.js';
import { openBackends, type Backends } from '../../src/store/open.js';
import { createGuard, type Guard, type GuardOptions } from '../../src/guard/index.js';

/** Opens the same state the CLI uses for this environment (library side, same process as the test). */
export async function openState(env: Record<string, string>): Promise<Backends> {
  return openBackends(resolveSettings({}, { ...env }));
}

export async function withState<T>(env: Record<string, string>, fn: (b: Backends) => Promise<T>): Promise<T> {
  const b = await openState(env);
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

/** A guard on this environment's state. */
export function guardFor(env: Record<string, string>, extra: GuardOptions = {}): Promise<Guard> {
  return createGuard({
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    stateDir: env.JWTIR_STATE_DIR,
    schema: env.JWTIR_SCHEMA,
    redisPrefix: env.JWTIR_REDIS_PREFIX,
    kek: env.JWTIR_KEK,
    ...extra,
  });
}

export async function withGuard<T>(env: Record<string, string>, fn: (g: Guard) => Promise<T>, extra: GuardOptions = {}): Promise<T> {
  const g = await guardFor(env, extra);
  try {
    return await fn(g);
  } finally {
    await g.close();
  }
}

export interface LegacyToken {
  sub: string;
  sid: string;
  roles: string[];
  token: string;
}

/**
 * A realistic legacy service: `count` sessions whose access tokens were minted by the
 * `jsonwebtoken` package with the shared secret, the way such services commonly do it (no kid,
 * HS256, iat and exp). Every `privilegedEvery`-th user is an admin, the next one staff.
 */
export function legacyService(
  secret: string,
  kid: string,
  count: number,
  opts: { privilegedEvery?: number; lifetimeSec?: number; nowSec?: number; tokenFor?: (i: number, roles: string[]) => boolean } = {},
) {
  const every = opts.privilegedEvery ?? 100;
  const lifetime = opts.lifetimeSec ?? 3600;
  const now = opts.nowSec ?? Math.floor(Date.now() / 1000);
  const tokens: LegacyToken[] = [];
  const sessions: LedgerSession[] = [];
  for (let i = 0; i < count; i++) {
    const sub = `user-${i}`;
    const roles = i % every === 0 ? ['admin'] : i % every === 1 ? ['staff'] : ['customer'];
    const sid = randomUUID();
    // Issued within the last 30 minutes, so every token is still live.
    const iat = now - 60 - (i % 1800);
    // jsonwebtoken takes ~0.4 ms a token here, so large ledgers mint tokens for a chosen subset.
    if (!opts.tokenFor || opts.tokenFor(i, roles)) {
      const token = jwt.sign({ sub, sid, roles, iat }, secret, { algorithm: 'HS256', expiresIn: lifetime });
      tokens.push({ sub, sid, roles, token });
    }
    sessions.push({ sid, sub, kid, roles, fph: null, issuedAt: new Date(iat * 1000), expiresAt: new Date((iat + lifetime) * 1000), source: 'import' });
  }
  return { tokens, sessions };
}

export async function seedLedger(env: Record<string, string>, sessions: LedgerSession[]): Promise<void> {
  await withState(env, (b) => recordSessions(b.db, sessions));
}
