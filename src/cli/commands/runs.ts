import { parseIntStrict } from '../parse.js';
import { appendAudit, listAudit } from '../../state/audit.js';
import { assertNotDriven, getRun, getSteps, listRuns, releaseRunLocks, setRunStatus } from '../../state/runs.js';
import { currentRunbookHash, resumeRun, rollbackRun } from '../../runbook/engine.js';
import { AbortedError, UsageError } from '../../errors.js';
import { redact } from '../../state/redact.js';
import type { CommandContext } from '../context.js';
import { renderRunResult, table } from '../render.js';

export async function list(ctx: CommandContext, o: { limit?: string }): Promise<void> {
  const runs = await listRuns((await ctx.backends()).db, o.limit ? parseIntStrict(o.limit, '--limit') : 20);
  ctx.out.result({ runs: runs.map((r) => ({ ...r, params: redact(r.params) })) }, () =>
    runs.length === 0
      ? 'no runs yet'
      : table(
          ['ID', 'RUNBOOK', 'STATUS', 'ACTOR', 'STARTED', 'ERROR'],
          runs.map((r) => [r.id, r.runbook, r.status, r.actor, r.startedAt.toISOString(), r.error ? r.error.slice(0, 60) : null]),
        ),
  );
}

export async function show(ctx: CommandContext, id: string): Promise<void> {
  const db = (await ctx.backends()).db;
  const run = await getRun(db, parseIntStrict(id, 'run id'));
  const steps = await getSteps(db, run.id);
  const audit = await listAudit(db, { runId: run.id });
  const runbookChanged = currentRunbookHash(run.runbookPath) !== run.runbookHash;
  // Run parameters and step inputs can hold sealed key material: shown redacted, like the audit trail.
  const shown = { run: { ...run, params: redact(run.params) }, steps: steps.map((s) => ({ ...s, inputs: redact(s.inputs), outputs: redact(s.outputs) })) };
  ctx.out.result({ ...shown, audit: audit.map((a) => a.body), runbookChanged }, () => {
    const c = ctx.out.color;
    const lines = [
      renderRunResult({ runId: run.id, runbook: run.runbook, status: run.status, steps }, c),
      c.dim(`  actor ${run.actor}; started ${run.startedAt.toISOString()}; runbook ${run.runbookPath}${runbookChanged ? c.yellow(' (changed since)') : ''}`),
    ];
    if (run.error) lines.push(c.red(`  error: ${run.error}`));
    if (['running', 'paused', 'failed'].includes(run.status)) lines.push(`  next: \`jwtir runs resume ${run.id}\` or \`jwtir runs rollback ${run.id}\``);
    lines.push('', c.bold('audit trail'));
    for (const a of audit) lines.push(`  #${a.seq} ${a.body.at} ${a.body.action} ${a.body.step ?? ''} ${c.dim(a.body.phase ?? '')}`);
    return lines.join('\n');
  });
}

export async function resume(ctx: CommandContext, id: string, o: { allowChangedRunbook?: boolean }): Promise<void> {
  const res = await resumeRun(await ctx.engineEnv(), parseIntStrict(id, 'run id'), ctx.engineIO(), { allowChangedRunbook: o.allowChangedRunbook === true });
  ctx.out.result(res, () => renderRunResult(res, ctx.out.color));
}

export async function rollback(ctx: CommandContext, id: string, o: { to?: string; dryRun?: boolean }): Promise<void> {
  const runId = parseIntStrict(id, 'run id');
  const db = (await ctx.backends()).db;
  await getRun(db, runId);
  if (o.dryRun) {
    // The undo plan: the steps that would be undone, last first, and what each undo does.
    const steps = await getSteps(db, runId);
    const keep = o.to ? steps.find((s) => s.step === o.to)?.idx : -1;
    if (keep === undefined) throw new UsageError(`run ${runId} has no step "${o.to}"`, { hint: `steps: ${steps.map((s) => s.step).join(', ')}` });
    const undo = steps
      .filter((s) => s.idx > keep && ['done', 'running', 'failed'].includes(s.state))
      .reverse()
      .map((s) => ({ step: s.step, state: s.state, undo: s.undo ? `${s.undo.action} ${JSON.stringify(redact(s.undo.with))}` : s.state === 'done' ? 'nothing to undo' : 'undone from its recorded inputs, or completed first when its undo needs its outputs' }));
    ctx.out.result({ dryRun: true, runId, undo }, () =>
      undo.length === 0 ? `nothing to undo in run ${runId}` : [`would undo, in this order (dry run: nothing was changed):`, ...undo.map((u) => `  ↶ ${u.step} (${u.state}): ${u.undo}`)].join('\n'),
    );
    return;
  }
  if (!(await ctx.confirm(`Undo run ${runId}${o.to ? ` back to just after step "${o.to}"` : ' entirely'}?`))) throw new AbortedError('nothing was undone');
  const res = await rollbackRun(await ctx.engineEnv(), runId, ctx.engineIO(), o.to ? { to: o.to } : {});
  ctx.out.result(res, () => renderRunResult(res, ctx.out.color));
}

/** Frees the locks of an abandoned run without undoing anything; the run is marked failed. */
export async function unlock(ctx: CommandContext, id: string): Promise<void> {
  const runId = parseIntStrict(id, 'run id');
  const db = (await ctx.backends()).db;
  const run = await getRun(db, runId);
  // Unlocking a run that is being driven right now would let a second driver in beside it.
  assertNotDriven(run);
  if (!(await ctx.confirm(`Release the locks of run ${runId} (${run.runbook}, ${run.status}) without undoing it?`))) throw new AbortedError('nothing was unlocked');
  await appendAudit(db, { actor: ctx.settings.actor, action: 'run.unlock', runId, phase: 'unlock', params: { previousStatus: run.status }, undo: `jwtir runs resume ${runId}` });
  const released = await releaseRunLocks(db, runId);
  if (run.status !== 'done' && run.status !== 'rolled_back') await setRunStatus(db, runId, 'failed', 'unlocked by an operator');
  ctx.out.result({ runId, released }, () => `released ${released} lock(s) of run ${runId}; it can still be resumed or rolled back`);
}
