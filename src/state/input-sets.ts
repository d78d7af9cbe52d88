import { createHash } from 'node:crypto';
import { InvalidStateError } from '../errors.js';
import type { Queryable } from '../store/db.js';
import { canonicalJson } from './canonical-json.js';

/**
 * A large input of a run (a findings file's 100,000 jtis), stored once by content hash so the
 * run's parameters and the audit trail carry the hash and the counts instead of the list.
 */
export interface InputSet<T> {
  /** sha256 of the canonical JSON of `items`. */
  hash: string;
  kind: string;
  items: T[];
  /** Where the items came from (a file name, or "flags"), for people reading the run. */
  source: string | null;
}

/** `canonical`: the items' canonical JSON when the caller can write it faster than the general canonicalizer. */
export function inputSetOf<T>(kind: string, items: T[], source: string | null, canonical = canonicalJson(items)): InputSet<T> {
  return { hash: createHash('sha256').update(canonical).digest('hex'), kind, items, source };
}

/**
 * Sets held for this process only: a dry run plans with the set (its blast radius) but must not
 * write anything, so the plan reads it from here instead of the database.
 */
const pending = new Map<string, InputSet<unknown>>();

export function holdInputSet(set: InputSet<unknown>): void {
  pending.set(set.hash, set);
}

/** Stores a set; storing the same content again is a no-op (the hash is the key). */
export async function saveInputSet(db: Queryable, set: InputSet<unknown>): Promise<void> {
  await db.query(
    `INSERT INTO input_sets (hash, kind, items, count, source) VALUES ($1, $2, $3::jsonb, $4, $5) ON CONFLICT (hash) DO NOTHING`,
    [set.hash, set.kind, JSON.stringify(set.items), set.items.length, set.source],
  );
}

/** The set a run names; a run whose set is gone cannot say what it was meant to do, so that is an error. */
export async function loadInputSet<T>(db: Queryable, kind: string, hash: string): Promise<InputSet<T>> {
  const held = pending.get(hash);
  if (held && held.kind === kind) return held as InputSet<T>;
  const [row] = await db.query<{ items: T[]; source: string | null }>('SELECT items, source FROM input_sets WHERE hash = $1 AND kind = $2', [hash, kind]);
  if (!row) throw new InvalidStateError(`the ${kind} input set ${hash.slice(0, 12)}… is not in the state`, { hint: 'start a new run with the same input' });
  return { hash, kind, items: row.items, source: row.source };
}
