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
