import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse';
import { LedgerMappingError, LedgerSourceError } from '../../errors.js';
import { bindMapping, cookieIssuedAt, jsonHas, pathGetter, pathsOf, type Bound, type ResolvedMapping } from '../fields.js';
import { buildGetters, toRow, type Getters, type ImportRow } from '../row.js';
import type { FileMark, Mark, ReadOutcome, Sink, Source } from '../source.js';

const BATCH = 5000;
/** A line this long is a mistake (a binary file, a missing newline), not a session. */
const MAX_LINE_BYTES = 1024 * 1024;

export type FileFormat = 'csv' | 'ndjson';

/** The format named by --format, else by the file's extension. */
export function fileFormat(file: string, given: string | undefined): FileFormat {
  if (given === 'csv' || given === 'ndjson') return given;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.ndjson' || ext === '.jsonl' || ext === '.json') return 'ndjson';
  throw new LedgerSourceError(`cannot tell the format of ${file} from its name`, { hint: 'pass --format csv or --format ndjson' });
}

/**
 * A CSV (with a header row) or NDJSON file, streamed. A re-run starts at the mark's byte offset
 * when the bytes before it are unchanged (the file was only appended to); otherwise it reads the
 * whole file again, which imports nothing twice (sessions are keyed by id).
 */
