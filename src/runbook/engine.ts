import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { AbortedError, AuditUnwritableError, HealthGateBreachedError, JwtirError, RunbookChangedError, RunFailedError } from '../errors.js';
import type { Kek } from '../crypto/kek.js';
import type { Settings } from '../config/settings.js';
import { appendAudit } from '../state/audit.js';
import {
  assertRunIs,
  createRun,
  getRun,
  getSteps,
  heartbeat,
  markStep,
  markStepRunning,
  releaseRunLocks,
  setRunStatus,
  takeOverRun,
  type RunRecord,
  type StepRecord,
} from '../state/runs.js';
import type { Queryable } from '../store/db.js';
import type { Backends } from '../store/open.js';
import type { ActionContext } from './actions/action.js';
import { ACTIONS } from './actions/index.js';
import { expandSteps } from './expand.js';
import { failpoint } from './failpoint.js';
import { describeGate, gateBaseline, gateFields, gateSpec, judgeGate, type GateEnv, type GateSpec, type GateVerdict, type TrafficCounts } from './gate.js';
import { loadRunbook, type Runbook } from './load.js';
import type { StepDoc } from './schema.js';
import { references, render, type Scope } from './template.js';

export interface EngineEnv {
  backends: Backends;
  settings: Settings;
  kek(): Promise<Kek>;
}

export type EngineEvent =
  | { type: 'run'; runId: number; verb: 'start' | 'resume' | 'rollback' }
  | { type: 'step'; step: string; phase: 'start' | 'done' | 'skipped' | 'undo' | 'undone'; description?: string; outputs?: unknown }
  | { type: 'progress'; step: string; message: string; counts?: { done: number; total: number } | undefined };

export interface EngineIO {
  /** Skip confirmation gates (--yes). */
  yes: boolean;
  confirm(message: string): Promise<boolean>;
  onEvent(event: EngineEvent): void;
}

export interface RunResult {
  runId: number;
  runbook: string;
  status: RunRecord['status'];
  steps: Array<Pick<StepRecord, 'step' | 'action' | 'state' | 'outputs' | 'error'>>;
}

/** Starts a run: takes the runbook's lock, records the start in the audit trail, runs the steps. */
export async function startRun(env: EngineEnv, runbook: Runbook, params: Record<string, unknown>, io: EngineIO): Promise<RunResult> {
  const { db } = env.backends;
  const runId = await createRun(db, {
    runbook: runbook.doc.name,
    runbookPath: runbook.path,
    runbookHash: runbook.hash,
    params,
    actor: env.settings.actor,
    lock: runbook.doc.lock,
    steps: expandSteps(runbook.doc, params).map((s) => ({ id: s.id, action: s.action })),
  });
  try {
    await appendAudit(db, { actor: env.settings.actor, action: `run.start`, runId, phase: 'start', params: { runbook: runbook.doc.name, hash: runbook.hash, params } }, `run:${runId}:start`);
  } catch (error) {
    // Fail closed and leave nothing behind: a run nobody can see in the audit trail must not hold a lock.
    await db.transaction(async (tx) => {
      await tx.query('DELETE FROM run_locks WHERE run_id = $1', [runId]);
      await tx.query('DELETE FROM run_steps WHERE run_id = $1', [runId]);
      await tx.query('DELETE FROM runs WHERE id = $1', [runId]);
    });
    throw error;
  }
  io.onEvent({ type: 'run', runId, verb: 'start' });
  return drive(env, runbook, await getRun(db, runId), io);
}

/** Continues a run from where it stopped (a crash, a failure, a declined gate). */
export async function resumeRun(env: EngineEnv, runId: number, io: EngineIO, opts: { allowChangedRunbook?: boolean } = {}): Promise<RunResult> {
  const { db } = env.backends;
  const before = await getRun(db, runId);
  await assertRunIs(before, ['running', 'paused', 'failed'], 'resumed');
  const runbook = loadRunbook(before.runbookPath);
  if (runbook.hash !== before.runbookHash && !opts.allowChangedRunbook) {
    throw new RunbookChangedError(`the runbook ${before.runbookPath} changed since run ${runId} started`, {
      hint: `check the difference; to continue under the new file anyway: \`jwtir runs resume ${runId} --allow-changed-runbook\``,
    });
  }
  const run = await takeOverRun(db, runId, runbook.doc.lock);
  await appendAudit(db, {
    actor: env.settings.actor,
    action: 'run.resume',
    runId,
    phase: 'resume',
    params: { runbookChanged: runbook.hash !== before.runbookHash, hash: runbook.hash },
  });
  await setRunStatus(db, runId, 'running');
  io.onEvent({ type: 'run', runId, verb: 'resume' });
  return drive(env, runbook, run, io);
}

