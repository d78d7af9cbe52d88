import { randomUUID } from 'node:crypto';
import { resolveSettings, type Settings } from '../config/settings.js';
import { open as unseal } from '../crypto/envelope.js';
import { loadKek } from '../crypto/kek.js';
import { recordSessions } from '../state/ledger.js';
import type { Backends } from '../store/open.js';
import { decide, type Verdict } from './decide.js';
import { catchUp, Replica } from './replica.js';
import { signingKeyFrom, signJwt, type SigningKey } from './sign.js';

export interface GuardOptions {
  /** Postgres URL. Default: DATABASE_URL; neither means the embedded database (see stateDir). */
  databaseUrl?: string;
  /** Redis URL. Default: REDIS_URL; neither means the hot store on database tables. */
  redisUrl?: string;
  /** Embedded database directory. Default: JWTIR_STATE_DIR or ./.jwtir. */
  stateDir?: string;
  /** Postgres schema. Default: JWTIR_SCHEMA or `jwtir`. */
  schema?: string;
  /** Redis key prefix. Default: JWTIR_REDIS_PREFIX or `jwtir:`. */
  redisPrefix?: string;
  /** Already opened backends to share (for example in the CLI's own process); not closed by the guard. */
  backends?: Backends;
  /** Key-encryption key, base64 of 32 bytes, needed for HS256 keys. Default: JWTIR_KEK, JWTIR_KEK_FILE or the embedded key file. */
  kek?: string;
  /** Expected `iss`; unchecked when absent. */
  issuer?: string;
  /** Expected `aud`; unchecked when absent. */
  audience?: string;
  /** Clock skew allowed, in seconds. Default: the policy's (30). */
  clockToleranceSec?: number;
  /** Largest token accepted, in bytes. Default 8192. */
  maxTokenBytes?: number;
  /** How often to poll for changes besides push notifications, in ms. Default 1000. */
  pollIntervalMs?: number;
  /** The clock, in epoch ms. Default Date.now; tests freeze it. */
  now?: () => number;
  /** Called on sync problems; the guard never prints. */
  onEvent?: (event: GuardEvent) => void;
}

export type GuardEvent = { type: 'sync-error'; error: Error } | { type: 'synced'; version: number };

export interface IssueRequest {
  sub: string;
  roles?: string[];
  /** Access-token lifetime in seconds. Default 900. */
  ttlSec?: number;
  /** Session id; a new one is created when absent. */
  sid?: string;
  /** Device fingerprint hash to bind the token to. */
  fph?: string;
  claims?: Record<string, unknown>;
}

export interface IssuedToken {
  token: string;
  kid: string;
  sid: string;
  jti: string;
  expiresAt: Date;
}

export interface Guard {
  /** Verifies a token against the current keys, key states and watermarks. */
  verify(token: string): Verdict;
  /** Signs a new access token with the active key and records its session in the ledger. */
  issue(request: IssueRequest): Promise<IssuedToken>;
  /** Applies pending changes now (normally pushed or polled). */
  sync(): Promise<void>;
  /** Increases with every applied change. */
  readonly version: number;
  close(): Promise<void>;
}

/**
 * Creates a guard: loads the keys and policy from the store, then follows the changes the CLI
 * makes (pushed through Redis Streams or Postgres NOTIFY, with polling as a fallback) without
 * a restart.
 */
export async function createGuard(options: GuardOptions = {}): Promise<Guard> {
  const settings: Settings = resolveSettings(
    { databaseUrl: options.databaseUrl, redisUrl: options.redisUrl, stateDir: options.stateDir, schema: options.schema },
    options.redisPrefix ? { ...process.env, JWTIR_REDIS_PREFIX: options.redisPrefix } : process.env,
  );
  const owned = !options.backends;
  const backends = options.backends ?? (await (await import('../store/open.js')).openBackends(settings));
  const kek = resolveKek(options, settings, backends);
  const replica = new Replica(kek);
  const now = options.now ?? Date.now;
  let stopWatch: (() => Promise<void>) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    replica.load(await backends.hot.snapshot());
  } catch (error) {
    if (owned) await backends.close();
    throw error;
  }

  let closed = false;
  let syncing: Promise<void> | undefined;
  let again = false;
  const sync = (): Promise<void> => {
    if (syncing) {
      again = true;
      return syncing;
    }
    syncing = (async () => {
      do {
        again = false;
        try {
          if ((await catchUp(replica, backends.hot)) > 0) options.onEvent?.({ type: 'synced', version: replica.version });
        } catch (error) {
          options.onEvent?.({ type: 'sync-error', error: error as Error });
        }
      } while (again);
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };

  stopWatch = await backends.hot.watch(() => void sync()).catch(() => undefined);
  timer = setInterval(() => void sync(), options.pollIntervalMs ?? 1000);
  timer.unref();
  await sync();

  const signingKeys = new Map<string, SigningKey>();
  const signingKey = async (kid: string): Promise<SigningKey> => {
    const cached = signingKeys.get(kid);
    if (cached) return cached;
    const [row] = await backends.db.query<{ alg: 'HS256' | 'RS256' | 'ES256' | 'EdDSA'; private_enc: string | null }>(
      'SELECT alg, private_enc FROM keys WHERE kid = $1',
      [kid],
    );
    if (!row?.private_enc) throw new Error(`the private material of key ${kid} is not available`);
    if (!kek) throw new Error('issuing tokens needs the KEK: set JWTIR_KEK or pass kek');
    const key = signingKeyFrom(kid, row.alg, unseal(kek, row.private_enc, kid));
    signingKeys.set(kid, key);
    return key;
  };

  return {
    get version() {
      return replica.version;
    },
    verify(token) {
      return decide(replica, token, {
        now: now(),
        clockToleranceSec: options.clockToleranceSec ?? Number(replica.policy?.doc.clockToleranceSec ?? 30),
        issuer: options.issuer,
        audience: options.audience,
        maxTokenBytes: options.maxTokenBytes,
      });
    },
    async issue(req) {
      const kid = replica.activeKid;
      if (!kid) throw new Error('there is no active signing key: import or rotate one with the jwtir CLI');
      const key = await signingKey(kid);
      const iat = Math.floor(now() / 1000);
      const exp = iat + (req.ttlSec ?? 900);
      const sid = req.sid ?? randomUUID();
      const jti = randomUUID();
      const payload: Record<string, unknown> = { ...req.claims, sub: req.sub, sid, jti, iat, exp };
      if (req.roles) payload.roles = req.roles;
      if (req.fph) payload.fph = req.fph;
      if (options.issuer) payload.iss = options.issuer;
      if (options.audience) payload.aud = options.audience;
      const token = signJwt(key, payload);
      await recordSessions(backends.db, [
        { sid, sub: req.sub, kid, roles: req.roles ?? [], fph: req.fph ?? null, issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000) },
      ]);
      return { token, kid, sid, jti, expiresAt: new Date(exp * 1000) };
    },
    sync,
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await stopWatch?.();
      stopWatch = undefined;
      await syncing;
      if (owned) await backends.close();
    },
  };
}

function resolveKek(options: GuardOptions, settings: Settings, backends: Backends): Buffer | undefined {
  if (options.kek) return loadKek({ env: { JWTIR_KEK: options.kek }, kekFile: undefined, embeddedStateDir: undefined }).key;
  try {
    return loadKek({ env: process.env, kekFile: settings.kekFile, embeddedStateDir: backends.embedded ? settings.stateDir : undefined }).key;
  } catch {
    // Only HS256 keys need it; the replica reports clearly if one appears without it.
    return undefined;
  }
}
