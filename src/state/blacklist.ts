import type { Queryable } from '../store/db.js';
import type { RevocationKind } from '../store/hot/hot-store.js';
import { CONTROL_CHARS, quote } from '../lib/printable.js';
import { looksLikeToken } from '../lib/token-shape.js';
import { inputSetOf, type InputSet } from './input-sets.js';

/**
 * The blacklist (PLAYBOOK A6): temporary denylist entries by jti, session, device fingerprint
 * (rows in `revocations`) and by user (a not-before watermark in `watermarks`).
 */
export type BlacklistKind = RevocationKind | 'user';

/** One entry as given (a flag or a findings-file line), before its expiry is computed. */
export interface BlacklistEntry {
  kind: BlacklistKind;
  value: string;
  /** NumericDate (seconds) by which the covered tokens expire, when the finding says so. */
  exp?: number;
  reason?: string;
}

/** The names operators write (flags, --kind, list output) for each kind. */
export const KIND_NAMES: Record<BlacklistKind, 'jti' | 'session' | 'device' | 'user'> = { jti: 'jti', sid: 'session', fph: 'device', user: 'user' };

export const INPUT_SET_KIND = 'blacklist';
/** Longest jti, session id or subject accepted: real ones are far shorter; a longer one is a mistake. */
export const MAX_VALUE_BYTES = 1024;
const FPH = /^[0-9a-f]{64}$/;
const keyOf = (e: { kind: string; value: string }) => `${e.kind}\u0000${e.value}`;

/** Why a value cannot be an entry of this kind, or null when it can. */
export function valueProblem(kind: BlacklistKind, value: unknown): string | null {
  const name = KIND_NAMES[kind];
  if (typeof value !== 'string' || value === '') return `${name} must be a non-empty string`;
  // First, so that no message below repeats it: a token pasted where an id belongs.
  if (looksLikeToken(value)) return `this looks like a token, not a ${name}: to blacklist a token, give it as {"token": …} in a findings file (--from-file)`;
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES) return `${name} is longer than ${MAX_VALUE_BYTES} bytes`;
  if (CONTROL_CHARS.test(value)) return `${name} contains control characters`;
  if (kind === 'fph' && !FPH.test(value)) {
    return `device fingerprint ${quote(value, 80)} is not a lower-case hex SHA-256 (64 characters 0-9a-f)`;
  }
  return null;
}

/**
 * The canonical entry list of a run: one entry per kind and value, sorted, so the same findings
 * give the same hash however they were ordered or repeated. Duplicates keep the first reason and
 * the latest exp, and no exp at all if any duplicate had none (then nothing bounds it but the policy).
 */
export function entrySet(entries: BlacklistEntry[], source: string | null): InputSet<BlacklistEntry> {
  const merged = new Map<string, BlacklistEntry>();
  for (const e of entries) {
    const seen = merged.get(keyOf(e));
    if (!seen) {
      merged.set(keyOf(e), { ...e });
      continue;
    }
    seen.exp = seen.exp === undefined || e.exp === undefined ? undefined : Math.max(seen.exp, e.exp);
    if (seen.exp === undefined) delete seen.exp;
    if (seen.reason === undefined && e.reason !== undefined) seen.reason = e.reason;
  }
  // Code-unit order, not locale order: the hash must not depend on where jwtir runs.
  const keys = [...merged.keys()].sort();
  // Members in sorted order (exp, kind, reason, value) make JSON.stringify's output RFC 8785
  // canonical for these flat objects, at a thirtieth of the cost of the general canonicalizer.
  const items = keys.map((k) => {
    const e = merged.get(k)!;
    return { ...(e.exp === undefined ? {} : { exp: e.exp }), kind: e.kind, ...(e.reason === undefined ? {} : { reason: e.reason }), value: e.value };
  });
  return inputSetOf(INPUT_SET_KIND, items, source, JSON.stringify(items));
}