async function drive(env: EngineEnv, runbook: Runbook, run: RunRecord, io: EngineIO): Promise<RunResult> {
  const stop = heartbeat(env.backends.db, run.id);
  try {
    return await driveSteps(env, runbook, run, io);
  } finally {
    stop();
  }
}

async function driveSteps(env: EngineEnv, runbook: Runbook, run: RunRecord, io: EngineIO): Promise<RunResult> {
  const { db } = env.backends;
  const records = new Map((await getSteps(db, run.id)).map((s) => [s.step, s]));
  const scope: Scope = { params: run.params, steps: {} };
  const stepsScope = scope.steps as Record<string, { outputs: unknown }>;
  const steps = expandSteps(runbook.doc, run.params);
  for (const [i, step] of steps.entries()) {
    const record = records.get(step.id);
    if (record?.state === 'done' || record?.state === 'skipped') {
      stepsScope[step.id] = { outputs: record.outputs ?? {} };
      continue;
    }
    const previous = steps[i - 1]?.id;
    try {
      // A step its health gate undid is retried from scratch: its wait starts again.
      if (record?.state === 'rolled_back') await db.query('UPDATE run_steps SET started_at = NULL WHERE run_id = $1 AND step = $2', [run.id, step.id]);
      const outputs = await runStep(env, run, step, scope, io, previous);
      stepsScope[step.id] = { outputs };
    } catch (error) {
      return stopRun(env, run, step.id, error);
    }
  }
  await appendAudit(db, { actor: env.settings.actor, action: 'run.done', runId: run.id, phase: 'done' }, `run:${run.id}:done`);
  await setRunStatus(db, run.id, 'done');
  await releaseRunLocks(db, run.id);
  return result(env, run.id);
}

