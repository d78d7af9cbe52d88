import { Redis } from 'ioredis';
import { maskUrl, maskUrlsIn } from '../../config/mask.js';
import { JwtirError, LedgerSourceError, LedgerSourceUnreachableError } from '../../errors.js';
import { bindMapping, cookieIssuedAt, jsonHas, pathGetter, pathsOf, type Bound, type ResolvedMapping } from '../fields.js';
import { buildGetters, toRow, type Getters, type ImportRow } from '../row.js';
import { withoutPassword, type Mark, type ReadOutcome, type Sink, type Source } from '../source.js';

/** Keys per SCAN call (a hint to Redis) and so per MGET. */
const SCAN_COUNT = 1000;

interface Entry {
  key: string;
  value: unknown;
  /** Remaining time to live in ms; null when not asked for, -1 when the key never expires. */
  ttl: number | null;
}

/**
 * A Redis session store holding one JSON string per session (connect-redis: `sess:<sid>`),
 * read with SCAN and MGET in batches. Every run scans every key again, but reads the value only
 * of sessions the ledger does not have yet (when the session id is the key, `sid=@key`).
 */
export function redisSource(pattern: string, url: string): Source {
  if (pattern === '') throw new LedgerSourceError('--from-redis needs a key pattern', { hint: "e.g. --from-redis 'sess:*' (connect-redis's default prefix)" });
  const prefix = /^[^*?[\\]*/.exec(pattern)![0];
  const masked = maskUrl(url);
  return {
    kind: 'redis',
    description: `Redis keys matching "${pattern}" on ${masked}`,
    identity: `${withoutPassword(url)}\n${pattern}`,
    async read(mapping, _mark, sink) {
      const client = new Redis(url, { lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 1, retryStrategy: () => null });
      // ioredis rejects connect() with "Connection is closed."; the reason is in its error event.
      let reason: Error | undefined;
      client.on('error', (error: Error) => (reason ??= error));
      try {
        await client.connect();
      } catch (error) {
        client.disconnect();
        throw new LedgerSourceUnreachableError(`cannot connect to the source Redis ${masked}: ${maskUrlsIn((reason ?? (error as Error)).message, [url])}`, {
          hint: 'check --source-redis-url (a password goes in the variable named by --source-redis-url-env)',
        });
      }
      try {
        await scanAll(client, pattern, prefix, mapping, sink);
      } catch (error) {
        if (error instanceof JwtirError) throw error;
        throw new LedgerSourceUnreachableError(`reading the source Redis ${masked} failed: ${maskUrlsIn((error as Error).message, [url])}`, { hint: 'check that it is reachable, then run the import again; nothing was changed' });
      } finally {
        client.disconnect();
      }
      return { mark: null as Mark | null, restarted: false } satisfies ReadOutcome;
    },
  };
}

async function scanAll(client: Redis, pattern: string, prefix: string, mapping: ResolvedMapping, sink: Sink): Promise<void> {
  const now = Date.now();
  const byKey = mapping.mapping.sid === '@key';
  const withTtl = mapping.mapping.expires_at === '@ttl';
  let bound: Bound | null = null;
  let get: Getters<Entry> = {};
  let cursor = '0';
  let scanned = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    if (keys.length === 0) continue;
    scanned += keys.length;
    let fetch = keys;
    if (byKey) {
      const known = await sink.skipKnown(keys.map((k) => k.slice(prefix.length)));
      if (known.size) fetch = keys.filter((k) => !known.has(k.slice(prefix.length)));
    }
    const values = fetch.length ? await client.mget(fetch) : [];
    const ttls = withTtl && fetch.length ? await pipelined(client, fetch, 'pttl') : null;
    const gone = fetch.filter((_, i) => values[i] === null);
    // MGET answers nil for a key that expired since SCAN (skipped) and for one that is no string.
    const goneAt = new Map(gone.map((k, i) => [k, i]));
    const typeOf = gone.length ? await pipelined(client, gone, 'type') : [];
    const good: ImportRow[] = [];
    for (const [i, key] of fetch.entries()) {
      const raw = values[i];
      if (raw === null || raw === undefined) {
        const type = String(typeOf[goneAt.get(key)!] ?? 'none');
        if (type !== 'none') sink.problem(`key ${key}`, `holds a Redis ${type}, not a string of JSON`);
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (error) {
        sink.problem(`key ${key}`, `not valid JSON (${(error as Error).message.slice(0, 120)})`);
        continue;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        sink.problem(`key ${key}`, 'not a JSON object');
        continue;
      }
      const entry: Entry = { key, value, ttl: ttls ? Number(ttls[i]) : null };
      if (!bound) {
        bound = bindMapping(mapping, (p, f) => p.startsWith('@') || jsonHas(value)(p, f), { columns: pathsOf(value), what: `the session under ${key} has`, noun: 'field' });
        get = buildGetters<Entry>(
          bound,
          (p) => {
            const read = pathGetter(p);
            return (e) => read(e.value);
          },
          {
            '@key': (e) => e.key.slice(prefix.length),
            '@cookie': (e) => cookieIssuedAt(e.value),
            '@ttl': (e) => (e.ttl !== null && e.ttl > 0 ? now + e.ttl : undefined),
          },
          now,
        );
      }
      const row = toRow(get, bound, entry);
      if (typeof row === 'string') sink.problem(`key ${key}`, row);
      else good.push(row);
    }
    await sink.rows(good, { prefiltered: byKey });
    sink.progress(scanned, null, 'keys');
  } while (cursor !== '0');
}

async function pipelined(client: Redis, keys: string[], command: 'pttl' | 'type'): Promise<unknown[]> {
  const pipe = client.pipeline();
  for (const key of keys) pipe[command](key);
  const results = (await pipe.exec()) ?? [];
  return results.map(([error, value]) => (error ? null : value));
}
