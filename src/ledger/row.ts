import { valueProblem } from '../state/blacklist.js';
import type { Bound, Field } from './fields.js';

/** A session as an import writes it to the ledger. Times in epoch milliseconds. */
export interface ImportRow {
  sid: string;
  sub: string;
  issuedAt: number;
  expiresAt: number;
  roles: string[];
  fph: string | null;
  device: string | null;
  place: string | null;
}

/** Reads one field's raw value from a source record of type R. */
export type Getters<R> = Partial<Record<Field, (record: R) => unknown>>;

/**
 * The getters for a bound mapping: a column through `column`, a rule through `rules` (the
 * source's own, e.g. `@key`) or `@now`, the time the import started.
 */
export function buildGetters<R>(bound: Bound, column: (name: string) => (record: R) => unknown, rules: Record<string, (record: R) => unknown>, now: number): Getters<R> {
  const get: Getters<R> = {};
  for (const [field, value] of Object.entries(bound) as Array<[Field, string]>) {
    get[field] = value === '@now' ? () => now : value.startsWith('@') ? rules[value]! : column(value);
  }
  return get;
}

const MAX_LABEL = 200;
/** Below this a number is epoch seconds (1e11 s is the year 5138; 1e11 ms is March 1973). */
export const EPOCH_SECONDS_BELOW = 1e11;
const ISO = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;
const NUMERIC = /^\d+(?:\.\d+)?$/;

/**
 * A time from a source: a Date (timestamptz), epoch seconds or milliseconds (a number, or a
 * string of digits; below 1e11 it is seconds), or ISO 8601 text. A time without a zone is UTC,
 * like a Postgres timestamp without time zone read by jwtir. Returns ms, or why it is not a time.
 */
export function parseTime(value: unknown): number | string {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'is not a valid time' : value.getTime();
  if (typeof value === 'number') return fromEpoch(value);
  if (typeof value === 'bigint') return fromEpoch(Number(value));
  if (typeof value !== 'string') return value === null || value === undefined ? 'is missing' : `is a ${Array.isArray(value) ? 'list' : typeof value}, not a time`;
  const text = value.trim();
  if (text === '') return 'is empty';
  if (NUMERIC.test(text)) return fromEpoch(Number(text));
  const m = ISO.exec(text);
  if (!m) return `"${clip(text)}" is not a time (ISO 8601, or epoch seconds or milliseconds)`;
  let zone = m[3] ?? 'Z';
  if (/^[+-]\d{2}$/.test(zone)) zone += ':00';
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const ms = Date.parse(`${m[1]}T${m[2] ?? '00:00:00'}${zone.toUpperCase()}`);
  return Number.isNaN(ms) ? `"${clip(text)}" is not a valid time` : ms;
}

function fromEpoch(n: number): number | string {
  if (!Number.isFinite(n) || n <= 0) return `${n} is not a time (epoch seconds or milliseconds after 1970)`;
  const ms = n < EPOCH_SECONDS_BELOW ? n * 1000 : n;
  return ms > 8.64e15 ? `${n} is beyond the year 275760` : Math.floor(ms);
}

/**
 * Roles: a list, or one string separated by commas or spaces (a Postgres array literal
 * `{admin,staff}` too); missing or empty is no roles.
 */
export function parseRoles(value: unknown): string[] | string {
  if (value === null || value === undefined) return [];
  let items: unknown[];
  if (Array.isArray(value)) items = value;
  else if (typeof value === 'string') {
    const text = value.trim().replace(/^\{(.*)\}$/s, '$1');
    items = text.split(/[\s,]+/).map((r) => r.replace(/^"(.*)"$/, '$1'));
  } else return `roles must be a list or a comma-separated string, got ${typeof value}`;
  const roles: string[] = [];
  for (const item of items) {
    if (item === '' || item === null) continue;
    if (typeof item !== 'string') return `roles must be strings, got ${JSON.stringify(item)?.slice(0, 40)}`;
    if (item.length > MAX_LABEL || /[\u0000-\u001f\u007f]/.test(item)) return `role "${clip(item)}" is too long or has control characters`;
    if (!roles.includes(item)) roles.push(item);
  }
  return roles;
}

/** Ids may be numbers in the source (serial keys): they become their decimal text. */
function idText(value: unknown): unknown {
  return typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : typeof value === 'bigint' ? value.toString() : value;
}

function optionalText(field: string, value: unknown): string | null | { problem: string } {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value !== 'string') return { problem: `${field} must be text, got ${typeof value}` };
  if (value.length > MAX_LABEL || /[\u0000-\u001f\u007f]/.test(value)) return { problem: `${field} is longer than ${MAX_LABEL} characters or has control characters` };
  return value;
}

/** Turns one record into a session, or says every reason it cannot be one. */
export function toRow<R>(get: Getters<R>, bound: Bound, record: R): ImportRow | string {
  const problems: string[] = [];
  const read = (f: Field) => get[f]?.(record);
  const sid = idText(read('sid'));
  const sub = idText(read('sub'));
  const sidProblem = valueProblem('sid', sid);
  if (sidProblem) problems.push(`sid (${bound.sid}) ${sidProblem === 'session must be a non-empty string' ? describeMissing(sid) : sidProblem.replace(/^session /, '')}`);
  const subProblem = valueProblem('user', sub);
  if (subProblem) problems.push(`sub (${bound.sub}) ${subProblem === 'user must be a non-empty string' ? describeMissing(sub) : subProblem.replace(/^user /, '')}`);
  const time = (f: 'issued_at' | 'expires_at'): number => {
    const t = parseTime(read(f));
    if (typeof t === 'string') problems.push(bound[f] === '@cookie' && t === 'is missing' ? `${f} (@cookie) needs cookie.expires and cookie.originalMaxAge; map ${f} to a field, or to @now` : `${f} (${bound[f]}) ${t}`);
    return typeof t === 'number' ? t : NaN;
  };
  const issuedAt = time('issued_at');
  const expiresAt = time('expires_at');
  if (expiresAt < issuedAt) problems.push('expires_at is before issued_at');
  const roles = bound.roles ? parseRoles(read('roles')) : [];
  if (typeof roles === 'string') problems.push(roles);
  let fph: string | null = null;
  if (bound.fph) {
    const raw = read('fph');
    if (raw !== null && raw !== undefined && raw !== '') {
      const lower = typeof raw === 'string' ? raw.toLowerCase() : raw;
      const problem = valueProblem('fph', lower);
      if (problem) problems.push(`fph (${bound.fph}) ${problem.replace(/^device fingerprint /, '')}`);
      else fph = lower as string;
    }
  }
  const labels = { device: optionalText('device', bound.device ? read('device') : null), place: optionalText('place', bound.place ? read('place') : null) };
  for (const v of Object.values(labels)) if (v && typeof v === 'object') problems.push(v.problem);
  if (problems.length) return problems.join('; ');
  return {
    sid: sid as string,
    sub: sub as string,
    issuedAt,
    expiresAt,
    roles: roles as string[],
    fph,
    device: labels.device as string | null,
    place: labels.place as string | null,
  };
}

function describeMissing(value: unknown): string {
  if (value === null || value === undefined) return 'is missing';
  if (value === '') return 'is empty';
  return `must be text, got ${Array.isArray(value) ? 'a list' : typeof value}`;
}

function clip(text: string, max = 60): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
