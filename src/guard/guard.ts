import { resolveSettings, type Settings } from '../config/settings.js';
import { loadKek } from '../crypto/kek.js';
import { recordDevice } from '../state/devices.js';
import type { Backends } from '../store/open.js';
import type { CounterRow } from '../store/hot/hot-store.js';
import { authorize, authorizeAsync, type AuthorizeDeps } from './authorize.js';
import { Issuer, type IssuedToken, type IssueRequest, type Session } from './issuer.js';
import type { UserSession } from './sessions.js';
import { TokenRateLimiter } from './rate-limit.js';
import { catchUp, Replica } from './replica.js';
import { Telemetry, type Alert } from './telemetry.js';
import { TokenCache } from './token-cache.js';
import type { RequestContext, Verdict } from './types.js';
import type { VerifiedToken } from './verify-token.js';

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
  /** Already opened backends to share (for example in a single-process service); not closed by the guard. */
  backends?: Backends;
  /** Key-encryption key, base64 of 32 bytes, needed for HS256 keys and for issuing. Default: JWTIR_KEK, JWTIR_KEK_FILE or the embedded key file. */
  kek?: string;
  /** Expected `iss`; unchecked when absent. Also set on issued tokens. */
  issuer?: string;
  /** Expected `aud`; unchecked when absent. Also set on issued tokens. */
  audience?: string;
  /** Clock skew allowed, in seconds. Default: the policy's (30). */
  clockToleranceSec?: number;
  /** Largest token accepted, in bytes. Default 8192. */
  maxTokenBytes?: number;
  /**
   * How often to poll for changes besides push notifications, in ms. Default 1000. The guard
   * still asks the store at least every staleAfterMs / 2, so a quiet store is never mistaken
   * for an unreachable one.
   */
  pollIntervalMs?: number;
  /** How long without a successful sync before the store counts as unreachable, in ms. Default 5000. */
  staleAfterMs?: number;
  /** How often counters and alerts are written, in ms. Default 5000. */
  flushIntervalMs?: number;
  /** Verified tokens remembered for the warm path. Default 100,000. */
  cacheSize?: number;
  /** The clock, in epoch ms. Default Date.now; tests freeze it. */
  now?: () => number;
  /** Sync state changes, degradation and alerts; the guard itself never prints. */
  onEvent?: (event: GuardEvent) => void;
}

export type GuardEvent =
  | { type: 'synced'; version: number }
  | { type: 'sync-error'; error: Error }
  /** The store stopped answering; the guard now follows the policy's fail mode. */
  | { type: 'degraded'; failMode: 'closed' | 'open-for-reads'; error: Error }
  | { type: 'recovered' }
  /** A key from the feed could not be built; it verifies nothing (its tokens get key_disabled). */
  | { type: 'key-unusable'; kid: string; error: Error }
  | { type: 'alert'; alert: Alert };

export interface Guard {
  /** The full decision for one request: allow, step_up, block_critical or deny, with reasons. */
  authorize(token: string | undefined, ctx?: RequestContext): Verdict;
  /**
   * The same decision, with a new token's RS256/ES256/EdDSA signature checked on libuv's thread
   * pool: the event loop is not held for the 70-150 µs such a check takes, and other cores share
   * the work. Cached and HS256 tokens are answered at once, as by authorize.
   */
  authorizeAsync(token: string | undefined, ctx?: RequestContext): Promise<Verdict>;
  /** The same decision for a read with no device context (kept from the first cut). */
  verify(token: string): Verdict;
  /** Signs an access token with the active key and records its session (and device) in the ledger. */
  issue(request: IssueRequest): Promise<IssuedToken>;
  /** Starts a session: an access token and a refresh token (stored hashed). */
  login(request: IssueRequest & { refreshTtlSec?: number }): Promise<Session>;
  /** Rotates a refresh token; reuse of a spent one revokes the whole family and throws ERR_REFRESH_REUSED. */
  refresh(refreshToken: string, ctx?: { fingerprint?: string; ttlSec?: number; refreshTtlSec?: number }): Promise<Session>;
  /** Ends one session everywhere (refresh family and access tokens). */
  revokeSession(sid: string): Promise<void>;
  /**
   * A signed-in user's live sessions, newest first (PLAYBOOK E2): device and place as given at
   * login, first and last seen, expiry. Pass the caller's own sid to have it marked `current`.
   */
  sessions(sub: string, currentSid?: string): Promise<UserSession[]>;
  /**
   * Ends one of the user's own sessions (its refresh tokens and access tokens), effective at
   * this guard at once and at the others within the propagation bound. A sid that is unknown or
   * belongs to another user is refused with GuardError ERR_SESSION_NOT_FOUND.
   */
  endSession(sub: string, sid: string): Promise<void>;
  /** Marks a device as confirmed by a second factor, after the service's 2FA succeeded. */
  confirmDevice(sub: string, fph: string): Promise<void>;
  /** Records fraud protection's verdict on a device. */
  setDeviceReputation(sub: string, fph: string, reputation: 'good' | 'bad'): Promise<void>;
  /** Applies pending changes now (normally pushed or polled). */
  sync(): Promise<void>;
  /** Writes gathered counters and alerts now. */
  flush(): Promise<void>;
  /** Cumulative decisions of this instance by counter key (for the Prometheus helper). */
  decisionTotals(): Map<string, number>;
  /** Decision counts summed across all guard instances, from `fromMinute` (epoch minute). */
  counters(fromMinute: number): Promise<CounterRow[]>;
  /** Increases with every applied change. */
  readonly version: number;
  /** The policy version this guard applies (0: the built-in defaults). */
  readonly policyVersion: number;
  /** False while the store is unreachable (the fail mode applies). */
  readonly healthy: boolean;
  close(): Promise<void>;
}

