import { UsageError } from '../errors.js';
import { AFFECTED_SESSIONS_SQL } from '../state/affected.js';
import { getRun, getSteps } from '../state/runs.js';
import type { Queryable } from '../store/db.js';

/**
 * The sessions (sub, sid) that any of `steps` of one run ended, as a single SQL subquery:
 * AFFECTED_SESSIONS_SQL once per step, its $1 renumbered to `runParam` and its $2 to the step's
 * own parameter (`firstStepParam` + i). Set-based whatever the number of sessions.
 */
export function affectedByStepsSql(stepCount: number, runParam: number, firstStepParam: number): string {
  if (stepCount === 0) return 'SELECT NULL::text AS sub, NULL::text AS sid WHERE false';
  const one = (i: number) => AFFECTED_SESSIONS_SQL.replace(/\$([12])(?!\d)/g, (_m, n: string) => `$${n === '1' ? runParam : firstStepParam + i}`);
  return Array.from({ length: stepCount }, (_, i) => `(${one(i)})`).join('\n  UNION\n');
}

/** The steps of `runId` to read: `step` alone, or all of them. Unknown runs and steps are bad input. */
export async function sourceSteps(db: Queryable, runId: number, step: string | null): Promise<string[]> {
  await getRun(db, runId);
  const steps = (await getSteps(db, runId)).map((s) => s.step);
  if (step === null) return steps;
  // A comma-separated list names several steps (logout.yaml: whichever of its mechanisms ran).
  const named = step.split(',').map((s) => s.trim());
  const missing = named.filter((s) => !steps.includes(s));
  if (missing.length) throw new UsageError(`run ${runId} has no step "${missing.join('", "')}"`, { hint: `its steps: ${steps.join(', ')}` });
  return named;
}

/** How many sessions and users those steps ended. */
export async function countAffectedBySteps(db: Queryable, runId: number, steps: string[]): Promise<{ sessions: number; users: number }> {
  const [row] = await db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM (${affectedByStepsSql(steps.length, 1, 2)}) a`,
    [runId, ...steps],
  );
  return row ?? { sessions: 0, users: 0 };
}