/** How many entries of each kind a set holds. */
export function countKinds(items: BlacklistEntry[]): Record<BlacklistKind, number> {
  const n: Record<BlacklistKind, number> = { jti: 0, sid: 0, fph: 0, user: 0 };
  for (const e of items) n[e.kind]++;
  return n;
}

export function valuesOf(items: BlacklistEntry[], kind: BlacklistKind): string[] {
  return items.filter((e) => e.kind === kind).map((e) => e.value);
}


/** Entries that are not blacklisted now: no live revocation row, or no user watermark in force. */
export async function notBlacklisted(db: Queryable, items: BlacklistEntry[]): Promise<BlacklistEntry[]> {
  const live = new Set<string>();
  for (const kind of ['jti', 'sid', 'fph'] as const) {
    const values = valuesOf(items, kind);
    if (values.length === 0) continue;
    const rows = await db.query<{ value: string }>(
      `SELECT DISTINCT value FROM revocations WHERE kind = $1 AND value = ANY($2::text[]) AND lifted_at IS NULL AND expires_at > now()`,
      [kind, values],
    );
    for (const r of rows) live.add(keyOf({ kind, value: r.value }));
  }
  const users = valuesOf(items, 'user');
  if (users.length) {
    const rows = await db.query<{ subject: string }>(
      `SELECT DISTINCT subject FROM watermarks WHERE scope = 'user' AND subject = ANY($1::text[]) AND cleared_at IS NULL`,
      [users],
    );
    for (const r of rows) live.add(keyOf({ kind: 'user', value: r.subject }));
  }
  return items.filter((e) => !live.has(keyOf(e)));
}

/** A live entry: a revocation neither lifted nor expired, or a user watermark not cleared nor past its expiry. */
export interface ListedEntry {
  kind: (typeof KIND_NAMES)[BlacklistKind];
  value: string;
  expiresAt: Date | null;
  expiryRule: string | null;
  reason: string | null;
  /** The run that made it; null for the guard's own (a refresh-token reuse). */
  runId: number | null;
  createdAt: Date;
}

const LIVE_ENTRIES_SQL = `
  SELECT CASE kind WHEN 'sid' THEN 'session' WHEN 'fph' THEN 'device' ELSE kind END AS kind, value, expires_at, expiry_rule, reason, run_id, created_at
  FROM revocations WHERE lifted_at IS NULL AND expires_at > now()
  UNION ALL
  SELECT 'user', subject, expires_at, expiry_rule, reason, run_id, created_at
  FROM watermarks WHERE scope = 'user' AND cleared_at IS NULL AND (expires_at IS NULL OR expires_at > now())`;

/** The newest live entries first, optionally of one kind; with the total so a listing can say what it left out. */
export async function listBlacklist(db: Queryable, opts: { kind?: BlacklistKind; limit: number }): Promise<{ total: number; entries: ListedEntry[] }> {
  const kind = opts.kind ? KIND_NAMES[opts.kind] : null;
  const [count] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${LIVE_ENTRIES_SQL}) e WHERE $1::text IS NULL OR kind = $1`, [kind]);
  const rows = await db.query<{ kind: ListedEntry['kind']; value: string; expires_at: Date | null; expiry_rule: string | null; reason: string | null; run_id: number; created_at: Date }>(
    `SELECT * FROM (${LIVE_ENTRIES_SQL}) e WHERE $1::text IS NULL OR kind = $1 ORDER BY created_at DESC, kind, value LIMIT $2`,
    [kind, opts.limit],
  );
  return {
    total: count!.n,
    entries: rows.map((r) => ({
      kind: r.kind,
      value: r.value,
      expiresAt: r.expires_at ? new Date(r.expires_at) : null,
      expiryRule: r.expiry_rule,
      reason: r.reason,
      runId: Number(r.run_id) || null,
      createdAt: new Date(r.created_at),
    })),
  };
}
