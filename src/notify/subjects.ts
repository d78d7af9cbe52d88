import { UnknownUserError, UsageError } from '../errors.js';
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
  if (!steps.includes(step)) throw new UsageError(`run ${runId} has no step "${step}"`, { hint: `its steps: ${steps.join(', ')}` });
  return [step];
}

/** How many sessions and users those steps ended. */
export async function countAffectedBySteps(db: Queryable, runId: number, steps: string[]): Promise<{ sessions: number; users: number }> {
  const [row] = await db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM (${affectedByStepsSql(steps.length, 1, 2)}) a`,
    [runId, ...steps],
  );
  return row ?? { sessions: 0, users: 0 };
}

/** Refuses subjects the session ledger has never seen (a typo would notify nobody, silently). */
export async function assertKnownUsers(db: Queryable, users: string[]): Promise<void> {
  const rows = await db.query<{ sub: string }>('SELECT DISTINCT sub FROM sessions WHERE sub = ANY($1::text[])', [users]);
  const known = new Set(rows.map((r) => r.sub));
  const unknown = users.filter((u) => !known.has(u));
  if (unknown.length === 0) return;
  const shown = unknown.slice(0, 10).map((u) => JSON.stringify(u)).join(', ') + (unknown.length > 10 ? ` and ${unknown.length - 10} more` : '');
  throw new UnknownUserError(`unknown user${unknown.length > 1 ? 's' : ''} ${shown}: the session ledger has no session for ${unknown.length > 1 ? 'them' : 'it'}`, {
    hint: 'subjects are matched exactly (case matters); check the spelling, or that the service records its sessions in jwtir; nothing was changed',
    details: { unknown },
  });
}
