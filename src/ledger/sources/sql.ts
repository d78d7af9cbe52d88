import pg from 'pg';
import Cursor from 'pg-cursor';
import { maskUrl, maskUrlsIn } from '../../config/mask.js';
import { LedgerSourceError, LedgerSourceUnreachableError } from '../../errors.js';
import { bindMapping } from '../fields.js';
import { buildGetters, toRow, type ImportRow } from '../row.js';
import { withoutPassword, type Mark, type ReadOutcome, type SqlMark, type Source } from '../source.js';

const BATCH = 5000;
const TIMESTAMP_OID = 1114;

type Row = Record<string, unknown>;

/**
 * A query against the service's own Postgres, read through a server-side cursor in a read-only
 * transaction: the import never holds the result in memory, and a query that would write is
 * refused. Every statement goes through the extended protocol, which runs exactly one.
 * A re-run reads only rows at or after the mark: `SELECT * FROM (<query>) q WHERE q.<issued_at> >= $1`
 * (at, not after: rows stamped in the mark's own instant may have committed later; they count as known).
 */
export function sqlSource(query: string, url: string): Source {
  const text = query.trim().replace(/;\s*$/, '');
  if (text === '') throw new LedgerSourceError('--from-sql is empty', { hint: "give a single SELECT, e.g. --from-sql 'SELECT id, user_id, created_at, expires_at FROM sessions'" });
  // On lines of their own, so a trailing -- comment in the query cannot swallow the wrapper.
  const wrapped = `SELECT * FROM (\n${text}\n) q`;
  const masked = maskUrl(url);
  const shown = text.length > 300 ? `${text.slice(0, 300)}…` : text;
  return {
    kind: 'sql',
    description: `query "${shown}" on ${masked}`,
    identity: `${withoutPassword(url)}\n${text}`,
    async read(mapping, mark, sink) {
      const client = new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: 5000,
        application_name: 'jwtir ledger import',
        types: { getTypeParser: typeParser as typeof pg.types.getTypeParser },
      });
      client.on('error', () => {});
      const fail = (error: unknown, what: string) => {
        const message = maskUrlsIn((error as Error).message, [url]);
        return new LedgerSourceError(`${what}: ${message}`, { hint: 'check the query with psql against the same database; nothing was changed' });
      };
      try {
        await client.connect();
      } catch (error) {
        throw new LedgerSourceUnreachableError(`cannot connect to the source database ${masked}: ${maskUrlsIn((error as Error).message, [url])}`, {
          hint: 'check --source-url (a password goes in PGPASSWORD or the variable named by --source-url-env)',
        });
      }
      try {
        await client.query('BEGIN TRANSACTION READ ONLY');
        let columns: string[];
        try {
          // The extended protocol takes exactly one statement: "x) q; COMMIT; DELETE …" cannot escape the wrapper.
          const probe = { text: `${wrapped} LIMIT 0`, queryMode: 'extended' } as pg.QueryConfig;
          columns = (await client.query(probe)).fields.map((f) => f.name);
        } catch (error) {
          throw fail(error, 'the source query failed');
        }
        const bound = bindMapping(mapping, (c) => columns.includes(c), { columns, what: 'the query returns', noun: 'column' });
        const get = buildGetters<Row>(bound, (c) => (row) => row[c], {}, Date.now());
        const incremental = mark && 'at' in mark && bound.issued_at && !bound.issued_at.startsWith('@');
        const sql = incremental ? `${wrapped} WHERE q.${pg.escapeIdentifier(bound.issued_at!)} >= $1` : wrapped;
        const cursor = client.query(new Cursor<Row>(sql, incremental ? [(mark as SqlMark).value] : []));
        let n = 0;
        let top: { ms: number; value: string } | null = null;
        for (;;) {
          let rows: Row[];
          try {
            rows = await cursor.read(BATCH);
          } catch (error) {
            throw fail(error, 'reading the source query failed');
          }
          if (rows.length === 0) break;
          const good: ImportRow[] = [];
          for (const raw of rows) {
            n++;
            const row = toRow(get, bound, raw);
            if (typeof row === 'string') {
              const id = get.sid?.(raw);
              sink.problem(`row ${n}${typeof id === 'string' || typeof id === 'number' ? ` (${bound.sid} ${String(id).slice(0, 60)})` : ''}`, row);
              continue;
            }
            good.push(row);
            if (!top || row.issuedAt > top.ms) top = { ms: row.issuedAt, value: markValue(get.issued_at?.(raw)) };
          }
          await sink.rows(good);
          sink.progress(n, null, 'rows');
        }
        await cursor.close();
        const after: Mark | null = top && bound.issued_at && !bound.issued_at.startsWith('@') ? { at: new Date(top.ms).toISOString(), value: top.value } : (mark ?? null);
        return { mark: after, restarted: false } satisfies ReadOutcome;
      } finally {
        await client.query('ROLLBACK').catch(() => {});
        await client.end().catch(() => {});
      }
    },
  };
}

/** The issued-at as the re-run's parameter: a Date as ISO 8601, anything else as its text. */
function markValue(raw: unknown): string {
  return raw instanceof Date ? raw.toISOString() : String(raw);
}

/**
 * Times as Dates in UTC, including a `timestamp without time zone` (which pg would read in this
 * machine's zone); everything else as pg parses it.
 */
function typeParser(oid: number, format?: 'text' | 'binary') {
  if (oid === TIMESTAMP_OID) return (v: string) => new Date(`${v.replace(' ', 'T')}Z`);
  return pg.types.getTypeParser(oid, format);
}