/**
 * Creates a guard: loads keys, policy, revocations and the device registry from the store into
 * memory, then follows the changes the CLI makes (pushed through Redis Streams or Postgres
 * NOTIFY, with polling as a fallback) without a restart.
 */
export async function createGuard(options: GuardOptions = {}): Promise<Guard> {
  // Options are code, not argv: URLs with passwords are fine here, so they go in as environment.
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
  if (options.redisUrl !== undefined) env.REDIS_URL = options.redisUrl;
  if (options.stateDir !== undefined) env.JWTIR_STATE_DIR = options.stateDir;
  if (options.schema !== undefined) env.JWTIR_SCHEMA = options.schema;
  if (options.redisPrefix !== undefined) env.JWTIR_REDIS_PREFIX = options.redisPrefix;
  const settings: Settings = resolveSettings({}, env);
  const owned = !options.backends;
  const backends = options.backends ?? (await (await import('../store/open.js')).openBackends(settings));
  const emit = (event: GuardEvent) => options.onEvent?.(event);
  const kek = resolveKek(options, settings, backends);
  const replica = new Replica(kek, (kid, error) => emit({ type: 'key-unusable', kid, error }));
  const now = options.now ?? Date.now;
  try {
    replica.load(await backends.hot.snapshot());
  } catch (error) {
    if (owned) await backends.close();
    throw error;
  }

  let lastOk = Date.now();
  let lastError: Error | undefined;
  let degraded = false;
  const staleAfter = options.staleAfterMs ?? 5000;
  /** The store counts as unreachable once no sync succeeded for staleAfter; the fail mode then applies. */
  const healthy = () => {
    if (!degraded && Date.now() - lastOk > staleAfter) {
      degraded = true;
      emit({ type: 'degraded', failMode: replica.policy.failMode, error: lastError ?? new Error(`no successful sync for ${staleAfter} ms`) });
    }
    return !degraded;
  };
  const markFailure = (error: Error) => {
    lastError = error;
    emit({ type: 'sync-error', error });
    healthy();
  };

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
          const applied = await catchUp(replica, backends.hot);
          lastOk = Date.now();
          if (degraded) {
            degraded = false;
            emit({ type: 'recovered' });
          }
          if (applied > 0) emit({ type: 'synced', version: replica.version });
        } catch (error) {
          markFailure(error as Error);
        }
      } while (again && !closed);
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };

  const telemetry = new Telemetry(backends.hot, backends.db);
  const cache = new TokenCache<VerifiedToken>(options.cacheSize ?? 100_000);
  const onAlert = (alert: Alert) => emit({ type: 'alert', alert });
  const deps: AuthorizeDeps = {
    replica,
    cache,
    limiter: new TokenRateLimiter(),
    telemetry,
    now,
    healthy,
    onAlert,
    issuer: options.issuer,
    audience: options.audience,
    maxTokenBytes: options.maxTokenBytes,
    clockToleranceSec: options.clockToleranceSec,
  };
  const issuer = new Issuer(backends, replica, kek, now, { iss: options.issuer, aud: options.audience }, (alert) => {
    telemetry.alert(alert);
    onAlert(alert);
  });

  const stopWatch = await backends.hot.watch(() => void sync()).catch(() => undefined);
  const timers = [
    setInterval(() => {
      healthy();
      void sync();
    }, Math.min(options.pollIntervalMs ?? 1000, Math.max(staleAfter / 2, 100))),
    setInterval(() => void telemetry.flush().catch((error: Error) => emit({ type: 'sync-error', error })), options.flushIntervalMs ?? 5000),
    setInterval(() => replica.pruneExpired(now() / 1000), 60_000),
  ];
  for (const t of timers) t.unref();
  await sync();

  return {
    get version() {
      return replica.version;
    },
    get healthy() {
      return healthy();
    },
    get policyVersion() {
      return replica.policyVersion;
    },
    authorize: (token, ctx) => authorize(deps, token, ctx),
    authorizeAsync: (token, ctx) => authorizeAsync(deps, token, ctx),
    verify: (token) => authorize(deps, token, {}),
    issue: (req) => issuer.issue(req),
    login: (req) => issuer.login(req),
    refresh: (token, ctx) => issuer.refresh(token, ctx),
    revokeSession: (sid) => issuer.revokeSession(sid),
    sessions: (sub, currentSid) => issuer.sessions(sub, currentSid),
    async endSession(sub, sid) {
      await issuer.endSession(sub, sid);
      await sync();
    },
    async confirmDevice(sub, fph) {
      await recordDevice(backends.db, backends.hot, { sub, fph, confirmed: true });
      await sync();
    },
    async setDeviceReputation(sub, fph, reputation) {
      await recordDevice(backends.db, backends.hot, { sub, fph, reputation });
      await sync();
    },
    sync,
    flush: () => telemetry.flush(),
    decisionTotals: () => telemetry.cumulative(),
    counters: (fromMinute) => backends.hot.readCounters(fromMinute),
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearInterval(t);
      await stopWatch?.();
      await syncing;
      await telemetry.flush().catch(() => {});
      if (owned) await backends.close();
    },
  };
}

function resolveKek(options: GuardOptions, settings: Settings, backends: Backends): Buffer | undefined {
  if (options.kek) return loadKek({ env: { JWTIR_KEK: options.kek }, kekFile: undefined, embeddedStateDir: undefined }).key;
  try {
    return loadKek({ env: process.env, kekFile: settings.kekFile, embeddedStateDir: backends.embedded ? settings.stateDir : undefined }).key;
  } catch {
    // Only HS256 keys and issuing need it; the replica reports clearly if an HS256 key appears without it.
    return undefined;
  }
}
