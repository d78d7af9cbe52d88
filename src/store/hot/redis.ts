import { Redis } from 'ioredis';
import { BackendUnavailableError } from '../../errors.js';
import { maskUrl, maskUrlsIn } from '../../config/mask.js';
import { chunk, jwksOf, type HotChange, type HotPolicy, type HotSnapshot, type HotStore, type PublishedKey, type WatermarkScope } from './hot-store.js';

/** Keeps the feed bounded; a guard that falls further behind than this re-reads a snapshot. */
const STREAM_MAXLEN = 100_000;
/** Every Redis call has a deadline: nothing on the request path or in a run may hang on Redis. */
const COMMAND_TIMEOUT_MS = 2000;

export async function openRedisHotStore(url: string, prefix: string): Promise<HotStore> {
  const redis = newClient(url);
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new BackendUnavailableError(`cannot connect to Redis at ${maskUrl(url)}: ${maskUrlsIn((error as Error).message, [url])}`, {
      hint: 'check that Redis is running and REDIS_URL is right',
    });
  }
  const k = {
    keys: `${prefix}keys`,
    /** Standard JWKS for outside verifiers that read Redis. */
    jwks: `${prefix}jwks`,
    policy: `${prefix}policy`,
    wm: (scope: WatermarkScope) => `${prefix}wm:${scope}`,
    changes: `${prefix}changes`,
  };
  const xadd = (multi: ReturnType<Redis['multi']>, change: HotChange) =>
    multi.xadd(k.changes, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'c', JSON.stringify(change));

  const store: HotStore = {
    kind: 'redis',
    async publishKeys(keys: PublishedKey[]) {
      const multi = redis.multi().set(k.keys, JSON.stringify(keys)).set(k.jwks, JSON.stringify(jwksOf(keys)));
      await xadd(multi, { t: 'keys', keys }).exec().then(checkExec);
    },
    async publishPolicy(policy: HotPolicy) {
      const multi = redis.multi().set(k.policy, JSON.stringify(policy));
      await xadd(multi, { t: 'policy', policy }).exec().then(checkExec);
    },
    async putWatermarks(scope, entries) {
      for (const part of chunk(entries)) {
        const multi = redis.multi();
        const set = part.filter(([, v]) => v !== null).flatMap(([s, v]) => [s, String(v)]);
        const del = part.filter(([, v]) => v === null).map(([s]) => s);
        if (set.length) multi.hset(k.wm(scope), ...set);
        if (del.length) multi.hdel(k.wm(scope), ...del);
        await xadd(multi, { t: 'wm', scope, entries: part }).exec().then(checkExec);
      }
    },
    async snapshot(): Promise<HotSnapshot> {
      // Cursor first: anything written after it is replayed on top, and every change is idempotent.
      const last = await redis.xrevrange(k.changes, '+', '-', 'COUNT', 1);
      const [keys, policy, wmUser, wmKid] = await Promise.all([
        redis.get(k.keys),
        redis.get(k.policy),
        redis.hgetall(k.wm('user')),
        redis.hgetall(k.wm('kid')),
      ]);
      return {
        cursor: last[0]?.[0] ?? '0-0',
        keys: keys ? (JSON.parse(keys) as PublishedKey[]) : [],
        policy: policy ? (JSON.parse(policy) as HotPolicy) : null,
        watermarks: { user: toNumberMap(wmUser), kid: toNumberMap(wmKid) },
      };
    },
    async changesSince(cursor, limit = 1000) {
      const entries = await redis.xrange(k.changes, `(${cursor}`, '+', 'COUNT', limit);
      if (cursor !== '0-0' && entries.length > 0) {
        // The feed is trimmed from the front; if our cursor fell off, replaying would miss changes.
        const first = await redis.xrange(k.changes, '-', '+', 'COUNT', 1);
        if (first[0] && compareIds(first[0][0], cursor) > 0) return 'gap';
      }
      const changes = entries.map(([, fields]) => JSON.parse(fields[1]!) as HotChange);
      return { cursor: entries.at(-1)?.[0] ?? cursor, changes };
    },
    async watch(onWake) {
      // A dedicated connection blocks on the stream; XREAD returns as soon as anything is added.
      const sub = newClient(url, { commandTimeout: undefined });
      await sub.connect().catch(() => {});
      let stopped = false;
      let lastId = '$';
      void (async () => {
        while (!stopped) {
          try {
            const res = await sub.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', k.changes, lastId);
            if (res && res[0]) {
              lastId = res[0][1].at(-1)![0];
              onWake();
            }
          } catch {
            if (stopped) break;
            // Redis is away: polling covers us; try the blocking read again shortly.
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      })();
      return async () => {
        stopped = true;
        sub.disconnect();
      };
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
  return store;
}

function newClient(url: string, overrides: { commandTimeout?: number | undefined } = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: COMMAND_TIMEOUT_MS,
    commandTimeout: 'commandTimeout' in overrides ? overrides.commandTimeout : COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  // Errors surface on the failing command; an unhandled 'error' event would crash the host process.
  client.on('error', () => {});
  return client;
}

function checkExec(results: Array<[Error | null, unknown]> | null): void {
  if (!results) throw new Error('Redis transaction was aborted');
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0];
}

function toNumberMap(hash: Record<string, string>): Map<string, number> {
  const map = new Map<string, number>();
  for (const [key, value] of Object.entries(hash)) map.set(key, Number(value));
  return map;
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am > bm ? 1 : -1;
}
