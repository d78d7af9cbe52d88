import { readFileSync } from 'node:fs';
import { LedgerMappingError } from '../errors.js';

/**
 * The ledger fields an import fills, and where each comes from in the source (the mapping):
 * a column (SQL, CSV), a dotted path into the JSON value (NDJSON, Redis), or one of the rules
 * below. Nothing is guessed: a field maps to a column of its own name unless told otherwise.
 */
export const FIELDS = ['sid', 'sub', 'issued_at', 'expires_at', 'roles', 'fph', 'device', 'place'] as const;
export type Field = (typeof FIELDS)[number];
export const REQUIRED: readonly Field[] = ['sid', 'sub', 'issued_at', 'expires_at'];

export const FIELD_NAMES: Record<Field, string> = {
  sid: 'session id',
  sub: 'subject (user)',
  issued_at: 'issued-at time',
  expires_at: 'expiry time',
  roles: 'roles',
  fph: 'device fingerprint hash',
  device: 'device label',
  place: 'place label',
};

export type SourceKind = 'sql' | 'csv' | 'ndjson' | 'redis';

/**
 * Rules a field may map to instead of a column:
 * - `@key`: the Redis key without the pattern's literal prefix (`sess:abc` under `sess:*` → `abc`).
 * - `@cookie`: express-session's cookie.expires − cookie.originalMaxAge, when the session was last
 *   saved with its full lifetime (for a rolling session that is its last save, not its first).
 * - `@ttl`: now + the key's remaining Redis TTL.
 * - `@now`: the time the import reads the row.
 */
export const RULES: Record<string, { fields: readonly Field[]; kinds: readonly SourceKind[] }> = {
  '@key': { fields: ['sid'], kinds: ['redis'] },
  '@cookie': { fields: ['issued_at'], kinds: ['ndjson', 'redis'] },
  '@ttl': { fields: ['expires_at'], kinds: ['redis'] },
  '@now': { fields: ['issued_at'], kinds: ['sql', 'csv', 'ndjson', 'redis'] },
};

/** Where each field comes from; null: not imported (optional fields only). */
export type Mapping = Record<Field, string | null>;

export interface ResolvedMapping {
  mapping: Mapping;
  /** Fields the operator named (flags or file): their column must exist, even for optional fields. */
  explicit: ReadonlySet<Field>;
}

/** express-session (connect-redis) keeps no session id, subject or issue time under those names. */
const REDIS_DEFAULTS: Partial<Mapping> = { sid: '@key', issued_at: '@cookie', expires_at: 'cookie.expires' };

const fieldList = `${REQUIRED.join(', ')} (required); ${FIELDS.filter((f) => !REQUIRED.includes(f)).join(', ')} (optional)`;

/**
 * The mapping for a source kind: defaults, then the --mapping file, then --map flags (a flag wins).
 * Every problem is collected and reported at once.
 */
export function resolveMapping(kind: SourceKind, opts: { map?: string[]; mappingFile?: string }): ResolvedMapping {
  const problems: string[] = [];
  const given: Partial<Mapping> = {};
  if (opts.mappingFile !== undefined) Object.assign(given, readMappingFile(opts.mappingFile, problems));
  const fromFlags: Partial<Mapping> = {};
  for (const text of opts.map ?? []) {
    for (const part of text.split(',')) {
      if (part.trim() === '') continue;
      const eq = part.indexOf('=');
      if (eq < 0) {
        problems.push(`--map "${part}" is not field=column`);
        continue;
      }
      const field = part.slice(0, eq).trim();
      const value = part.slice(eq + 1).trim();
      if (!isField(field)) {
        problems.push(`--map: unknown field "${field}"`);
        continue;
      }
      if (field in fromFlags && fromFlags[field] !== (value || null)) problems.push(`--map names ${field} twice`);
      fromFlags[field] = value === '' ? null : value;
    }
  }
  Object.assign(given, fromFlags);
  const mapping = Object.fromEntries(FIELDS.map((f) => [f, f])) as Mapping;
  if (kind === 'redis') Object.assign(mapping, REDIS_DEFAULTS);
  Object.assign(mapping, given);
  for (const field of FIELDS) {
    const value = mapping[field];
    if (value === null) {
      if (REQUIRED.includes(field)) problems.push(`${field} is required and cannot be left unmapped`);
      continue;
    }
    if (!value.startsWith('@')) continue;
    const rule = RULES[value];
    if (!rule) problems.push(`${field}=${value}: unknown rule (rules: ${Object.keys(RULES).join(', ')})`);
    else if (!rule.fields.includes(field)) problems.push(`${field}=${value}: ${value} applies to ${rule.fields.join(', ')} only`);
    else if (!rule.kinds.includes(kind)) problems.push(`${field}=${value}: ${value} is for ${rule.kinds.join(', ')} sources, not ${kind}`);
  }
  if (problems.length) {
    throw new LedgerMappingError(`the mapping has ${problems.length} problem${problems.length > 1 ? 's' : ''}:\n${problems.map((p) => `  ${p}`).join('\n')}`, {
      hint: `write --map field=column,… with fields ${fieldList}; leave an optional field out with field= ; nothing was changed`,
    });
  }
  return { mapping, explicit: new Set(Object.keys(given) as Field[]) };
}

