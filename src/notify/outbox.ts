import type { Queryable } from '../store/db.js';
import type { OutboxKind } from './events.js';
import { affectedByStepsSql } from './subjects.js';

/** A payload lists at most this many sessions (most recent first); `sessionCount` has them all. */
export const PAYLOAD_SESSIONS = 20;

export interface Enqueue {
  runId: number;
  step: string;
  kind: OutboxKind;
  reason: string | null;
  /** When it happened (the step's first start, so a resume writes the same payload). */
  at: Date;
}

const utc = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;

/**
 * One INSERT … SELECT for any number of users: `picked` (a CTE with sub, sid, device, place,
 * issued_at, last_seen_at, n = rank of the session within its user, total = the user's count)
 * becomes one row per user. $1 kind, $2 reason, $3 run, $4 at, $5 step, $7 source (jsonb).
 * The unique (run, step, sub, kind) makes a resumed step write nothing twice.
 */
const insertFromPicked = (picked: string) => `
  WITH ${picked}
  INSERT INTO notify_outbox (sub, kind, payload, run_id, step)
  SELECT sub, $1::text, jsonb_build_object(
      'reason', $2::text,
      'at', $4::text,
      'source', $7::jsonb,
      'sessionCount', count(sid),
      'sessions', coalesce(jsonb_agg(jsonb_build_object('sid', sid, 'device', device, 'place', place,
          'issuedAt', ${utc('issued_at')}, 'lastSeenAt', ${utc('last_seen_at')}) ORDER BY issued_at DESC)
        FILTER (WHERE sid IS NOT NULL AND n <= ${PAYLOAD_SESSIONS}), '[]'::jsonb)),
    $3::bigint, $5::text
  FROM picked GROUP BY sub
  ON CONFLICT (run_id, step, sub, kind) DO NOTHING`;

const baseParams = (e: Enqueue) => [e.kind, e.reason, e.runId, e.at.toISOString(), e.step];

/** Notifications for named users, each listing the sessions that user has live at `at`. */
export async function enqueueForUsers(db: Queryable, e: Enqueue, users: string[]): Promise<void> {
  await db.query(
    insertFromPicked(`picked AS (
      SELECT u.sub, s.sid, s.device, s.place, s.issued_at, s.last_seen_at,
             row_number() OVER (PARTITION BY u.sub ORDER BY s.issued_at DESC) AS n
      FROM unnest($6::text[]) AS u(sub)
      LEFT JOIN sessions s ON s.sub = u.sub AND s.expires_at > $4::text::timestamptz)`),
    [...baseParams(e), users, null],
  );
}

/** Notifications for the users whose sessions `steps` of run `sourceRun` ended, listing those sessions. */
export async function enqueueFromRun(db: Queryable, e: Enqueue, sourceRun: number, steps: string[]): Promise<void> {
  await db.query(
    insertFromPicked(`affected AS (${affectedByStepsSql(steps.length, 6, 8)}),
    picked AS (
      SELECT s.sub, s.sid, s.device, s.place, s.issued_at, s.last_seen_at,
             row_number() OVER (PARTITION BY s.sub ORDER BY s.issued_at DESC) AS n
      FROM affected a JOIN sessions s ON s.sid = a.sid)`),
    [...baseParams(e), sourceRun, JSON.stringify({ run: sourceRun, steps }), ...steps],
  );
}

export async function countEnqueued(db: Queryable, runId: number, step: string): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM notify_outbox WHERE run_id = $1 AND step = $2', [runId, step]);
  return row?.n ?? 0;
}

/**
 * Undo of an enqueue: deletes the rows of that step the mailer has not claimed. Claimed ones
 * are kept: the mailer may already have sent them, and a sent e-mail cannot be recalled.
 */
export async function withdraw(db: Queryable, runId: number, step: string): Promise<{ withdrawn: number; kept: number }> {
  const [gone] = await db.query<{ n: number }>(
    `WITH d AS (DELETE FROM notify_outbox WHERE run_id = $1 AND step = $2 AND claimed_at IS NULL AND sent_at IS NULL RETURNING 1)
     SELECT count(*)::int AS n FROM d`,
    [runId, step],
  );
  return { withdrawn: gone?.n ?? 0, kept: await countEnqueued(db, runId, step) };
}

export interface OutboxCounts {
  kind: OutboxKind;
  total: number;
  /** Neither claimed nor sent. */
  waiting: number;
  /** Claimed by the mailer, not yet marked sent. */
  claimed: number;
  sent: number;
}

export async function outboxCounts(db: Queryable, runId?: number): Promise<OutboxCounts[]> {
  return db.query<OutboxCounts>(
    `SELECT kind, count(*)::int AS total,
            count(*) FILTER (WHERE claimed_at IS NULL AND sent_at IS NULL)::int AS waiting,
            count(*) FILTER (WHERE claimed_at IS NOT NULL AND sent_at IS NULL)::int AS claimed,
            count(*) FILTER (WHERE sent_at IS NOT NULL)::int AS sent
     FROM notify_outbox WHERE ($1::bigint IS NULL OR run_id = $1) GROUP BY kind ORDER BY kind`,
    [runId ?? null],
  );
}

/**
 * The statements a service's mailer runs (documented in README.notify.md, exercised by the
 * tests). Claim: up to $1 rows nobody holds, or whose holder has been silent for 5 minutes
 * (a mailer that died mid-batch gives its rows back); SKIP LOCKED lets several mailers share.
 */
export const MAILER_CLAIM_SQL = `UPDATE notify_outbox SET claimed_at = now(), attempts = attempts + 1
WHERE id IN (
  SELECT id FROM notify_outbox
  WHERE sent_at IS NULL AND (claimed_at IS NULL OR claimed_at < now() - interval '5 minutes')
  ORDER BY id LIMIT $1
  FOR UPDATE SKIP LOCKED)
RETURNING id, sub, kind, payload, created_at`;

/** After the mail went out: $1 the ids sent. */
export const MAILER_SENT_SQL = `UPDATE notify_outbox SET sent_at = now(), last_error = NULL WHERE id = ANY($1::bigint[])`;

/** After a failure: $1 the id, $2 why; the row is released for the next claim. */
export const MAILER_FAILED_SQL = `UPDATE notify_outbox SET claimed_at = NULL, last_error = $2 WHERE id = $1 AND sent_at IS NULL`;