async function runStep(env: EngineEnv, run: RunRecord, step: StepDoc, scope: Scope, io: EngineIO, previous: string | undefined, opts: { skipGate?: boolean } = {}) {
  const { db } = env.backends;
  const action = ACTIONS.get(step.action)!;
  const tag = await attemptTag(db, run.id, step);
  const base = { actor: env.settings.actor, action: step.action, runId: run.id, step: step.id };
  if (step.when && !render(step.when, scope)) {
    await appendAudit(db, { ...base, phase: 'skipped', params: { when: step.when } }, `${tag}:skipped`);
    await markStep(db, run.id, step.id, 'skipped', { outputs: {} });
    io.onEvent({ type: 'step', step: step.id, phase: 'skipped' });
    return {};
  }
  const inputs = action.input.parse(render(step.with, scope));
  if (step.confirm && !io.yes) {
    const ok = await io.confirm(String(render(step.confirm, scope)));
    if (!ok) throw new AbortedError(`stopped before step "${step.id}" at your request`);
  }
  const undoCommand = previous ? `jwtir runs rollback ${run.id} --to ${previous}` : `jwtir runs rollback ${run.id}`;
  const description = action.describe(inputs);
  const gate = step.gate && !opts.skipGate ? gateSpec.parse(gateFields(render(step.gate, scope) as Record<string, unknown>)) : null;
  // Intent first, in the run and in the audit trail; if either cannot be written, nothing happens.
  const startedAt = await markStepRunning(db, run.id, step.id, inputs);
  // A gate judges only the traffic after the effect: what was counted before it is the baseline,
  // kept in the intent row so that a resumed step judges against the same one.
  const baseline = gate ? await gateBaseline(env.backends.hot, gate, startedAt) : undefined;
  const intent = await appendAudit(db, { ...base, phase: 'intent', params: inputs, result: { description, ...(baseline ? { gateBaseline: baseline } : {}) }, undo: undoCommand }, `${tag}:intent`);
  io.onEvent({ type: 'step', step: step.id, phase: 'start', description });
  failpoint(step.id, 'before');
  const ctx = actionContext(env, run, step.id, startedAt, io);
  const outputs = await action.apply(ctx, inputs);
  failpoint(step.id, 'after');
  const undo = step.undo && 'action' in step.undo ? { action: step.undo.action, with: render(step.undo.with, { inputs, outputs }) as Record<string, unknown> } : null;
  if (gate) {
    // The effect and its undo are known from here on; the step counts as done only once the gate passed.
    await markStep(db, run.id, step.id, 'running', { outputs, ...(undo ? { undo } : {}) });
    await appendAudit(db, { ...base, phase: 'applied', result: outputs, undo: undoCommand }, `${tag}:applied`);
    const recorded = (intent.body.result as { gateBaseline?: TrafficCounts } | null)?.gateBaseline ?? null;
    const published = typeof outputs.version === 'number' ? outputs.version : null;
    const verdict = await runGate(env, run, step.id, gate, { startedAt, baseline: recorded, policyVersion: published }, io);
    if (!verdict.healthy) {
      await appendAudit(db, { ...base, phase: 'gate-breach', result: verdict }, `${tag}:gate-breach`);
      io.onEvent({ type: 'progress', step: step.id, message: `health gate breached: ${verdict.breaches.join('; ')}; undoing this step` });
      const record: StepRecord = { runId: run.id, idx: -1, step: step.id, action: step.action, state: 'running', inputs, outputs, undo, error: null, startedAt, finishedAt: null };
      await undoStep(env, run, record, io, tag);
      throw new HealthGateBreachedError(`its health gate breached (${verdict.breaches.join('; ')}); the step was undone`, {
        hint: `see \`jwtir runs show ${run.id}\`; fix the cause and retry the step with \`jwtir runs resume ${run.id}\`, or undo the whole run with \`jwtir runs rollback ${run.id}\``,
        details: verdict,
      });
    }
    await appendAudit(db, { ...base, phase: 'gate-pass', result: verdict }, `${tag}:gate-pass`);
  }
  await appendAudit(db, { ...base, phase: 'done', result: outputs, undo: undoCommand }, `${tag}:done`);
  await markStep(db, run.id, step.id, 'done', { outputs, ...(undo ? { undo } : {}) });
  io.onEvent({ type: 'step', step: step.id, phase: 'done', outputs });
  return outputs;
}

/**
 * The idempotency tag of a step's audit rows. A step whose health gate undid it and that is then
 * retried is a new attempt, with rows of its own (`run:7:stage-2#2:intent`); otherwise a resumed
 * step finds and reuses the rows it wrote before the crash.
 */
async function attemptTag(db: Queryable, runId: number, step: StepDoc): Promise<string> {
  const tag = `run:${runId}:${step.id}`;
  if (!step.gate) return tag;
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM audit WHERE body->>'run' = $1 AND body->>'step' = $2 AND body->>'phase' = 'gate-breach'`,
    [String(runId), step.id],
  );
  return row!.n > 0 ? `${tag}#${row!.n + 1}` : tag;
}

function actionContext(env: EngineEnv, run: RunRecord, step: string, startedAt: Date, io: EngineIO): ActionContext {
  return {
    backends: env.backends,
    settings: env.settings,
    kek: env.kek,
    runId: run.id,
    step,
    actor: env.settings.actor,
    stepStartedAt: startedAt,
    progress: (message, counts) => io.onEvent({ type: 'progress', step, message, counts }),
  };
}

/** Waits out a step's health gate and judges it (see gate.ts). */
async function runGate(env: EngineEnv, run: RunRecord, stepId: string, spec: GateSpec, window: Pick<GateEnv, 'startedAt' | 'baseline' | 'policyVersion'>, io: EngineIO): Promise<GateVerdict> {
  io.onEvent({ type: 'progress', step: stepId, message: describeGate(spec) });
  failpoint(stepId, 'gate');
  return judgeGate(spec, {
    hot: env.backends.hot,
    ...window,
    checkEnv: { JWTIR_RUN_ID: String(run.id), JWTIR_STEP: stepId, ...(spec.kid ? { JWTIR_KID: spec.kid } : {}), ...(spec.cohortsBelow ? { JWTIR_CUTOVER_PERCENT: String(spec.cohortsBelow) } : {}) },
    progress: (message) => io.onEvent({ type: 'progress', step: stepId, message }),
  });
}

