import type { Queryable } from '../store/db.js';
import type { SetReceiver } from './config.js';
import { SET_EVENTS, type SetEventName } from './events.js';
import type { SlackBody } from './slack.js';
import { affectedByStepsSql } from './subjects.js';

/**
 * The messages of a run step are decided once, when the step first runs: a resume or a retry
 * delivers exactly those (same body, same SET jti), never a recomputed set.
 */

/** The on-call message of a step. `host` is shown and recorded; the URL is not (it is a secret). */
export async function createWebhookMessage(db: Queryable, runId: number, step: string, host: string, body: SlackBody): Promise<void> {
  await db.query(
    `INSERT INTO notify_sends (run_id, step, channel, target, event, payload, idem) VALUES ($1, $2, 'webhook', $3, 'oncall', $4, $5)
     ON CONFLICT (idem) DO NOTHING`,
    [runId, step, host, JSON.stringify(body), `${runId}:${step}:webhook`],
  );
}

export interface SetBatch {
  runId: number;
  step: string;
  event: SetEventName;
  issuer: string;
  /** Epoch seconds: the SETs' `iat` (the step's first start). */
  iat: number;
  /** The event-specific claims (see eventClaims). */
  claims: Record<string, unknown>;
  receivers: SetReceiver[];
  subjects: { users: string[] } | { run: number; steps: string[] };
}

/**
 * One SET per subject and receiver, in one statement, unless the step already has its messages.
 * Claims (RFC 8417 / SSF 1.0): iss, aud, iat, jti, txn (the run), sub_id in the iss_sub format
 * (RFC 9493), and events with the one event. Each jti is random and kept with its row.
 */
export async function createSetMessages(db: Queryable, b: SetBatch): Promise<void> {
  const subjects =
    'users' in b.subjects ? 'SELECT DISTINCT unnest($11::text[]) AS sub' : `SELECT DISTINCT sub FROM (${affectedByStepsSql(b.subjects.steps.length, 11, 12)}) a`;
  const subjectParams = 'users' in b.subjects ? [b.subjects.users] : [b.subjects.run, ...b.subjects.steps];
  await db.query(
    `WITH x AS MATERIALIZED (
       SELECT u.sub, r.url, r.aud, gen_random_uuid()::text AS jti
       FROM (${subjects}) u CROSS JOIN unnest($9::text[], $10::text[]) AS r(url, aud)
       WHERE NOT EXISTS (SELECT 1 FROM notify_sends WHERE run_id = $1 AND step = $2))
     INSERT INTO notify_sends (run_id, step, channel, target, audience, subject, event, jti, payload, idem)
     SELECT $1::bigint, $2::text, 'set', x.url, x.aud, x.sub, $3::text, x.jti,
       jsonb_build_object('iss', $4::text, 'aud', x.aud, 'iat', $5::bigint, 'jti', x.jti, 'txn', $6::text,
         'sub_id', jsonb_build_object('format', 'iss_sub', 'iss', $4::text, 'sub', x.sub),
         'events', jsonb_build_object($7::text, $8::jsonb)),
       $1::text || ':' || $2::text || ':set:' || x.aud || ' ' || x.url || ':' || x.sub
     FROM x ORDER BY x.sub, x.aud, x.url
     ON CONFLICT (idem) DO NOTHING`,
    [
      b.runId,
      b.step,
      b.event,
      b.issuer,
      b.iat,
      `jwtir-run-${b.runId}`,
      SET_EVENTS[b.event],
      JSON.stringify(b.claims),
      b.receivers.map((r) => r.url),
      b.receivers.map((r) => r.audience),
      ...subjectParams,
    ],
  );
}
