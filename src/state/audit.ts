import { createHash } from 'node:crypto';
import { AuditUnwritableError } from '../errors.js';
import { LockId, withXactLock, type Db } from '../store/db.js';
import { canonicalJson } from './canonical-json.js';
import { redact } from './redact.js';

/**
 * The append-only, hash-chained audit trail. Each row's hash covers the previous row's hash and
 * the row's canonical body, so altering, removing or reordering any row breaks every hash after
 * it: `hash = sha256(prev_hash + "\n" + canonical_json(body))`.
 */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditInput {
  actor: string;
  action: string;
  runId?: number | undefined;
  step?: string | undefined;
  /** intent (before the effect), done, failed, skipped, undo-intent, undo-done, or an event name. */
  phase?: string | undefined;
  params?: unknown;
  result?: unknown;
  /** How to undo this action, as a command an operator could run. */
  undo?: string | undefined;
}

export interface AuditBody {
  seq: number;
  at: string;
  actor: string;
  action: string;
  run: number | null;
  step: string | null;
  phase: string | null;
  params: unknown;
  result: unknown;
  undo: string | null;
}

export interface AuditRow {
  seq: number;
  body: AuditBody;
  prevHash: string;
  hash: string;
}

export function hashRow(prevHash: string, body: AuditBody): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(body)).digest('hex');
}

/**
 * Appends one row. With `idempotencyKey`, a row already written under that key is returned
 * instead of a second one: a resumed step does not repeat its audit rows. Throws
 * AuditUnwritableError when the row cannot be written; callers must not act in that case.
 */
export async function appendAudit(db: Db, input: AuditInput, idempotencyKey?: string): Promise<AuditRow> {
  try {
    return await withXactLock(db, LockId.auditAppend, async (tx) => {
      if (idempotencyKey) {
        const existing = await tx.query<{ seq: number; body: AuditBody; prev_hash: string; hash: string }>(
          'SELECT seq, body, prev_hash, hash FROM audit WHERE idem = $1',
          [idempotencyKey],
        );
        if (existing[0]) return toRow(existing[0]);
      }
      const [head] = await tx.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
      const body: AuditBody = {
        seq: (head?.seq ?? 0) + 1,
        at: new Date().toISOString(),
        actor: input.actor,
        action: input.action,
        run: input.runId ?? null,
        step: input.step ?? null,
        phase: input.phase ?? null,
        params: redact(input.params ?? null),
        result: redact(input.result ?? null),
        undo: input.undo ?? null,
      };
      const prevHash = head?.hash ?? GENESIS_HASH;
      const hash = hashRow(prevHash, body);
      await tx.query('INSERT INTO audit (seq, at, body, prev_hash, hash, idem) VALUES ($1, $2, $3, $4, $5, $6)', [
        body.seq,
        body.at,
        canonicalJson(body),
        prevHash,
        hash,
        idempotencyKey ?? null,
      ]);
      return { seq: body.seq, body, prevHash, hash };
    });
  } catch (error) {
    throw new AuditUnwritableError(`the audit trail could not be written, so "${input.action}" was not carried out: ${(error as Error).message}`, {
      cause: error,
      hint: 'fix the database (permissions, disk, connectivity) and run the command again; nothing was changed',
    });
  }
}

export type ChainVerdict =
  | { intact: true; rows: number; head: string }
  | { intact: false; rows: number; firstBadSeq: number; reason: string };

/** Walks the chain from the first row and names the first row that does not verify. */
export async function verifyAuditChain(db: Db): Promise<ChainVerdict> {
  const rows = await db.query<{ seq: number; body: AuditBody; prev_hash: string; hash: string }>(
    'SELECT seq, body, prev_hash, hash FROM audit ORDER BY seq',
  );
  let prev = GENESIS_HASH;
  let expectedSeq = 1;
  for (const raw of rows) {
    const row = toRow(raw);
    const bad = (reason: string): ChainVerdict => ({ intact: false, rows: rows.length, firstBadSeq: row.seq, reason });
    if (row.seq !== expectedSeq) return bad(`expected row ${expectedSeq} here, found row ${row.seq} (a row was removed)`);
    if (row.body.seq !== row.seq) return bad('the row body names a different sequence number');
    if (row.prevHash !== prev) return bad('its previous-hash does not match the row before it (rows removed or reordered)');
    if (hashRow(prev, row.body) !== row.hash) return bad('its content does not match its hash (the row was altered)');
    prev = row.hash;
    expectedSeq += 1;
  }
  return { intact: true, rows: rows.length, head: prev };
}

export async function listAudit(db: Db, opts: { runId?: number; limit?: number } = {}): Promise<AuditRow[]> {
  const rows = await db.query<{ seq: number; body: AuditBody; prev_hash: string; hash: string }>(
    `SELECT seq, body, prev_hash, hash FROM audit
     WHERE ($1::bigint IS NULL OR (body->>'run')::bigint = $1) ORDER BY seq DESC LIMIT $2`,
    [opts.runId ?? null, opts.limit ?? 1_000_000],
  );
  return rows.map(toRow).reverse();
}

function toRow(raw: { seq: number; body: AuditBody | string; prev_hash: string; hash: string }): AuditRow {
  const body = typeof raw.body === 'string' ? (JSON.parse(raw.body) as AuditBody) : raw.body;
  return { seq: Number(raw.seq), body, prevHash: raw.prev_hash, hash: raw.hash };
}