function readMappingFile(file: string, problems: string[]): Partial<Mapping> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    problems.push(`--mapping ${file}: ${reason}`);
    return {};
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`--mapping ${file}: must be a JSON object of field: column`);
    return {};
  }
  const out: Partial<Mapping> = {};
  for (const [field, value] of Object.entries(raw)) {
    if (!isField(field)) problems.push(`--mapping ${file}: unknown field "${field}"`);
    else if (value !== null && (typeof value !== 'string' || value === '')) problems.push(`--mapping ${file}: ${field} must be a column name, or null to leave it out`);
    else out[field] = value;
  }
  return out;
}

function isField(name: string): name is Field {
  return (FIELDS as readonly string[]).includes(name);
}

/** The mapping with each field bound to what the source has; optional fields it lacks are dropped. */
export type Bound = Partial<Record<Field, string>>;

/**
 * Checks the mapping against the columns (or JSON fields) a source has. A required or explicitly
 * mapped field whose column is missing is an error that lists what the source has and the --map
 * to pass; an optional field left at its default is simply not imported when absent.
 */
export function bindMapping(resolved: ResolvedMapping, has: (column: string, field: Field) => boolean, opts: { columns: string[]; what: string; noun: string }): Bound {
  const bound: Bound = {};
  const missing: Field[] = [];
  for (const field of FIELDS) {
    const value = resolved.mapping[field];
    if (value === null) continue;
    if (value.startsWith('@') || has(value, field)) bound[field] = value;
    else if (REQUIRED.includes(field) || resolved.explicit.has(field)) missing.push(field);
  }
  if (missing.length) {
    const what = missing.map((f) => `no ${opts.noun} "${resolved.mapping[f]}" for the ${FIELD_NAMES[f]} (${f})`).join(', ');
    const shown = opts.columns.slice(0, 40).join(', ') + (opts.columns.length > 40 ? `, … (${opts.columns.length} in all)` : '');
    throw new LedgerMappingError(`${opts.what} ${what}; its ${opts.noun}s: ${shown || '(none)'}`, {
      hint: `map the fields to its ${opts.noun}s, e.g. --map ${missing.map((f) => `${f}=<${opts.noun}>`).join(',')} (fields: ${fieldList}); nothing was changed`,
      details: { missing, columns: opts.columns },
    });
  }
  return bound;
}

/** Reads a dotted path (`passport.user`) from a JSON value; an exact key with a dot wins. */
export function pathGetter(path: string): (value: unknown) => unknown {
  const parts = path.split('.');
  return (value) => {
    if (value === null || typeof value !== 'object') return undefined;
    const obj = value as Record<string, unknown>;
    if (parts.length === 1 || Object.hasOwn(obj, path)) return Object.hasOwn(obj, path) ? obj[path] : undefined;
    let cur: unknown = obj;
    for (const part of parts) {
      if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
      cur = (cur as Record<string, unknown>)[part];
    }
    return cur;
  };
}

/**
 * For JSON records, where fields come and go from one record to the next: the first record must
 * have the required fields; optional ones are read wherever a record has them.
 */
export function jsonHas(first: unknown): (path: string, field: Field) => boolean {
  return (path, field) => !REQUIRED.includes(field) || pathGetter(path)(first) !== undefined;
}

/** The paths a JSON value has (nested objects one level down), for messages. */
export function pathsOf(value: unknown): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const inner of Object.keys(v)) out.push(`${k}.${inner}`);
    else out.push(k);
  }
  return out;
}

/**
 * The `@cookie` rule: express-session stores cookie.expires (ISO 8601) and cookie.originalMaxAge
 * (ms) with every save, so their difference is when the session was saved with its full lifetime.
 */
export function cookieIssuedAt(value: unknown): unknown {
  const cookie = pathGetter('cookie')(value) as { expires?: unknown; originalMaxAge?: unknown } | undefined;
  if (!cookie || typeof cookie !== 'object') return undefined;
  const expires = typeof cookie.expires === 'string' ? Date.parse(cookie.expires) : NaN;
  if (Number.isNaN(expires) || typeof cookie.originalMaxAge !== 'number') return undefined;
  return expires - cookie.originalMaxAge;
}
