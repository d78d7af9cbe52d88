import os from 'node:os';
import { InvalidStateError, LockHeldError, UnknownRunError } from '../errors.js';
import { LockId, withXactLock, type Db, type Queryable } from '../store/db.js';

export type RunStatus = 'running' | 'paused' | 'done' | 'failed' | 'rolling_back' | 'rolled_back';
export type StepState = 'pending' | 'running' | 'done' | 'skipped' | 'failed' | 'rolled_back';

export interface RunRecord {
  id: number;
  runbook: string;
  runbookPath: string;
  runbookHash: string;
  params: Record<string, unknown>;
  status: RunStatus;
  actor: string;
  holder: string | null;
  error: string | null;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface StepRecord {
  runId: number;
  idx: number;
  step: string;
  action: string;
  state: StepState;
  inputs: Record<string, unknown> | null;
  outputs: Record<string, unknown> | null;
  undo: { action: string; with: Record<string, unknown> } | null;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** `pid@host`: which process drives a run, so a second process can tell it is still alive. */
export function currentHolder(): string {
  return `${process.pid}@${os.hostname()}`;
}

export interface NewRun {
  runbook: string;
  runbookPath: string;
  runbookHash: string;
  params: Record<string, unknown>;
  actor: string;
  lock: string;
  steps: Array<{ id: string; action: string }>;
}

/**
 * Creates a run and takes its named lock in one transaction, so two operators starting
 * conflicting runbooks at the same moment cannot both get through: exactly one commits.
 */
export async function createRun(db: Db, run: NewRun): Promise<number> {
  return withXactLock(db, LockId.runLocks, async (tx) => {
    await assertLockFree(tx, run.lock);
    const [row] = await tx.query<{ id: number }>(
      `INSERT INTO runs (runbook, runbook_path, runbook_hash, params, status, actor, holder)
       VALUES ($1, $2, $3, $4, 'running', $5, $6) RETURNING id`,
      [run.runbook, run.runbookPath, run.runbookHash, JSON.stringify(run.params), run.actor, currentHolder()],
    );
    const id = Number(row!.id);
    for (const [idx, step] of run.steps.entries()) {
      await tx.query(`INSERT INTO run_steps (run_id, idx, step, action, state) VALUES ($1, $2, $3, $4, 'pending')`, [id, idx, step.id, step.action]);
    }
    await tx.query('INSERT INTO run_locks (name, run_id, holder) VALUES ($1, $2, $3)', [run.lock, id, currentHolder()]);
    return id;
  });
}

async function assertLockFree(tx: Queryable, lock: string, exceptRun?: number): Promise<void> {
  const [held] = await tx.query<{ run_id: number; holder: string; acquired_at: Date; runbook: string; actor: string; status: string }>(
    `SELECT l.run_id, l.holder, l.acquired_at, r.runbook, r.actor, r.status
     FROM run_locks l JOIN runs r ON r.id = l.run_id WHERE l.name = $1`,
    [lock],
  );
  if (!held || Number(held.run_id) === exceptRun) return;
  const id = Number(held.run_id);
  throw new LockHeldError(
    `the "${lock}" lock is held by run ${id} (${held.runbook}, started by ${held.actor}, process ${held.holder}, status ${held.status})`,
    {
      hint: `wait for it, resume it with \`jwtir runs resume ${id}\`, roll it back with \`jwtir runs rollback ${id}\`, or if it is abandoned \`jwtir runs unlock ${id}\``,
      details: { runId: id, holder: held.holder },
    },
  );
}

/** A driver renews its lease this often; one silent for RUN_LEASE_MS on another host is presumed dead. */
export const RUN_HEARTBEAT_MS = 5_000;
export const RUN_LEASE_MS = 30_000;

/**
 * Makes this process the driver of an existing run (resume or rollback). Refuses while another
 * driver is alive: a live process on this host, or one elsewhere whose lease is still fresh, since
 * two drivers would interleave steps.
 */
export async function takeOverRun(db: Db, runId: number, lock: string): Promise<RunRecord> {
  return withXactLock(db, LockId.runLocks, async (tx) => {
    const run = await getRun(tx, runId);
    assertNotDriven(run);
    await assertLockFree(tx, lock, runId);
    await tx.query(
      `INSERT INTO run_locks (name, run_id, holder) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder`,
      [lock, runId, currentHolder()],
    );
    await tx.query('UPDATE runs SET holder = $2, updated_at = now() WHERE id = $1', [runId, currentHolder()]);
    return { ...run, holder: currentHolder() };
  });
}

/** Throws when another process is driving the run right now. */
export function assertNotDriven(run: RunRecord): void {
  if (!run.holder || run.holder === currentHolder()) return;
  const silentMs = Date.now() - run.updatedAt.getTime();
  if (holderIsAlive(run.holder) || (!run.holder.endsWith(`@${os.hostname()}`) && silentMs < RUN_LEASE_MS)) {
    throw new LockHeldError(`run ${run.id} is being driven right now by process ${run.holder} (last heard from ${Math.round(silentMs / 1000)}s ago)`, {
      hint: `wait for it to finish; a driver on another host that died is presumed dead ${RUN_LEASE_MS / 1000}s after its last heartbeat`,
    });
  }
}

/** Renews this process's lease on a run until the returned function is called. */
export function heartbeat(db: Queryable, runId: number): () => void {
  const timer = setInterval(() => {
    db.query('UPDATE runs SET updated_at = now() WHERE id = $1 AND holder = $2', [runId, currentHolder()]).catch(() => {});
  }, RUN_HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

function holderIsAlive(holder: string): boolean {
  const [pid, host] = holder.split('@');
  if (host !== os.hostname()) return false;
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function releaseRunLocks(db: Queryable, runId: number): Promise<number> {
  const rows = await db.query('DELETE FROM run_locks WHERE run_id = $1 RETURNING name', [runId]);
  await db.query('UPDATE runs SET holder = NULL, updated_at = now() WHERE id = $1', [runId]);
  return rows.length;
}

export async function setRunStatus(db: Queryable, runId: number, status: RunStatus, error: string | null = null): Promise<void> {
  const final = status === 'done' || status === 'rolled_back';
  // A stopped run has no driver any more: whoever comes next may take it over at once.
  if (status !== 'running' && status !== 'rolling_back') await db.query('UPDATE runs SET holder = NULL WHERE id = $1', [runId]);
  await db.query(
    `UPDATE runs SET status = $2, error = $3, updated_at = now(), finished_at = CASE WHEN $4 THEN now() ELSE NULL END WHERE id = $1`,
    [runId, status, error, final],
  );
}

export async function getRun(db: Queryable, runId: number): Promise<RunRecord> {
  const [row] = await db.query('SELECT * FROM runs WHERE id = $1', [runId]);
  if (!row) {
    throw new UnknownRunError(`there is no run ${runId}`, { hint: 'list runs with `jwtir runs list`' });
  }
  return toRun(row);
}

export async function listRuns(db: Queryable, limit = 50): Promise<RunRecord[]> {
  return (await db.query('SELECT * FROM runs ORDER BY id DESC LIMIT $1', [limit])).map(toRun);
}

export async function activeRuns(db: Queryable): Promise<Array<RunRecord & { lock: string | null }>> {
  const rows = await db.query(
    `SELECT r.*, l.name AS lock FROM runs r LEFT JOIN run_locks l ON l.run_id = r.id
     WHERE r.status IN ('running', 'paused', 'failed', 'rolling_back') OR l.name IS NOT NULL ORDER BY r.id`,
  );
  return rows.map((row) => ({ ...toRun(row), lock: (row.lock as string | null) ?? null }));
}

export async function getSteps(db: Queryable, runId: number): Promise<StepRecord[]> {
  const rows = await db.query('SELECT * FROM run_steps WHERE run_id = $1 ORDER BY idx', [runId]);
  return rows.map((r) => ({
    runId: Number(r.run_id),
    idx: r.idx as number,
    step: r.step as string,
    action: r.action as string,
    state: r.state as StepState,
    inputs: r.inputs as StepRecord['inputs'],
    outputs: r.outputs as StepRecord['outputs'],
    undo: r.undo as StepRecord['undo'],
    error: r.error as string | null,
    startedAt: r.started_at ? new Date(r.started_at as string) : null,
    finishedAt: r.finished_at ? new Date(r.finished_at as string) : null,
  }));
}

/** Marks a step running; its first start time is kept across resumes (waits count from it). */
export async function markStepRunning(db: Queryable, runId: number, step: string, inputs: unknown): Promise<Date> {
  const [row] = await db.query<{ started_at: Date }>(
    `UPDATE run_steps SET state = 'running', inputs = $3, error = NULL, started_at = coalesce(started_at, now())
     WHERE run_id = $1 AND step = $2 RETURNING started_at`,
    [runId, step, JSON.stringify(inputs)],
  );
  await db.query('UPDATE runs SET updated_at = now() WHERE id = $1', [runId]);
  return new Date(row!.started_at);
}

export async function markStep(
  db: Queryable,
  runId: number,
  step: string,
  state: StepState,
  fields: { outputs?: unknown; undo?: unknown; error?: string | null } = {},
): Promise<void> {
  await db.query(
    `UPDATE run_steps SET state = $3,
       outputs = coalesce($4, outputs), undo = coalesce($5, undo), error = $6,
       finished_at = CASE WHEN $3 IN ('done', 'skipped', 'rolled_back') THEN now() ELSE finished_at END
     WHERE run_id = $1 AND step = $2`,
    [runId, step, state, fields.outputs === undefined ? null : JSON.stringify(fields.outputs), fields.undo === undefined ? null : JSON.stringify(fields.undo), fields.error ?? null],
  );
}

export async function assertRunIs(run: RunRecord, allowed: RunStatus[], verb: string): Promise<void> {
  if (!allowed.includes(run.status)) {
    throw new InvalidStateError(`run ${run.id} is ${run.status.replace('_', ' ')}, so it cannot be ${verb}`, {
      hint: `see \`jwtir runs show ${run.id}\``,
    });
  }
}

function toRun(row: Record<string, unknown>): RunRecord {
  return {
    id: Number(row.id),
    runbook: row.runbook as string,
    runbookPath: row.runbook_path as string,
    runbookHash: row.runbook_hash as string,
    params: row.params as Record<string, unknown>,
    status: row.status as RunStatus,
    actor: row.actor as string,
    holder: row.holder as string | null,
    error: row.error as string | null,
    startedAt: new Date(row.started_at as string),
    updatedAt: new Date(row.updated_at as string),
    finishedAt: row.finished_at ? new Date(row.finished_at as string) : null,
  };
}