async function stopRun(env: EngineEnv, run: RunRecord, stepId: string, error: unknown): Promise<never> {
  const { db } = env.backends;
  const message = error instanceof Error ? error.message : String(error);
  const declined = error instanceof AbortedError;
  // The lock stays held: a half-done run must be resumed or rolled back, not raced by another.
  // A breached gate already undid its step: it stays rolled back, so a rollback does not redo it first.
  if (error instanceof HealthGateBreachedError) await db.query('UPDATE run_steps SET error = $3 WHERE run_id = $1 AND step = $2', [run.id, stepId, message]).catch(() => {});
  else await markStep(db, run.id, stepId, declined ? 'pending' : 'failed', { error: message }).catch(() => {});
  await setRunStatus(db, run.id, declined ? 'paused' : 'failed', message).catch(() => {});
  if (!(error instanceof AuditUnwritableError)) {
    await appendAudit(db, { actor: env.settings.actor, action: declined ? 'run.pause' : 'run.fail', runId: run.id, step: stepId, phase: declined ? 'paused' : 'failed', result: { error: message } }).catch(() => {});
  }
  const next = `resume with \`jwtir runs resume ${run.id}\` or undo it with \`jwtir runs rollback ${run.id}\``;
  if (error instanceof JwtirError) {
    const Ctor = error.constructor as new (m: string, o: object) => JwtirError;
    // A breached gate's hint already names both ways on.
    const hint = error instanceof HealthGateBreachedError ? error.hint : error.hint ? `${error.hint}; then ${next}` : next;
    throw new Ctor(`run ${run.id} stopped at step "${stepId}": ${message}`, { hint, cause: error, details: error.details });
  }
  throw new RunFailedError(`run ${run.id} stopped at step "${stepId}": ${message}`, { hint: next, cause: error });
}

/**
 * Undoes a run by running the recorded undos in reverse, back to just after step `to` (or to
 * the beginning). An interrupted step is undone from its recorded inputs when its undo needs no
 * more; otherwise it is first completed (its action is idempotent) so its outputs, and so its
 * undo, are known. Resumable: a rollback that crashes is run again.
 */
