import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isSeq, LineCounter, parseDocument } from 'yaml';
import { FindingsInvalidError } from '../errors.js';
import { duplicateMembers } from '../lib/json-members.js';
import { CONTROL_CHARS, printable, quote } from '../lib/printable.js';
import { looksLikeToken } from '../lib/token-shape.js';
import { valueProblem, type BlacklistEntry, type BlacklistKind, MAX_VALUE_BYTES } from '../state/blacklist.js';

/**
 * A findings file: what a forensic scan or a SIEM export lists for `blacklist add|remove
 * --from-file`. NDJSON (one JSON object per line; blank lines and `#` comments ignored) or a
 * JSON array. Each entry names exactly one of jti, sid|session, sub|user, fph|device, or token
 * (a compact JWT, decoded WITHOUT verification for its jti, else its sid; never stored), with an
 * optional exp (NumericDate seconds) and reason. Every bad entry is reported, with its line.
 */
export const MAX_FINDINGS_BYTES = 256 * 1024 * 1024;
/** Larger than the guard's 8 KiB token cap, so an oversized token is reported as what it is. */
const MAX_TOKEN_BYTES = 16 * 1024;
const MAX_LINE_BYTES = 64 * 1024;
/** A message listing more lines than this is read by nobody; the count of the rest is given. */
const MAX_PROBLEMS_SHOWN = 1000;

const SELECTORS: Record<string, BlacklistKind | 'token'> = {
  jti: 'jti',
  sid: 'sid',
  session: 'sid',
  sub: 'user',
  user: 'user',
  fph: 'fph',
  device: 'fph',
  token: 'token',
};
const FIELDS = 'jti, sid|session, sub|user, fph|device or token, plus optional exp and reason';

export interface ParsedFindings {
  entries: BlacklistEntry[];
  /** "line 17: …", in line order. */
  problems: string[];
}

/** Reads and checks a findings file; throws with every bad line when any is bad. */
export function readFindingsFile(file: string): BlacklistEntry[] {
  let text: string;
  try {
    text = readCapped(file, MAX_FINDINGS_BYTES);
  } catch (error) {
    if (error instanceof FindingsInvalidError) throw error;
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new FindingsInvalidError(`cannot read findings file ${file}: ${reason}`, { hint: 'check the path given to --from-file; nothing was changed' });
  }
  const { entries, problems } = parseFindings(text);
  if (problems.length) {
    const shown = problems.slice(0, MAX_PROBLEMS_SHOWN);
    const more = problems.length - shown.length;
    throw new FindingsInvalidError(
      `findings file ${file} has ${problems.length} bad entr${problems.length === 1 ? 'y' : 'ies'}:\n${shown.map((p) => `  ${p}`).join('\n')}${more ? `\n  … and ${more} more` : ''}`,
      { hint: `fix every line listed (each entry needs exactly one of ${FIELDS}); nothing was changed`, details: { problems } },
    );
  }
  if (entries.length === 0) {
    throw new FindingsInvalidError(`findings file ${file} has no entries`, { hint: `write one JSON object per line, each with one of ${FIELDS}` });
  }
  return entries;
}

/** Bytes read at a time; the cap is checked after each read. */
const READ_CHUNK = 1024 * 1024;

/**
 * The file's text, refused once it passes `max` bytes. Counted while reading, not taken from its
 * size: a pipe or process substitution has none, and /dev/zero never ends.
 */
function readCapped(file: string, max: number): string {
  const tooLarge = (what: string) =>
    new FindingsInvalidError(`findings file ${file} ${what} the ${max / 1024 / 1024} MiB accepted`, { hint: 'split it and run blacklist add once per part; nothing was changed' });
  const fd = openSync(file, 'r');
  try {
    const stat = fstatSync(fd);
    if (stat.isFile() && stat.size > max) throw tooLarge(`is ${stat.size} bytes, more than`);
    const chunks: Buffer[] = [];
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    let total = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, READ_CHUNK, null);
      if (n === 0) break;
      total += n;
      if (total > max) throw tooLarge('holds more than');
      // Copied out: a pipe hands over 64 KiB at a time, and keeping a 1 MiB buffer for each would hold 16 times the file.
      chunks.push(Buffer.from(buffer.subarray(0, n)));
    }
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** A JSON.parse error without the snippet of input V8 puts in it (it may be part of a token), printable. */
function jsonError(error: unknown): string {
  return printable((error as Error).message.replace(/, ".*" is not valid JSON$/s, ''));
}

const DUPLICATE = (name: string) => `the member ${quote(name, 40)} is given twice (JSON keeps only the last; give each once)`;
const PASTED_TOKEN = 'this looks like a token; put it in "token"';

export function parseFindings(text: string): ParsedFindings {
  const body = text.replace(/^\uFEFF/, '');
  return body.trimStart().startsWith('[') ? parseArray(body) : parseLines(body);
}

function parseLines(text: string): ParsedFindings {
  const entries: BlacklistEntry[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `line ${i + 1}`;
    if (Buffer.byteLength(line) > MAX_LINE_BYTES) return problems.push(`${where}: longer than ${MAX_LINE_BYTES / 1024} KiB`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      return problems.push(`${where}: not valid JSON (${jsonError(error)})`);
    }
    const twice = duplicateMembers(line);
    const entry = twice.length ? DUPLICATE(twice[0]!.name) : entryOf(value);
    if (typeof entry === 'string') problems.push(`${where}: ${entry}`);
    else entries.push(entry);
  });
  return { entries, problems };
}

