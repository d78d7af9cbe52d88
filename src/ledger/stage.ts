import { cohortOf } from '../guard/cohort.js';
import type { Queryable } from '../store/db.js';
import type { ImportRow } from './row.js';
import type { Sink } from './source.js';
import { insertChunk, type Chunk } from './store.js';

/** Rows per staged chunk (one row of ledger_staging). */
export const CHUNK_ROWS = 10_000;
/** Bad rows listed in a message; the rest are counted. */
export const MAX_PROBLEMS_KEPT = 1000;

/**
 * Where a source's rows go while it is read: counted against the ledger (new or known), checked,
 * and, unless this is a dry run (`importId` null), written as staged chunks. Once any row is bad
 * nothing more is written: the command reports every problem and discards what was staged.
 */
export class Stage implements Sink {
  /** Good rows read (known ones a source skipped included). */
  rowCount = 0;
  known = 0;
  fresh = 0;
  readonly users = new Set<string>();
  readonly problems: string[] = [];
  problemCount = 0;
  private chunk = emptyChunk();
  private chunks = 0;
  /** The batch the database is working on while the source reads the next. */
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Queryable,
    private readonly importId: string | null,
    private readonly sourceId: string,
    private readonly onProgress: Sink['progress'] = () => {},
  ) {}

  /**
   * Takes a batch without waiting for the database to finish with it: its lookup (and chunk
   * insert) runs while the source parses the next batch. The batch before must be done first,
   * so at most one is in the database's hands and memory stays bounded.
   */
  async rows(rows: ImportRow[], opts: { prefiltered?: boolean } = {}): Promise<void> {
    if (rows.length === 0) return;
    await this.tail;
    this.rowCount += rows.length;
    const p = this.take(rows, opts.prefiltered === true);
    // Awaited by the next batch or by finish; a handler now keeps a failure from being "unhandled" meanwhile.
    p.catch(() => {});
    this.tail = p;
  }

  private async take(rows: ImportRow[], prefiltered: boolean): Promise<void> {
    const { known, other } = prefiltered ? { known: new Set<string>(), other: [] } : await this.lookup(rows.map((r) => r.sid));
    const write = this.importId !== null && this.problemCount === 0;
    const c = this.chunk;
    if (write) c.seen.push(...other);
    for (const r of rows) {
      if (known.has(r.sid)) {
        this.known++;
        continue;
      }
      this.fresh++;
      this.users.add(r.sub);
      if (!write) continue;
      c.sid.push(r.sid);
      c.sub.push(r.sub);
      c.roles.push(arrayLiteral(r.roles));
      c.fph.push(r.fph);
      c.issuedMs.push(r.issuedAt);
      c.expiresMs.push(r.expiresAt);
      c.device.push(r.device);
      c.place.push(r.place);
      c.cohort.push(cohortOf(r.sub));
    }
    if (write && (c.sid.length >= CHUNK_ROWS || c.seen.length >= CHUNK_ROWS)) await this.flush();
  }

  async skipKnown(sids: string[]): Promise<Set<string>> {
    await this.tail;
    const { known, other } = await this.lookup(sids);
    this.rowCount += known.size;
    this.known += known.size;
    if (this.importId !== null && this.problemCount === 0) {
      this.chunk.seen.push(...other);
      if (this.chunk.seen.length >= CHUNK_ROWS) await this.flush();
    }
    return known;
  }

  problem(where: string, message: string): void {
    this.problemCount++;
    if (this.problems.length < MAX_PROBLEMS_KEPT) this.problems.push(`${where}: ${message}`);
  }

  progress(done: number, total: number | null, unit: 'rows' | 'bytes' | 'keys'): void {
    this.onProgress(done, total, unit);
  }

  /** Writes what is left; resolves once every chunk is stored. */
  async finish(): Promise<void> {
    await this.tail;
    if (this.importId !== null && this.problemCount === 0 && (this.chunk.sid.length > 0 || this.chunk.seen.length > 0)) await this.flush();
  }

  /**
   * The session ids the ledger has already, and of those the ones another source's import
   * added (this import vouches for them too: see the undo rule in store.ts).
   */
  private async lookup(sids: string[]): Promise<{ known: Set<string>; other: string[] }> {
    const rows = await this.db.query<{ sid: string; other: boolean }>(
      `SELECT s.sid, (s.import_run IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_imports i WHERE i.run_id = s.import_run AND i.source_id = $2)) AS other
       FROM sessions s WHERE s.sid = ANY($1::text[])`,
      [sids, this.sourceId],
    );
    return { known: new Set(rows.map((r) => r.sid)), other: rows.filter((r) => r.other).map((r) => r.sid) };
  }

  private async flush(): Promise<void> {
    const chunk = this.chunk;
    this.chunk = emptyChunk();
    await insertChunk(this.db, this.importId!, this.chunks++, chunk);
  }
}

function emptyChunk(): Chunk {
  return { sid: [], sub: [], roles: [], fph: [], issuedMs: [], expiresMs: [], device: [], place: [], cohort: [], seen: [] };
}

/** `{"admin","staff"}`: a Postgres array literal, cast to text[] when the chunk is merged. */
function arrayLiteral(items: string[]): string {
  return `{${items.map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
}
