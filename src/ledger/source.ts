import { createHash } from 'node:crypto';
import type { ResolvedMapping, SourceKind } from './fields.js';
import type { ImportRow } from './row.js';

/**
 * Where the next import of a source starts. SQL: the largest issued-at read (`at`, and `value`
 * as the source wrote it, so the re-run compares in the column's own type). Files: the byte
 * offset after the last complete line or record, the lines before it, and the sha256 of the
 * bytes before it (a file whose prefix changed is read whole again). Redis has none.
 */
export type Mark = SqlMark | FileMark;
export interface SqlMark {
  at: string;
  value: string;
}
export interface FileMark {
  offset: number;
  lines: number;
  sha256: string;
  /** CSV: the header, which a read starting at the offset does not see. */
  header?: string[];
}

/** A mark's place in its source: later marks are larger; no mark is the beginning. */
export function position(mark: Mark | null): number {
  if (!mark) return -Infinity;
  return 'offset' in mark ? mark.offset : Date.parse(mark.at);
}

/** The earlier of two marks: where an undone import leaves its source, so its rows are read again. */
export function lowerMark(a: Mark | null, b: Mark | null): Mark | null {
  return position(a) <= position(b) ? a : b;
}

/**
 * The source's mark after an import that read from `before` to `after`. A read that started
 * beyond the current mark (an undo moved the mark back meanwhile) leaves a gap, so it moves nothing.
 */
export function advanceMark(current: Mark | null, before: Mark | null, after: Mark | null): Mark | null {
  if (position(before) > position(current)) return current;
  return position(after) > position(current) ? after : current;
}

/** What a source reports to while it is read. */
export interface Sink {
  /** Checked rows in source order; resolves when they are taken, so a fast source waits for the database. */
  rows(rows: ImportRow[], opts?: { prefiltered?: boolean }): Promise<void>;
  /**
   * Of these session ids, the ones the ledger has already: counted as known and returned, so a
   * source where reading a value costs a round trip (Redis) reads only the others.
   */
  skipKnown(sids: string[]): Promise<Set<string>>;
  /** A record that cannot be a session; `where` is its line, row or key. */
  problem(where: string, message: string): void;
  progress(done: number, total: number | null, unit: 'rows' | 'bytes' | 'keys'): void;
}

export interface ReadOutcome {
  mark: Mark | null;
  /** A file whose bytes before the mark changed was read whole again. */
  restarted: boolean;
}

export interface Source {
  readonly kind: SourceKind;
  /** For people and the audit trail: what is read and from where, any password masked. */
  readonly description: string;
  /** What makes two imports the same source (no password): hashed into the source id. */
  readonly identity: string;
  read(mapping: ResolvedMapping, mark: Mark | null, sink: Sink): Promise<ReadOutcome>;
}

/**
 * The id of a source: its kind, query / file / pattern and URL without password, and also the
 * key and the mapping, since reading the same rows differently is a different import.
 */
export function sourceId(source: Source, kid: string, mapping: ResolvedMapping): string {
  const text = JSON.stringify([source.kind, source.identity, kid, Object.entries(mapping.mapping)]);
  return createHash('sha256').update(text).digest('hex');
}

/** A connection URL without its password, for identities (a rotated password is the same source). */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    u.searchParams.delete('password');
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1@');
  }
}
