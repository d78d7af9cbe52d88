import type { JsonWebKey } from 'node:crypto';
import { UnknownKidError } from '../errors.js';
import type { Queryable } from '../store/db.js';
import type { HotStore, KeyAlg, KeyState, PublishedKey } from '../store/hot/hot-store.js';

/** A row of the key store. `private_enc` never leaves this module's callers unsealed. */
export interface KeyRecord {
  kid: string;
  alg: KeyAlg;
  state: KeyState;
  publicJwk: JsonWebKey | null;
  privateEnc: string | null;
  kidless: boolean;
  weak: boolean;
  origin: 'imported' | 'generated';
  originRun: number | null;
  originStep: string | null;
  publishedAt: Date | null;
  activatedAt: Date | null;
  retiredAt: Date | null;
  verifyUntil: Date | null;
  compromised: boolean;
  compromisedAt: Date | null;
  createdAt: Date;
}

const COLUMNS = `kid, alg, state, public_jwk, private_enc, kidless, weak, origin, origin_run, origin_step,
  published_at, activated_at, retired_at, verify_until, compromised, compromised_at, created_at`;

export async function listKeys(db: Queryable): Promise<KeyRecord[]> {
  return (await db.query(`SELECT ${COLUMNS} FROM keys ORDER BY created_at, kid`)).map(toRecord);
}

export async function findKey(db: Queryable, kid: string): Promise<KeyRecord | undefined> {
  const rows = await db.query(`SELECT ${COLUMNS} FROM keys WHERE kid = $1`, [kid]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function getKey(db: Queryable, kid: string): Promise<KeyRecord> {
  const key = await findKey(db, kid);
  if (key) return key;
  const known = (await db.query<{ kid: string }>('SELECT kid FROM keys ORDER BY created_at')).map((r) => r.kid);
  throw new UnknownKidError(`no key with kid "${kid}"`, {
    hint: known.length ? `known kids: ${known.join(', ')} (see \`jwtir keys list\`)` : 'the key store is empty; import the current secret with `jwtir keys import`',
  });
}

export async function findActiveKey(db: Queryable): Promise<KeyRecord | undefined> {
  const rows = await db.query(`SELECT ${COLUMNS} FROM keys WHERE state = 'active'`);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function findKeyByOrigin(db: Queryable, runId: number, step: string): Promise<KeyRecord | undefined> {
  const rows = await db.query(`SELECT ${COLUMNS} FROM keys WHERE origin_run = $1 AND origin_step = $2`, [runId, step]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export interface NewKey {
  kid: string;
  alg: KeyAlg;
  state: KeyState;
  publicJwk: JsonWebKey | undefined;
  privateEnc: string;
  kidless: boolean;
  weak: boolean;
  origin: 'imported' | 'generated';
  originRun: number | null;
  originStep: string | null;
}

export async function insertKey(db: Queryable, key: NewKey): Promise<void> {
  await db.query(
    `INSERT INTO keys (kid, alg, state, public_jwk, private_enc, kidless, weak, origin, origin_run, origin_step, activated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $3 = 'active' THEN now() END)`,
    [key.kid, key.alg, key.state, key.publicJwk ? JSON.stringify(key.publicJwk) : null, key.privateEnc, key.kidless, key.weak, key.origin, key.originRun, key.originStep],
  );
}

/** What verifiers may know: published keys, with symmetric secrets still sealed. */
export function toPublishedKeys(keys: KeyRecord[]): PublishedKey[] {
  return keys
    .filter((k) => k.publishedAt !== null && k.state !== 'destroyed')
    .map((k) => ({
      kid: k.kid,
      alg: k.alg,
      state: k.state,
      kidless: k.kidless,
      verifyUntil: k.verifyUntil?.getTime() ?? null,
      compromised: k.compromised,
      compromisedAt: k.compromisedAt?.getTime() ?? null,
      activatedAt: k.activatedAt?.getTime() ?? null,
      retiredAt: k.retiredAt?.getTime() ?? null,
      ...(k.alg === 'HS256' ? { sealedSecret: k.privateEnc ?? undefined } : { publicJwk: k.publicJwk ?? undefined }),
    }));
}

/** Pushes the current keyset to the hot store so every guard learns it. */
export async function syncKeysToHotStore(db: Queryable, hot: HotStore): Promise<PublishedKey[]> {
  const published = toPublishedKeys(await listKeys(db));
  await hot.publishKeys(published);
  return published;
}

function toRecord(row: Record<string, unknown>): KeyRecord {
  const date = (v: unknown) => (v ? new Date(v as string | Date) : null);
  return {
    kid: row.kid as string,
    alg: row.alg as KeyAlg,
    state: row.state as KeyState,
    publicJwk: (typeof row.public_jwk === 'string' ? JSON.parse(row.public_jwk) : row.public_jwk) as JsonWebKey | null,
    privateEnc: row.private_enc as string | null,
    kidless: row.kidless as boolean,
    weak: row.weak as boolean,
    origin: row.origin as 'imported' | 'generated',
    originRun: row.origin_run === null ? null : Number(row.origin_run),
    originStep: row.origin_step as string | null,
    publishedAt: date(row.published_at),
    activatedAt: date(row.activated_at),
    retiredAt: date(row.retired_at),
    verifyUntil: date(row.verify_until),
    compromised: row.compromised as boolean,
    compromisedAt: date(row.compromised_at),
    createdAt: date(row.created_at)!,
  };
}

/** A key as shown to operators: no private material, not even sealed. */
export function describeKey(k: KeyRecord) {
  return {
    kid: k.kid,
    alg: k.alg,
    state: k.state,
    kidless: k.kidless,
    weak: k.weak,
    origin: k.origin,
    published: k.publishedAt !== null,
    publishedAt: k.publishedAt?.toISOString() ?? null,
    activatedAt: k.activatedAt?.toISOString() ?? null,
    retiredAt: k.retiredAt?.toISOString() ?? null,
    verifyUntil: k.verifyUntil?.toISOString() ?? null,
    compromised: k.compromised,
    compromisedAt: k.compromisedAt?.toISOString() ?? null,
    createdAt: k.createdAt.toISOString(),
    hasPrivateMaterial: k.privateEnc !== null,
    publicJwk: k.publicJwk,
  };
}
