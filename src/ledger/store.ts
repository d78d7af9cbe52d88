import { InvalidStateError } from '../errors.js';
import type { Db, Queryable } from '../store/db.js';
import { advanceMark, lowerMark, type Mark } from './source.js';

/** One import as the command recorded it before its run; the merge and its undo fill in the rest. */
export interface ImportRecord {
  id: string;
  sourceId: string;
  kind: string;
  kid: string;
  description: string;
  markBefore: Mark | null;
  markAfter: Mark | null;
  rows: number;
  runId: number | null;
  mergedAt: Date | null;
  newSessions: number | null;
  undoneAt: Date | null;
  removed: number | null;
  kept: number | null;
}

/** The columns of one staged chunk (see migration 009). */
export interface Chunk {
  sid: string[];
  sub: string[];
  roles: string[];
  fph: Array<string | null>;
  issuedMs: number[];
  expiresMs: number[];
  device: Array<string | null>;
  place: Array<string | null>;
  cohort: number[];
  seen: string[];
}

export async function currentMark(db: Queryable, sourceId: string): Promise<Mark | null> {
  const [row] = await db.query<{ mark: Mark | null }>('SELECT mark FROM ledger_sources WHERE id = $1', [sourceId]);
  return row?.mark ?? null;
}

export async function createImport(db: Queryable, r: Pick<ImportRecord, 'id' | 'sourceId' | 'kind' | 'kid' | 'description' | 'markBefore' | 'markAfter' | 'rows'>): Promise<void> {
  await db.query(
    `INSERT INTO ledger_imports (id, source_id, kind, kid, description, mark_before, mark_after, rows) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [r.id, r.sourceId, r.kind, r.kid, r.description, json(r.markBefore), json(r.markAfter), r.rows],
  );
}

export async function insertChunk(db: Queryable, importId: string, n: number, c: Chunk): Promise<void> {
  await db.query(
    `INSERT INTO ledger_staging (import_id, chunk, sid, sub, roles, fph, issued_ms, expires_ms, device, place, cohort, seen)
     VALUES ($1, $2, $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::text[], $10::text[], $11::smallint[], $12::text[])`,
    [importId, n, c.sid, c.sub, c.roles, c.fph, c.issuedMs, c.expiresMs, c.device, c.place, c.cohort, c.seen],
  );
}

/** What the read found, once the whole source was read and checked. */
export async function finishImport(db: Queryable, id: string, rows: number, markAfter: Mark | null): Promise<void> {
  await db.query('UPDATE ledger_imports SET rows = $2, mark_after = $3 WHERE id = $1', [id, rows, json(markAfter)]);
}

/** Whether a run names this import (so its staged rows are the run's to merge or undo). */
export async function importHasRun(db: Queryable, id: string): Promise<boolean> {
  return (await db.query(`SELECT 1 FROM runs WHERE runbook = 'ledger-import' AND params->>'staged' = $1`, [id])).length > 0;
}

/** Removes an import no run will merge: a bad source, a declined plan, a lock held by another run. */
export async function discardImport(db: Db, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('DELETE FROM ledger_staging WHERE import_id = $1', [id]);
    await tx.query('DELETE FROM ledger_imports WHERE id = $1 AND merged_at IS NULL', [id]);
  });
}

/**
 * Staged chunks of imports whose command was killed before its run started, or whose run ended
 * without merging them (rolled back before its step ran). An hour old at least, so a command
 * still reading its source is never touched.
 */
export async function pruneAbandoned(db: Queryable): Promise<void> {
  const abandoned = `SELECT i.id FROM ledger_imports i WHERE i.merged_at IS NULL AND i.created_at < now() - interval '1 hour'
    AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.runbook = 'ledger-import' AND r.params->>'staged' = i.id AND r.status NOT IN ('done', 'rolled_back'))`;
  await db.query(`DELETE FROM ledger_staging WHERE import_id IN (${abandoned})`);
  await db.query(`DELETE FROM ledger_imports i WHERE i.id IN (${abandoned}) AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.params->>'staged' = i.id)`);
}

export async function getImport(db: Queryable, id: string): Promise<ImportRecord> {
  const [r] = await db.query<Record<string, unknown>>('SELECT * FROM ledger_imports WHERE id = $1', [id]);
  if (!r) throw new InvalidStateError(`import ${id} is not in the state`, { hint: 'start a new import with `jwtir ledger import`' });
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: r.id as string,
    sourceId: r.source_id as string,
    kind: r.kind as string,
    kid: r.kid as string,
    description: r.description as string,
    markBefore: (r.mark_before as Mark | null) ?? null,
    markAfter: (r.mark_after as Mark | null) ?? null,
    rows: Number(r.rows),
    runId: num(r.run_id),
    mergedAt: r.merged_at ? new Date(r.merged_at as string) : null,
    newSessions: num(r.new_sessions),
    undoneAt: r.undone_at ? new Date(r.undone_at as string) : null,
    removed: num(r.removed),
    kept: num(r.kept),
  };
}

export interface MergeResult {
  read: number;
  new: number;
  known: number;
  mark: Mark | null;
}

/** Staged chunks merged per statement: each stays well inside the database client's query timeout. */
const CHUNKS_PER_STATEMENT = 10;

/**
 * Moves an import's staged rows into the ledger in one transaction: new session ids are added,
 * tagged with the run; ones the ledger has are left as they are (their first record stands);
 * the source's mark moves on; the staged chunks go. Applied again (a resume), it returns what
 * the first application recorded.
 */
export async function mergeImport(db: Db, id: string, runId: number, step: string, progress: (rows: number) => void = () => {}): Promise<MergeResult> {
  return db.transaction(async (tx) => {
    const [locked] = await tx.query<{ merged: boolean }>('SELECT merged_at IS NOT NULL AS merged FROM ledger_imports WHERE id = $1 FOR UPDATE', [id]);
    const rec = await getImport(tx, id);
    if (!locked?.merged) {
      if (rec.runId !== null && rec.runId !== runId) throw new InvalidStateError(`import ${id} belongs to run ${rec.runId}`);
      const chunks = await tx.query<{ chunk: number; n: number }>('SELECT chunk, cardinality(sid) AS n FROM ledger_staging WHERE import_id = $1 ORDER BY chunk', [id]);
      let added = 0;
      let done = 0;
      for (let i = 0; i < chunks.length; i += CHUNKS_PER_STATEMENT) {
        const part = chunks.slice(i, i + CHUNKS_PER_STATEMENT);
        const [ins] = await tx.query<{ n: number }>(
          `WITH ins AS (
             INSERT INTO sessions (sid, sub, kid, roles, fph, issued_at, expires_at, source, cohort, device, place, import_run)
             SELECT u.sid, u.sub, $2, u.roles::text[], u.fph, to_timestamp(u.iat / 1000.0), to_timestamp(u.exp / 1000.0), $3, u.cohort, u.device, u.place, $4
             FROM ledger_staging st,
               unnest(st.sid, st.sub, st.roles, st.fph, st.issued_ms, st.expires_ms, st.cohort, st.device, st.place) AS u(sid, sub, roles, fph, iat, exp, cohort, device, place)
             WHERE st.import_id = $1 AND st.chunk = ANY($5::int[])
             ON CONFLICT (sid) DO NOTHING
             RETURNING 1)
           SELECT count(*)::int AS n FROM ins`,
          [id, rec.kid, `import:${rec.kind}`, runId, part.map((c) => c.chunk)],
        );
        added += ins!.n;
        done += part.reduce((sum, c) => sum + Number(c.n), 0);
        progress(done);
      }
      await tx.query(
        `UPDATE sessions s SET import_seen_run = $2
         FROM (SELECT DISTINCT unnest(seen) AS sid FROM ledger_staging WHERE import_id = $1) k
         WHERE s.sid = k.sid AND s.import_run IS NOT NULL AND s.import_run <> $2`,
        [id, runId],
      );
      const current = await currentMark(tx, rec.sourceId);
      await tx.query(
        `INSERT INTO ledger_sources (id, kind, description, mark) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, mark = EXCLUDED.mark, updated_at = now()`,
        [rec.sourceId, rec.kind, rec.description, json(advanceMark(current, rec.markBefore, rec.markAfter))],
      );
      await tx.query('UPDATE ledger_imports SET run_id = $2, step = $3, merged_at = now(), new_sessions = $4 WHERE id = $1', [id, runId, step, added]);
      await tx.query('DELETE FROM ledger_staging WHERE import_id = $1', [id]);
      rec.newSessions = added;
    }
    return { read: rec.rows, new: rec.newSessions!, known: rec.rows - rec.newSessions!, mark: rec.markAfter };
  });
}

/**
 * Undoes a merged import: removes the sessions its run added, except those an import of another
 * source (not itself undone) read since; those stay and become that import's, so undoing it
 * removes them. The source's mark goes back to where this import started reading (or stays
 * lower), so the next import reads these rows again. Idempotent.
 */
export async function unmergeImport(db: Db, id: string): Promise<{ removed: number; kept: number }> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT 1 FROM ledger_imports WHERE id = $1 FOR UPDATE', [id]);
    const rec = await getImport(tx, id);
    if (rec.undoneAt) return { removed: rec.removed ?? 0, kept: rec.kept ?? 0 };
    let removed = 0;
    let kept = 0;
    if (rec.mergedAt && rec.runId !== null) {
      const [k] = await tx.query<{ n: number }>(
        `WITH k AS (
           UPDATE sessions SET import_run = import_seen_run, import_seen_run = NULL
           WHERE import_run = $1 AND import_seen_run IN (SELECT run_id FROM ledger_imports WHERE run_id IS NOT NULL AND merged_at IS NOT NULL AND undone_at IS NULL AND id <> $2)
           RETURNING 1)
         SELECT count(*)::int AS n FROM k`,
        [rec.runId, id],
      );
      const [d] = await tx.query<{ n: number }>('WITH d AS (DELETE FROM sessions WHERE import_run = $1 RETURNING 1) SELECT count(*)::int AS n FROM d', [rec.runId]);
      kept = k!.n;
      removed = d!.n;
      const current = await currentMark(tx, rec.sourceId);
      await tx.query('UPDATE ledger_sources SET mark = $2, updated_at = now() WHERE id = $1', [rec.sourceId, json(lowerMark(current, rec.markBefore))]);
    }
    await tx.query('DELETE FROM ledger_staging WHERE import_id = $1', [id]);
    await tx.query('UPDATE ledger_imports SET undone_at = now(), removed = $2, kept = $3 WHERE id = $1', [id, removed, kept]);
    return { removed, kept };
  });
}

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));
