import { AbortedError, InvalidStateError, JwtirError } from '../../errors.js';
import { oncallWebhook } from '../../notify/config.js';
import { outboxCounts } from '../../notify/outbox.js';
import { resumeRun, type RunResult } from '../../runbook/engine.js';
import { getRun } from '../../state/runs.js';
import type { Queryable } from '../../store/db.js';
import type { CommandContext } from '../context.js';
import { parseIntStrict } from '../parse.js';
import { renderRunResult, table } from '../render.js';

const RESUMABLE = ['running', 'paused', 'failed'];

/** `jwtir notify list`: every send jwtir made (or failed to make), and the user outbox's counts. */
export async function list(ctx: CommandContext, o: { status?: string; run?: string; limit: string }): Promise<void> {
  const runId = o.run === undefined ? null : parseIntStrict(o.run, '--run');
  const limit = parseIntStrict(o.limit, '--limit');
  const db = (await ctx.backends()).db;
  const sends = await db.query<Record<string, unknown>>(
    `SELECT s.id, s.run_id AS "runId", r.status AS "runStatus", s.step, s.channel, s.target, s.audience, s.subject, s.event, s.jti,
            s.status, s.attempts, s.last_status AS "lastStatus", s.last_error AS "lastError",
            s.first_at AS "firstAt", s.last_attempt_at AS "lastAttemptAt", s.sent_at AS "sentAt"
     FROM notify_sends s LEFT JOIN runs r ON r.id = s.run_id
     WHERE ($1::text IS NULL OR s.status = $1) AND ($2::bigint IS NULL OR s.run_id = $2)
     ORDER BY s.id DESC LIMIT $3`,
    [o.status ?? null, runId, limit],
  );
  const [counts] = await db.query<{ pending: number; sent: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending, count(*) FILTER (WHERE status = 'sent')::int AS sent,
            count(*) FILTER (WHERE status = 'failed')::int AS failed
     FROM notify_sends WHERE ($1::bigint IS NULL OR run_id = $1)`,
    [runId],
  );
  const outbox = await outboxCounts(db, runId ?? undefined);
  ctx.out.result({ sends, counts, outbox }, () => {
    const lines = [
      sends.length === 0
        ? 'no sends'
        : table(
            ['ID', 'RUN', 'STEP', 'CHANNEL', 'TARGET', 'SUBJECT', 'EVENT', 'STATUS', 'TRIES', 'LAST ERROR'],
            sends.map((s) => [s.id as number, s.runId as number, s.step as string, s.channel as string, s.target as string, s.subject as string | null, s.event as string, s.status as string, s.attempts as number, s.lastError ? String(s.lastError).slice(0, 70) : null]),
          ),
      `sends: ${counts!.sent} sent, ${counts!.pending} pending, ${counts!.failed} failed${counts!.pending + counts!.failed ? ' (`jwtir notify retry` sends them again)' : ''}`,
      '',
      'user outbox (the service mailer sends these):',
      outbox.length === 0 ? '  empty' : table(['KIND', 'TOTAL', 'WAITING', 'CLAIMED', 'SENT'], outbox.map((k) => [k.kind, k.total, k.waiting, k.claimed, k.sent])),
    ];
    return lines.join('\n');
  });
}

interface Candidate {
  runId: number;
  runbook: string;
  status: string;
  unsent: number;
  webhook: number;
}

/**
 * `jwtir notify retry`: sends again what is pending or failed, by resuming the runs whose send
 * steps stopped (so each retry is recorded in the audit trail like any resume). A message already
 * sent is never sent twice.
 */
export async function retry(ctx: CommandContext, o: { run?: string; dryRun?: boolean }): Promise<void> {
  const only = o.run === undefined ? null : parseIntStrict(o.run, '--run');
  const db = (await ctx.backends()).db;
  const candidates = await unsentRuns(db, only);
  if (only !== null && candidates.length === 0) await explainNothing(db, only);
  const total = candidates.reduce((n, c) => n + c.unsent, 0);
  const summary = { runs: candidates.map((c) => ({ runId: c.runId, runbook: c.runbook, status: c.status, unsent: c.unsent })) };
  if (candidates.length === 0) return ctx.out.result({ ...summary, retried: [] }, () => 'nothing to retry: every message was sent');
  if (o.dryRun) {
    return ctx.out.result({ dryRun: true, ...summary }, () =>
      [...candidates.map((c) => `run ${c.runId} (${c.runbook}, ${c.status}): ${c.unsent} message(s) to send again`), '', 'dry run: nothing was sent'].join('\n'),
    );
  }
  if (candidates.some((c) => c.webhook > 0)) oncallWebhook(ctx.settings.notify);
  const runs = candidates.map((c) => c.runId).join(', ');
  if (!(await ctx.confirm(`Send ${total} message(s) of run(s) ${runs} again?`))) throw new AbortedError('nothing was sent');
  const results: RunResult[] = [];
  let firstError: unknown;
  for (const c of candidates) {
    try {
      results.push(await resumeRun(await ctx.engineEnv(), c.runId, ctx.engineIO()));
    } catch (error) {
      firstError ??= error;
      if (!ctx.out.json) ctx.out.warn(error instanceof Error ? error.message : String(error));
    }
  }
  if (firstError) throw firstError instanceof JwtirError ? firstError : new InvalidStateError(String(firstError));
  ctx.out.result({ ...summary, retried: results }, () => results.map((r) => renderRunResult(r, ctx.out.color)).join('\n'));
}

async function unsentRuns(db: Queryable, only: number | null): Promise<Candidate[]> {
  const rows = await db.query<Candidate>(
    `SELECT s.run_id AS "runId", r.runbook, r.status, count(*)::int AS unsent, count(*) FILTER (WHERE s.channel = 'webhook')::int AS webhook
     FROM notify_sends s JOIN runs r ON r.id = s.run_id
     WHERE s.status <> 'sent' AND r.status = ANY($1::text[]) AND ($2::bigint IS NULL OR s.run_id = $2)
     GROUP BY s.run_id, r.runbook, r.status ORDER BY s.run_id`,
    [RESUMABLE, only],
  );
  return rows.map((r) => ({ ...r, runId: Number(r.runId) }));
}

/** `--run X` with nothing to resume: say why (unknown run, all sent, or rolled back on purpose). */
async function explainNothing(db: Queryable, runId: number): Promise<void> {
  const run = await getRun(db, runId);
  const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM notify_sends WHERE run_id = $1 AND status <> 'sent'`, [runId]);
  if (row!.n > 0) {
    throw new InvalidStateError(`run ${runId} is ${run.status.replace('_', ' ')}, so its ${row!.n} unsent message(s) stay as they are`, {
      hint: 'a rolled-back run sends nothing more; to send the message now, run the `jwtir notify` command again',
    });
  }
}
