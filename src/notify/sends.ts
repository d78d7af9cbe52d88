import type { ActionContext } from '../runbook/actions/action.js';
import type { Queryable } from '../store/db.js';
import type { Delivery } from './http.js';

export type Channel = 'webhook' | 'set';
export type SendStatus = 'pending' | 'sent' | 'failed';

/** One message jwtir delivers itself (table notify_sends). */
export interface SendRow {
  id: number;
  channel: Channel;
  target: string;
  audience: string | null;
  subject: string | null;
  event: string;
  jti: string | null;
  payload: Record<string, unknown>;
  status: SendStatus;
  attempts: number;
}

export interface StepDelivery {
  total: number;
  sent: number;
  /** Not delivered (failed, or not attempted because their target was down). */
  unsent: number;
  /** The distinct reasons, for the step's error message. */
  reasons: string[];
}

type DeliveryContext = Pick<ActionContext, 'backends' | 'runId' | 'step' | 'progress'>;

const PAGE = 500;

/**
 * Delivers every message of a run step that is not sent yet: the first try, a resume after a
 * crash, or `notify retry`. A message already sent is never sent again. Each outcome is recorded
 * right after its response (one row at a time on purpose: the window in which a crash could
 * cause a second delivery is one request, not a batch). When a target's message fails after all
 * its retries, the step's other messages to that target wait for the next try instead of
 * spending a deadline each.
 */
export async function deliverStep(ctx: DeliveryContext, send: (row: SendRow) => Promise<Delivery & { target?: string }>, concurrency = 1): Promise<StepDelivery> {
  const db = ctx.backends.db;
  const before = await statusCounts(db, ctx.runId, ctx.step);
  const todo = before.total - before.sent;
  const down = new Map<string, string>();
  const reasons = new Set<string>();
  let done = 0;
  let after = 0;
  if (todo > 0) ctx.progress(`delivering ${todo} message(s)`, { done: 0, total: todo });
  for (;;) {
    const rows = await unsentPage(db, ctx.runId, ctx.step, after);
    if (rows.length === 0) break;
    after = rows.at(-1)!.id;
    await inParallel(rows, concurrency, async (row) => {
      const blocked = down.get(row.target);
      if (blocked) {
        reasons.add(`${row.target}: not attempted after an earlier message to it failed (${blocked})`);
      } else {
        const outcome = await send(row);
        await record(db, row.id, outcome);
        if (!outcome.ok) {
          reasons.add(`${outcome.target ?? row.target}: ${outcome.error}`);
          // A final refusal is about this message; running out of retries is about the target.
          if (outcome.error?.startsWith('gave up')) down.set(row.target, `${outcome.error.slice(0, 80)}`);
        }
      }
      done += 1;
      ctx.progress(`delivered ${done} of ${todo} message(s)`, { done, total: todo });
    });
  }
  const now = await statusCounts(db, ctx.runId, ctx.step);
  return { total: now.total, sent: now.sent, unsent: now.total - now.sent, reasons: [...reasons] };
}

/**
 * For a run being rolled back while a send step was unfinished: what was not delivered stays
 * undelivered, recorded as failed with the reason (nothing is dropped silently).
 */
export async function abandonUnsent(db: Queryable, runId: number, step: string): Promise<number> {
  const rows = await db.query(
    `UPDATE notify_sends SET status = 'failed', last_error = CASE WHEN last_error IS NULL THEN $3 ELSE last_error || '; ' || $3 END
     WHERE run_id = $1 AND step = $2 AND status <> 'sent' RETURNING id`,
    [runId, step, `not sent: run ${runId} was rolled back before delivery`],
  );
  return rows.length;
}

export async function statusCounts(db: Queryable, runId: number, step: string): Promise<{ total: number; sent: number }> {
  const [row] = await db.query<{ total: number; sent: number }>(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'sent')::int AS sent FROM notify_sends WHERE run_id = $1 AND step = $2`,
    [runId, step],
  );
  return row ?? { total: 0, sent: 0 };
}

async function unsentPage(db: Queryable, runId: number, step: string, after: number): Promise<SendRow[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT id, channel, target, audience, subject, event, jti, payload, status, attempts FROM notify_sends
     WHERE run_id = $1 AND step = $2 AND status <> 'sent' AND id > $3 ORDER BY id LIMIT $4`,
    [runId, step, after, PAGE],
  );
  return rows.map((r) => ({ ...(r as unknown as SendRow), id: Number(r.id) }));
}

async function record(db: Queryable, id: number, d: Delivery & { target?: string }): Promise<void> {
  await db.query(
    `UPDATE notify_sends SET status = $2, attempts = attempts + $3, last_status = $4, last_error = $5, last_attempt_at = now(),
       sent_at = CASE WHEN $2 = 'sent' THEN now() END, target = coalesce($6, target)
     WHERE id = $1`,
    [id, d.ok ? 'sent' : 'failed', d.attempts, d.status, d.error, d.target ?? null],
  );
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