function parseArray(text: string): ParsedFindings {
  let items: unknown;
  try {
    items = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const pos = /at position (\d+)/.exec(message);
    const line = pos ? text.slice(0, Number(pos[1])).split('\n').length : text.split('\n').length;
    return { entries: [], problems: [`line ${line}: not valid JSON (${jsonError(error)})`] };
  }
  if (!Array.isArray(items)) return { entries: [], problems: ['line 1: a JSON findings file must be an array of objects'] };
  const entries: BlacklistEntry[] = [];
  const bad: Array<{ index: number; problem: string }> = [];
  const twice = new Map(duplicateMembers(text).map((d) => [d.element, d.name]));
  items.forEach((item, index) => {
    const entry = twice.has(index) ? DUPLICATE(twice.get(index)!) : entryOf(item);
    if (typeof entry === 'string') bad.push({ index, problem: entry });
    else entries.push(entry);
  });
  if (bad.length === 0) return { entries, problems: [] };
  // Only now is the file parsed again for positions: the common case (a good file) stays one JSON.parse.
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter });
  const seq = isSeq(doc.contents) ? doc.contents : undefined;
  const lineOf = (index: number) => {
    const range = (seq?.items[index] as { range?: [number, number, number] } | undefined)?.range;
    return range ? counter.linePos(range[0]).line : undefined;
  };
  return {
    entries,
    problems: bad.map(({ index, problem }) => {
      const line = lineOf(index);
      return `${line === undefined ? '' : `line ${line}: `}element ${index + 1}: ${problem}`;
    }),
  };
}

/** One entry, or why it cannot be one. */
function entryOf(value: unknown): BlacklistEntry | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return `an entry must be a JSON object with one of ${FIELDS}`;
  const obj = value as Record<string, unknown>;
  // Before anything repeats a value: a token in the wrong field must not be echoed or stored.
  if (Object.entries(obj).some(([k, v]) => looksLikeToken(k) || (k !== 'token' && looksLikeToken(v)))) return PASTED_TOKEN;
  const unknown = Object.keys(obj).filter((k) => !(k in SELECTORS) && k !== 'exp' && k !== 'reason');
  if (unknown.length) return `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => quote(k, 40)).join(', ')} (allowed: ${FIELDS})`;
  const present = Object.keys(obj).filter((k) => k in SELECTORS);
  if (present.length !== 1) {
    return present.length === 0 ? `no selector: give one of ${FIELDS}` : `give exactly one of jti, sid, sub, fph or token, not ${present.join(' and ')}`;
  }
  const field = present[0]!;
  let exp: number | undefined;
  if (obj.exp !== undefined) {
    if (typeof obj.exp !== 'number' || !Number.isFinite(obj.exp) || obj.exp <= 0) return `exp must be a NumericDate (seconds since 1970), got ${printable(JSON.stringify(obj.exp).slice(0, 40))}`;
    exp = Math.ceil(obj.exp);
  }
  let reason: string | undefined;
  if (obj.reason !== undefined) {
    if (typeof obj.reason !== 'string') return 'reason must be a string';
    if (Buffer.byteLength(obj.reason) > MAX_VALUE_BYTES) return `reason is longer than ${MAX_VALUE_BYTES} bytes`;
    if (CONTROL_CHARS.test(obj.reason)) return 'reason contains control characters (a terminal would act on them when it is listed)';
    reason = obj.reason;
  }
  const selector = SELECTORS[field]!;
  const base = { ...(reason !== undefined ? { reason } : {}) };
  if (selector === 'token') {
    const claims = tokenClaims(obj.token);
    if (typeof claims === 'string') return claims;
    // A jti names exactly this token, so its exp bounds the entry; a sid covers the session's other
    // (later, refreshed) tokens too, so the session's own expiry rules apply instead.
    if (claims.jti !== undefined) return { kind: 'jti', value: claims.jti, ...withExp(exp ?? claims.exp), ...base };
    if (claims.sid !== undefined) return { kind: 'sid', value: claims.sid, ...withExp(exp), ...base };
    return 'the token has neither a jti nor a sid claim: blacklist its user ({"sub": …}) instead';
  }
  const problem = valueProblem(selector, obj[field]);
  if (problem) return problem;
  return { kind: selector, value: obj[field] as string, ...withExp(exp), ...base };
}

const withExp = (exp: number | undefined) => (exp === undefined ? {} : { exp });

/**
 * The jti, sid and exp of a compact JWS, read without verifying it: a finding is a token someone
 * holds, forged or stolen. Messages never repeat the token.
 */
function tokenClaims(token: unknown): { jti?: string; sid?: string; exp?: number } | string {
  if (typeof token !== 'string' || token === '') return 'token must be a non-empty string';
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) return `token is longer than ${MAX_TOKEN_BYTES / 1024} KiB`;
  const parts = token.split('.');
  if (parts.length === 5) return 'token is encrypted (JWE); give its jti or sid instead';
  if (parts.length !== 3 || !parts.every((p, i) => /^[A-Za-z0-9_-]*$/.test(p) && (i === 2 || p !== ''))) return 'token is not a compact JWT (header.payload.signature)';
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return 'token payload is not JSON';
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return 'token payload is not a JSON object';
  const p = payload as Record<string, unknown>;
  const out: { jti?: string; sid?: string; exp?: number } = {};
  for (const [claim, kind] of [['jti', 'jti'], ['sid', 'sid']] as const) {
    if (p[claim] === undefined) continue;
    const problem = valueProblem(kind, p[claim]);
    if (problem) return `token ${claim} claim: ${problem}`;
    out[claim] = p[claim] as string;
  }
  if (typeof p.exp === 'number' && Number.isFinite(p.exp) && p.exp > 0) out.exp = Math.ceil(p.exp);
  return out;
}