export function fileSource(file: string, format: FileFormat): Source {
  const abs = path.resolve(file);
  return {
    kind: format,
    description: `${format === 'csv' ? 'CSV' : 'NDJSON'} file ${abs}`,
    identity: abs,
    async read(mapping, mark, sink) {
      let size: number;
      try {
        const s = await stat(abs);
        if (!s.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
        size = s.size;
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
        throw new LedgerSourceError(`cannot read ${abs}: ${reason}`, { hint: 'check the path given to --from-file; nothing was changed' });
      }
      let from: FileMark | null = null;
      let restarted = false;
      if (mark && 'offset' in mark) {
        if (size >= mark.offset && (await hashPrefix(abs, mark.offset)) === mark.sha256) from = mark;
        else restarted = true;
      }
      const read = format === 'csv' ? readCsv : readNdjson;
      const end = await read(abs, size, from, mapping, sink);
      if (from && end.offset === from.offset) return { mark: from, restarted };
      const after: Mark = { offset: end.offset, lines: end.lines, sha256: await hashPrefix(abs, end.offset), ...(end.header ? { header: end.header } : {}) };
      return { mark: after, restarted } satisfies ReadOutcome;
    },
  };
}

interface End {
  /** Byte offset after the last complete (terminated) line or record. */
  offset: number;
  lines: number;
  header?: string[];
}

async function hashPrefix(file: string, length: number): Promise<string> {
  const hash = createHash('sha256');
  if (length > 0) for await (const chunk of createReadStream(file, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * NDJSON by hand rather than through readline: the mark needs the exact byte offset of each
 * line end, which readline hides. Blank lines are skipped; a last line without a newline is
 * imported but left after the mark, so a writer still appending to it is read again next time.
 */
async function readNdjson(file: string, size: number, from: FileMark | null, mapping: ResolvedMapping, sink: Sink): Promise<End> {
  const start = from?.offset ?? 0;
  let line = from?.lines ?? 0;
  let base = start;
  let carry: Buffer | null = null;
  let skipping = false;
  let good: ImportRow[] = [];
  let bound: Bound | null = null;
  let get: Getters<unknown> = {};
  const now = Date.now();
  const take = (text: string) => {
    line++;
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const trimmed = text.trim();
    if (trimmed === '') return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      return sink.problem(`line ${line}`, `not valid JSON (${(error as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return sink.problem(`line ${line}`, 'not a JSON object');
    if (!bound) {
      bound = bindMapping(mapping, jsonHas(value), { columns: pathsOf(value), what: `line ${line} of ${file} has`, noun: 'field' });
      get = buildGetters<unknown>(bound, pathGetter, { '@cookie': cookieIssuedAt }, now);
    }
    const row = toRow(get, bound, value);
    if (typeof row === 'string') sink.problem(`line ${line}`, row);
    else good.push(row);
  };
  for await (const chunk of createReadStream(file, { start, highWaterMark: 1 << 20 })) {
    const buf: Buffer = carry ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    let at = 0;
    for (let nl = buf.indexOf(10, at); nl !== -1; nl = buf.indexOf(10, at)) {
      if (skipping) {
        skipping = false;
        line++;
      } else take(buf.toString('utf8', at, nl > at && buf[nl - 1] === 13 ? nl - 1 : nl));
      at = nl + 1;
      if (good.length >= BATCH) {
        await sink.rows(good);
        good = [];
      }
    }
    base += at;
    carry = at < buf.length ? buf.subarray(at) : null;
    if (carry && carry.length > MAX_LINE_BYTES && !skipping) {
      sink.problem(`line ${line + 1}`, `longer than ${MAX_LINE_BYTES / 1024 / 1024} MiB`);
      skipping = true;
    }
    if (skipping) carry = null;
    sink.progress(base, size, 'bytes');
  }
  const lines = line;
  if (carry && !skipping) take(carry.toString('utf8'));
  await sink.rows(good);
  sink.progress(size, size, 'bytes');
  return { offset: base, lines };
}

/**
 * CSV with a header row (RFC 4180 quoting, fields may span lines), through csv-parse's stream.
 * Empty fields are missing values. A re-run from a mark takes the header recorded with it.
 */
async function readCsv(file: string, size: number, from: FileMark | null, mapping: ResolvedMapping, sink: Sink): Promise<End> {
  const start = from?.offset ?? 0;
  const lineBase = from?.lines ?? 0;
  let header = from?.header ?? null;
  let bound: Bound | null = null;
  let get: Getters<string[]> = {};
  const bind = (columns: string[]) => {
    bound = bindMapping(mapping, (c) => columns.includes(c), { columns, what: `the CSV header of ${file} has`, noun: 'column' });
    get = buildGetters<string[]>(bound, (c) => {
      const i = columns.indexOf(c);
      return (rec) => (rec[i] === '' ? null : rec[i]);
    }, {}, Date.now());
  };
  if (header) bind(header);
  const parser = parseCsv({ bom: start === 0, skip_empty_lines: true, relax_column_count: true, skip_records_with_error: true, info: true });
  parser.on('skip', (error: Error & { lines?: number }) => sink.problem(`line ${lineBase + (error.lines ?? 0)}`, error.message.replace(/ (?:on|at) line \d+/, '')));
  const input = createReadStream(file, { start, highWaterMark: 1 << 20 });
  input.on('error', (error) => parser.destroy(error));
  input.pipe(parser);
  let good: ImportRow[] = [];
  let lastEnd = 0;
  let lastLines = 0;
  let prevEnd = 0;
  let prevLines = 0;
  for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { bytes: number; lines: number } }>) {
    prevEnd = lastEnd;
    prevLines = lastLines;
    lastEnd = info.bytes;
    lastLines = info.lines;
    const line = lineBase + info.lines;
    if (!header) {
      header = record.map((c) => c.trim());
      const dup = header.find((c, i) => c === '' || header!.indexOf(c) !== i);
      if (dup !== undefined) throw new LedgerMappingError(`the CSV header of ${file} has ${dup === '' ? 'an empty column name' : `the column "${dup}" twice`}`, { hint: 'name every column once in the first line' });
      bind(header);
      continue;
    }
    if (record.length !== header.length) {
      sink.problem(`line ${line}`, `has ${record.length} fields, the header has ${header.length}`);
      continue;
    }
    const row = toRow(get, bound!, record);
    if (typeof row === 'string') sink.problem(`line ${line}`, row);
    else good.push(row);
    if (good.length >= BATCH) {
      await sink.rows(good);
      good = [];
      sink.progress(start + info.bytes, size, 'bytes');
    }
  }
  await sink.rows(good);
  sink.progress(size, size, 'bytes');
  // The last record ends the mark only if a line break ended it (a writer may be mid-line).
  const terminated = lastEnd > 0 && (await lastByte(file, start + lastEnd - 1)) === 10;
  const [end, lines] = terminated || lastEnd === 0 ? [lastEnd, lastLines] : [prevEnd, prevLines];
  return { offset: start + end, lines: lineBase + lines, ...(header ? { header } : {}) };
}

async function lastByte(file: string, at: number): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    return b[0]!;
  } finally {
    await fh.close();
  }
}