export async function rollbackRun(env: EngineEnv, runId: number, io: EngineIO, opts: { to?: string } = {}): Promise<RunResult> {
  const { db } = env.backends;
  const before = await getRun(db, runId);
  // A run rolled back only part of the way (--to) can be rolled back further.
  await assertRunIs(before, ['running', 'paused', 'failed', 'done', 'rolling_back', 'rolled_back'], 'rolled back');
  const runbook = loadRunbook(before.runbookPath);
  const expanded = expandSteps(runbook.doc, before.params);
  const stepIds = expanded.map((s) => s.id);
  if (opts.to && !stepIds.includes(opts.to)) {
    throw new RunFailedError(`run ${runId} has no step "${opts.to}"`, { hint: `steps: ${stepIds.join(', ')}` });
  }
  const run = await takeOverRun(db, runId, runbook.doc.lock);
  await appendAudit(db, { actor: env.settings.actor, action: 'run.rollback', runId, phase: 'rollback', params: { to: opts.to ?? null } });
  await setRunStatus(db, runId, 'rolling_back');
  io.onEvent({ type: 'run', runId, verb: 'rollback' });
  const keepThrough = opts.to ? stepIds.indexOf(opts.to) : -1;
  const stop = heartbeat(db, runId);
  try {
    let steps = await getSteps(db, runId);
    const interrupted = steps.find((s) => s.idx > keepThrough && (s.state === 'running' || s.state === 'failed'));
    if (interrupted) {
      const doc = expanded[interrupted.idx]!;
      const undo = doc.undo && 'action' in doc.undo ? doc.undo : null;
      const action = ACTIONS.get(doc.action)!;
      if (!action.mutates || !undo || interrupted.inputs === null) {
        // It changes nothing, cannot be undone, or never got as far as its effect: it is not finished now.
        if (action.abandon && interrupted.inputs !== null) {
          const abandoned = await action.abandon(actionContext(env, run, interrupted.step, interrupted.startedAt ?? new Date(), io));
          await appendAudit(db, { actor: env.settings.actor, action: doc.action, runId, step: interrupted.step, phase: 'abandoned', result: abandoned }, `${await attemptTag(db, runId, doc)}:abandoned`);
        }
        await markStep(db, runId, interrupted.step, 'rolled_back');
      } else if (!references(undo.with).some((r) => r.startsWith('outputs.'))) {
        // Its undo needs only its inputs (undos are idempotent and take a partial effect in their stride).
        const record = { ...interrupted, undo: { action: undo.action, with: render(undo.with, { inputs: interrupted.inputs, outputs: {} }) as Record<string, unknown> } };
        await undoStep(env, run, record, io, await attemptTag(db, runId, doc));
      } else {
        // Finishing it first makes its outputs, and so its undo, known.
        const scope: Scope = { params: run.params, steps: Object.fromEntries(steps.filter((s) => s.outputs).map((s) => [s.step, { outputs: s.outputs }])) };
        await runStep(env, run, doc, scope, { ...io, yes: true }, stepIds[interrupted.idx - 1], { skipGate: true });
      }
      steps = await getSteps(db, runId);
    }
    for (const record of [...steps].reverse()) {
      if (record.idx <= keepThrough || record.state !== 'done') continue;
      await undoStep(env, run, record, io, await attemptTag(db, runId, expanded[record.idx]!));
    }
  } catch (error) {
    await setRunStatus(db, runId, 'rolling_back', error instanceof Error ? error.message : String(error));
    await db.query('UPDATE runs SET holder = NULL WHERE id = $1', [runId]);
    throw error;
  } finally {
    stop();
  }
  await appendAudit(db, { actor: env.settings.actor, action: 'run.rolled-back', runId, phase: 'rolled-back', params: { to: opts.to ?? null } }, `run:${runId}:rolled-back:${opts.to ?? ''}`);
  await setRunStatus(db, runId, 'rolled_back', opts.to ? `rolled back to just after step "${opts.to}"; \`jwtir runs rollback ${runId}\` undoes the rest` : null);
  await releaseRunLocks(db, runId);
  return result(env, runId);
}

async function undoStep(env: EngineEnv, run: RunRecord, record: StepRecord, io: EngineIO, tag = `run:${run.id}:${record.step}`): Promise<void> {
  const { db } = env.backends;
  if (!record.undo) {
    await markStep(db, run.id, record.step, 'rolled_back');
    return;
  }
  const action = ACTIONS.get(record.undo.action)!;
  const inputs = action.input.parse(record.undo.with);
  const description = action.describe(inputs);
  const base = { actor: env.settings.actor, action: record.undo.action, runId: run.id, step: record.step };
  await appendAudit(db, { ...base, phase: 'undo-intent', params: inputs, result: { description } }, `${tag}:undo-intent`);
  io.onEvent({ type: 'step', step: record.step, phase: 'undo', description });
  failpoint(record.step, 'undo');
  await action.apply(actionContext(env, run, record.step, record.startedAt ?? new Date(), io), inputs);
  await appendAudit(db, { ...base, phase: 'undo-done' }, `${tag}:undo-done`);
  await markStep(db, run.id, record.step, 'rolled_back');
  io.onEvent({ type: 'step', step: record.step, phase: 'undone' });
}

async function result(env: EngineEnv, runId: number): Promise<RunResult> {
  const run = await getRun(env.backends.db, runId);
  const steps = await getSteps(env.backends.db, runId);
  return {
    runId,
    runbook: run.runbook,
    status: run.status,
    steps: steps.map(({ step, action, state, outputs, error }) => ({ step, action, state, outputs, error })),
  };
}

/** sha256 of a runbook file as it is now (for `runs show`). */
export function currentRunbookHash(file: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return null;
  }
}
