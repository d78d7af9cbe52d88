import type { Queryable } from '../store/db.js';
import type { HotStore, WatermarkScope } from '../store/hot/hot-store.js';

/**
 * Recomputes the effective watermark (the latest not-before any run still holds) of the given
 * subjects and pushes it to the hot store; subjects with none left are removed there.
 */
export async function syncWatermarks(db: Queryable, hot: HotStore, scope: WatermarkScope, subjects: string[]): Promise<void> {
  if (subjects.length === 0) return;
  const rows = await db.query<{ subject: string; nb: number }>(
    `SELECT subject, floor(extract(epoch FROM max(not_before)))::bigint AS nb
     FROM watermarks WHERE scope = $1 AND subject = ANY($2::text[]) AND cleared_at IS NULL GROUP BY subject`,
    [scope, subjects],
  );
  const effective = new Map(rows.map((r) => [r.subject, Number(r.nb)]));
  await hot.putWatermarks(
    scope,
    subjects.map((s) => [s, effective.get(s) ?? null]),
  );
}

/** The subjects whose watermarks a run step set. */
export async function subjectsSetBy(db: Queryable, scope: WatermarkScope, runId: number, step: string): Promise<string[]> {
  const rows = await db.query<{ subject: string }>('SELECT subject FROM watermarks WHERE scope = $1 AND run_id = $2 AND step = $3', [scope, runId, step]);
  return rows.map((r) => r.subject);
}

/**
 * Undo of a step that set watermarks: its rows are cleared (not deleted: run again after a crash
 * or a failed push, it still knows whom to push). A row a later step cleared meanwhile
 * (`blacklist remove --user`) is no longer that step's to restore, so undoing it afterwards does
 * not bring back an undone watermark. `scope` null: every scope.
 */
export async function clearOwnWatermarks(db: Queryable, runId: number, step: string, scope: WatermarkScope | null): Promise<void> {
  await db.query(
    'UPDATE watermarks SET cleared_at = coalesce(cleared_at, now()), cleared_by = NULL WHERE run_id = $1 AND step = $2 AND ($3::text IS NULL OR scope = $3)',
    [runId, step, scope],
  );
}

/**
 * Clears watermarks of other steps (a `blacklist remove --user`), recording which step cleared
 * them so its undo can restore exactly those. `where` is SQL over `watermarks` with parameters
 * from $3 on ($1 the clearing step's tag, $2 the scope). Returns the subjects touched.
 */
export async function clearWatermarksBy(db: Queryable, hot: HotStore, scope: WatermarkScope, tag: string, where: string, params: unknown[]): Promise<string[]> {
  await db.query(`UPDATE watermarks SET cleared_at = now(), cleared_by = $1 WHERE scope = $2 AND cleared_at IS NULL AND (${where})`, [tag, scope, ...params]);
  const subjects = (await db.query<{ subject: string }>('SELECT DISTINCT subject FROM watermarks WHERE scope = $1 AND cleared_by = $2', [scope, tag])).map((r) => r.subject);
  await syncWatermarks(db, hot, scope, subjects);
  return subjects;
}

/** Undo of clearWatermarksBy: the watermarks that step cleared apply again. */
export async function restoreCleared(db: Queryable, hot: HotStore, scope: WatermarkScope, tag: string): Promise<void> {
  const subjects = (await db.query<{ subject: string }>('SELECT DISTINCT subject FROM watermarks WHERE scope = $1 AND cleared_by = $2', [scope, tag])).map((r) => r.subject);
  await db.query('UPDATE watermarks SET cleared_at = NULL WHERE scope = $1 AND cleared_by = $2', [scope, tag]);
  await syncWatermarks(db, hot, scope, subjects);
}
