import { Redis } from 'ioredis';
import { BackendUnavailableError } from '../../errors.js';
import { maskUrl, maskUrlsIn } from '../../config/mask.js';
import {
  chunk,
  COUNTS_KEPT_S,
  emptySnapshot,
  jwksOf,
  REVOCATION_KINDS,
  WATERMARK_SCOPES,
  type CounterRow,
  type DeviceEntry,
  type HotChange,
  type HotPolicy,
  type HotSnapshot,
  type HotStore,
  type PublishedKey,
} from './hot-store.js';

/** Keeps the feed bounded; a guard that falls further behind than this re-reads a snapshot. */
const STREAM_MAXLEN = 100_000;
/** Every Redis call has a deadline: nothing on the request path or in a run may hang on Redis. */
const COMMAND_TIMEOUT_MS = 2000;
/** A gate counts users under at most this many policy versions (the latest ones): each is 200 HyperLogLog keys to merge. */
const MAX_JUDGED_VERSIONS = 100;
const SEP = '\u0000';

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
    changes: `${prefix}changes`,
    hash: (name: string) => `${prefix}${name}`,
    ledgerKids: `${prefix}ledger:kids`,
    ledger: (kid: string, kind: 'sid' | 'sub') => `${prefix}ledger:${kind}:${kid}`,
    counters: (minute: number) => `${prefix}ctr:${minute}`,
    userMarks: (policyVersion: number, kind: string, kid: string, cohort: number) => `${prefix}um:v${policyVersion}:${kind}:${kid}:${cohort}`,
  };
  type Multi = ReturnType<Redis['multi']>;
  /** Applies a write and appends its change to the feed in one MULTI: guards never see one without the other. */
  const commit = async (write: (m: Multi) => void, change: HotChange) => {
    const multi = redis.multi();
    write(multi);
    multi.xadd(k.changes, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'c', JSON.stringify(change));
    checkExec(await multi.exec());
  };
  /** Sets (or with null, deletes) fields of a hash, chunked, each chunk with its change. */
  const putHash = async (key: string, entries: Array<[string, string | null]>, toChange: (part: Array<[string, string | null]>) => HotChange) => {
    for (const part of chunk(entries)) {
      const set = part.filter(([, v]) => v !== null).flatMap(([f, v]) => [f, v!]);
      const del = part.filter(([, v]) => v === null).map(([f]) => f);
      await commit((m) => {
        if (set.length) m.hset(key, ...set);
        if (del.length) m.hdel(key, ...del);
      }, toChange(part));
    }
  };
  const readHash = async (key: string): Promise<Array<[string, string]>> => {
    const out: Array<[string, string]> = [];
    let cursor = '0';
    do {
      const [next, flat] = await redis.hscan(key, cursor, 'COUNT', 10_000);
      for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
      cursor = next;
    } while (cursor !== '0');
    return out;
  };
  const num = (entries: Array<[string, number | null]>) => entries.map(([f, v]) => [f, v === null ? null : String(v)] as [string, string | null]);

  const store: HotStore = {
    kind: 'redis',
    publishKeys: (keys: PublishedKey[]) => commit((m) => m.set(k.keys, JSON.stringify(keys)).set(k.jwks, JSON.stringify(jwksOf(keys))), { t: 'keys', keys }),
    publishPolicy: (policy) => commit((m) => m.set(k.policy, JSON.stringify(policy)), { t: 'policy', policy }),
    putWatermarks: (scope, entries) =>
      putHash(k.hash(`wm:${scope}`), num(entries), (part) => ({ t: 'wm', scope, entries: part.map(([f, v]) => [f, v === null ? null : Number(v)]) })),
    putRevocations: (kind, entries) =>
      putHash(k.hash(`rev:${kind}`), num(entries), (part) => ({ t: 'rev', kind, entries: part.map(([f, v]) => [f, v === null ? null : Number(v)]) })),
    async putDevices(entries: DeviceEntry[]) {
      for (const part of chunk(entries)) {
        await commit((m) => m.hset(k.hash('dev'), ...part.flatMap((d) => [d.sub + SEP + d.fph, JSON.stringify({ c: d.confirmed, r: d.reputation })])), { t: 'dev', entries: part });
      }
    },
    async putLedger(kid, sids, subs) {
      for (let i = 0; i < Math.max(sids.length, subs.length, 1); i += 5000) {
        const s1 = sids.slice(i, i + 5000);
        const s2 = subs.slice(i, i + 5000);
        await commit((m) => {
          m.sadd(k.ledgerKids, kid);
          if (s1.length) m.sadd(k.ledger(kid, 'sid'), ...s1);
          if (s2.length) m.sadd(k.ledger(kid, 'sub'), ...s2);
        }, { t: 'ledger', kid, sids: s1, subs: s2 });
      }
    },
    async addCounters(rows: CounterRow[]) {
      if (rows.length === 0) return;
      const multi = redis.multi();
      for (const r of rows) {
        multi.hincrby(k.counters(r.minute), [r.kid, r.decision, r.reason, r.cohort].join(SEP), r.n);
        multi.expire(k.counters(r.minute), COUNTS_KEPT_S);
      }
      checkExec(await multi.exec());
    },
    async readCounters(fromMinute) {
      const rows: CounterRow[] = [];
      const last = Math.floor(Date.now() / 60_000);
      for (let minute = Math.max(fromMinute, last - COUNTS_KEPT_S / 60); minute <= last; minute++) {
        for (const [field, n] of Object.entries(await redis.hgetall(k.counters(minute)))) {
          const [kid, decision, reason, cohort] = field.split(SEP) as [string, string, string, string];
          rows.push({ minute, kid, decision, reason, cohort: Number(cohort), n: Number(n) });
        }
      }
      return rows;
    },
    async addUserMarks(rows) {
      if (rows.length === 0) return;
      const multi = redis.multi();
      for (const r of rows) {
        const key = k.userMarks(r.policyVersion, r.kind, r.kid, r.cohort);
        // HyperLogLog: 12 KB a key whatever the number of users, and unions are cheap.
        for (let i = 0; i < r.subs.length; i += 10_000) multi.pfadd(key, ...r.subs.slice(i, i + 10_000));
        // Refreshed on every write: a stage watched for days keeps the marks of its first hour.
        multi.expire(key, COUNTS_KEPT_S);
      }
      checkExec(await multi.exec());
    },
    async returningUsers(q) {
      // The versions from the stage's own to the latest published (a few: one per policy change).
      const published = await redis.get(k.policy);
      const latest = Math.max(q.fromPolicyVersion, published ? (JSON.parse(published) as HotPolicy).version : 0);
      const cut: string[] = [];
      const allow: string[] = [];
      for (let version = Math.max(q.fromPolicyVersion, latest - MAX_JUDGED_VERSIONS + 1); version <= latest; version++) {
        for (let cohort = 0; cohort < q.cohortsBelow; cohort++) {
          cut.push(k.userMarks(version, 'cut', q.kid, cohort));
          allow.push(k.userMarks(version, 'allow', '', cohort));
        }
      }
      const [c, a, both] = await Promise.all([redis.pfcount(...cut), redis.pfcount(...allow), redis.pfcount(...cut, ...allow)]);
      // |cut ∩ allow| = |cut| + |allow| - |cut ∪ allow|, within the estimates' error.
      return { cut: c, back: Math.max(0, Math.min(c, c + a - both)) };
    },
    async snapshot(): Promise<HotSnapshot> {
      // Cursor first: anything written after it is replayed on top, and every change is idempotent.
      const last = await redis.xrevrange(k.changes, '+', '-', 'COUNT', 1);
      const snap = emptySnapshot(last[0]?.[0] ?? '0-0');
      const [keys, policy] = await Promise.all([redis.get(k.keys), redis.get(k.policy)]);
      snap.keys = keys ? (JSON.parse(keys) as PublishedKey[]) : [];
      snap.policy = policy ? JSON.parse(policy) : null;
      for (const scope of WATERMARK_SCOPES) {
        for (const [f, v] of await readHash(k.hash(`wm:${scope}`))) snap.watermarks[scope].set(f, Number(v));
      }
      for (const kind of REVOCATION_KINDS) {
        for (const [f, v] of await readHash(k.hash(`rev:${kind}`))) snap.revocations[kind].set(f, Number(v));
      }
      for (const [f, v] of await readHash(k.hash('dev'))) {
        const [sub, fph] = f.split(SEP) as [string, string];
        const { c, r } = JSON.parse(v) as { c: boolean; r: DeviceEntry['reputation'] };
        snap.devices.push({ sub, fph, confirmed: c, reputation: r });
      }
      for (const kid of await redis.smembers(k.ledgerKids)) {
        const [sids, subs] = await Promise.all([redis.smembers(k.ledger(kid, 'sid')), redis.smembers(k.ledger(kid, 'sub'))]);
        snap.ledger.set(kid, { sids: new Set(sids), subs: new Set(subs) });
      }
      return snap;
    },
    async changesSince(cursor, limit = 1000) {
      // One round trip: the page and the oldest entry still kept. A guard's reaction time to a
      // revocation is the wake-up plus this read, so nothing here waits on another reply.
      const replies = await redis.multi().xrange(k.changes, `(${cursor}`, '+', 'COUNT', limit).xrange(k.changes, '-', '+', 'COUNT', 1).exec();
      const failed = replies?.find(([error]) => error);
      if (!replies || failed) throw failed?.[0] ?? new Error('Redis discarded the change-feed read');
      const entries = replies[0]![1] as Array<[string, string[]]>;
      const first = replies[1]![1] as Array<[string, string[]]>;
      // The feed is trimmed from the front; if our cursor fell off, replaying would miss changes.
      if (cursor !== '0-0' && entries.length > 0 && first[0] && compareIds(first[0][0], cursor) > 0) return 'gap';
      const changes = entries.map(([, fields]) => JSON.parse(fields[1]!) as HotChange);
      return { cursor: entries.at(-1)?.[0] ?? cursor, changes, more: entries.length === limit };
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
  return withClearErrors(store, url);
}

/**
 * Turns driver errors ("Stream isn't writeable…", "Connection is closed") into a backend error
 * that says which Redis, with the URL masked, and what to do next.
 */
function withClearErrors(store: HotStore, url: string): HotStore {
  const wrapped = { ...store };
  for (const name of ['publishKeys', 'publishPolicy', 'putWatermarks', 'putRevocations', 'putDevices', 'putLedger', 'addCounters', 'readCounters', 'addUserMarks', 'returningUsers', 'snapshot', 'changesSince'] as const) {
    const fn = store[name] as (...args: unknown[]) => Promise<unknown>;
    (wrapped as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (error) {
        throw new BackendUnavailableError(`Redis at ${maskUrl(url)} did not answer (${maskUrlsIn((error as Error).message, [url])})`, {
          hint: 'check that Redis is running and accepts writes; a stopped run resumes with `jwtir runs resume <id>`, and after a restart that lost data, `jwtir sync` rebuilds the hot copy',
          cause: error,
        });
      }
    };
  }
  return wrapped;
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

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am > bm ? 1 : -1;
}
