import { z } from 'zod';
import { NotifySendFailedError } from '../../errors.js';
import { oncallWebhook, parseReceiverItem } from '../../notify/config.js';
import { createSetMessages, createWebhookMessage } from '../../notify/create.js';
import { DEFAULT_RETRY, postWithRetries, type RetryPolicy } from '../../notify/http.js';
import { CREDENTIAL_TYPES, OUTBOX_KINDS, SET_EVENT_NAMES } from '../../notify/events.js';
import { countEnqueued, enqueueForUsers, enqueueFromRun, withdraw } from '../../notify/outbox.js';
import { abandonUnsent, deliverStep, type StepDelivery } from '../../notify/sends.js';
import { eventClaims, judgeSetResponse, signSet, type SetSigningKey } from '../../notify/set.js';
import { loadSetSigningKey } from '../../notify/signing-key.js';
import { slackBody } from '../../notify/slack.js';
import { countAffectedBySteps, sourceSteps } from '../../notify/subjects.js';
import type { Backends } from '../../store/open.js';
import { defineAction, type Action, type ActionContext, type BlastRadius } from './action.js';

/**
 * Who a notification is about: named users, or the users whose sessions steps of a run ended
 * (`fromRun`, one `fromStep` or all its steps). With `fromStep` and no `fromRun`, the steps are
 * this run's own: a logout runbook can notify the users its earlier step logged out.
 */
const audience = {
  users: z.array(z.string().min(1)).min(1).nullable(),
  fromRun: z.number().int().positive().nullable(),
  fromStep: z.string().min(1).nullable(),
};
const oneAudience = (i: { users: unknown; fromRun: unknown; fromStep: unknown }) => (i.users === null) !== (i.fromRun === null && i.fromStep === null);
const ONE_AUDIENCE = { message: 'name the users, or the run (or step) whose logged-out users to notify, not both' };

const retry = { attempts: z.number().int().min(1).max(20), deadlineMs: z.number().int().positive() };
const policyOf = (i: { attempts: number; deadlineMs: number }): RetryPolicy => ({
  ...DEFAULT_RETRY,
  attempts: i.attempts,
  deadlineMs: i.deadlineMs,
  attemptTimeoutMs: Math.min(DEFAULT_RETRY.attemptTimeoutMs, i.deadlineMs),
});

type Audience = { users: string[] | null; fromRun: number | null; fromStep: string | null };

async function resolveAudience(ctx: ActionContext, i: Audience): Promise<{ users: string[] } | { run: number; steps: string[] }> {
  if (i.users) return { users: i.users };
  const run = i.fromRun ?? ctx.runId;
  return { run, steps: await sourceSteps(ctx.backends.db, run, i.fromStep) };
}

const describeAudience = (i: Partial<Audience>) =>
  i.users ? `${i.users.length} user(s)` : `every user whose sessions ${i.fromStep ? `step ${i.fromStep} of ` : ''}run ${i.fromRun ?? '(this run)'} ended`;

async function audienceImpact(backends: Backends, i: Partial<Audience>): Promise<BlastRadius> {
  if (Array.isArray(i.users)) {
    const [row] = await backends.db.query<{ sessions: number }>('SELECT count(*)::int AS sessions FROM sessions WHERE sub = ANY($1::text[]) AND expires_at > now()', [i.users]);
    return { sessions: row?.sessions ?? 0, users: i.users.length, note: 'users notified; their live sessions are listed' };
  }
  if (typeof i.fromRun !== 'number') return { sessions: 0, users: 0, note: 'counted when the step runs' };
  const steps = await sourceSteps(backends.db, i.fromRun, typeof i.fromStep === 'string' ? i.fromStep : null);
  return { ...(await countAffectedBySteps(backends.db, i.fromRun, steps)), note: 'users notified about the sessions that run ended' };
}

/** Writes one notification per user to the outbox the service's mailer consumes (set-based). */
export const notifyEnqueue = defineAction({
  name: 'notify.enqueue',
  mutates: true,
  outputs: ['users'],
  input: z.object({ kind: z.enum(OUTBOX_KINDS), reason: z.string().nullable(), ...audience }).refine(oneAudience, ONE_AUDIENCE),
  describe: (i) => `write a ${i.kind} notification to the outbox for ${describeAudience(i)}`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    const target = await resolveAudience(ctx, i);
    const e = { runId: ctx.runId, step: ctx.step, kind: i.kind, reason: i.reason, at: ctx.stepStartedAt };
    ctx.progress(`writing ${i.kind} notifications for ${describeAudience(i)}`);
    if ('users' in target) await enqueueForUsers(db, e, target.users);
    else await enqueueFromRun(db, e, target.run, target.steps);
    return { users: await countEnqueued(db, ctx.runId, ctx.step) };
  },
  impact: (backends, i) => audienceImpact(backends, i),
});

/** Undo of notify.enqueue: unclaimed rows are deleted; rows the mailer claimed cannot be unsent. */
export const notifyWithdraw = defineAction({
  name: 'notify.withdraw',
  mutates: true,
  outputs: ['withdrawn', 'kept'],
  input: z.object({}),
  describe: () => 'delete the notifications this step wrote that the mailer has not claimed (claimed ones may be sent already and cannot be recalled)',
  async apply(ctx) {
    const out = await withdraw(ctx.backends.db, ctx.runId, ctx.step);
    ctx.progress(`withdrew ${out.withdrawn} notification(s)${out.kept ? `; ${out.kept} already claimed by the mailer cannot be unsent` : ''}`);
    return out;
  },
});

/** What a send step had not delivered when its run was rolled back is recorded as never to be sent. */
const abandon = async (ctx: ActionContext) => ({ abandoned: await abandonUnsent(ctx.backends.db, ctx.runId, ctx.step) });

function failIfUnsent(res: StepDelivery, what: string): void {
  if (res.unsent === 0) return;
  throw new NotifySendFailedError(`${res.unsent} of ${res.total} ${what} not delivered: ${res.reasons.slice(0, 3).join('; ')}`, {
    hint: 'they are recorded as failed (`jwtir notify list --status failed`); once the receiver is back, `jwtir notify retry` sends them',
  });
}

/** Posts a Slack-compatible message to the on-call webhook, with retries and a deadline. */
export const notifyOncall = defineAction({
  name: 'notify.oncall',
  mutates: true,
  outputs: ['sent', 'target'],
  input: z.object({ message: z.string().min(1), host: z.string(), ...retry }),
  describe: (i) => `post to the on-call webhook at ${i.host}: "${i.message.length > 80 ? i.message.slice(0, 79) + '…' : i.message}"`,
  async apply(ctx, i) {
    const url = oncallWebhook(ctx.settings.notify);
    await createWebhookMessage(ctx.backends.db, ctx.runId, ctx.step, url.host, slackBody(i.message, { runId: ctx.runId, actor: ctx.actor }));
    const policy = policyOf(i);
    const res = await deliverStep(ctx, async (row) => ({
      ...(await postWithRetries(url, { headers: { 'content-type': 'application/json' }, body: JSON.stringify(row.payload) }, policy)),
      target: url.host,
    }));
    failIfUnsent(res, 'on-call message(s)');
    return { sent: res.sent, target: url.host };
  },
  abandon,
});

/** Concurrent requests per step: receivers take one SET per request (RFC 8935). */
const SET_CONCURRENCY = 8;

/** Signs CAEP/RISC Security Event Tokens with an asymmetric key and pushes them to every receiver. */
export const notifySet = defineAction({
  name: 'notify.set',
  mutates: true,
  needsKek: true,
  outputs: ['sent', 'subjects'],
  input: z
    .object({
      event: z.enum(SET_EVENT_NAMES),
      credType: z.enum(CREDENTIAL_TYPES).nullable(),
      reason: z.string().nullable(),
      kid: z.string().min(1),
      issuer: z.string().min(1),
      receivers: z.array(z.string().includes(' ')).min(1),
      ...audience,
      ...retry,
    })
    .refine(oneAudience, ONE_AUDIENCE)
    .refine((i) => (i.event === 'credential-compromise') === (i.credType !== null), { message: 'credential-compromise needs a credential type, and only it takes one' }),
  describe: (i) =>
    `sign ${i.event} SETs with ${i.kid} for ${describeAudience(i)} and push them to ${Array.isArray(i.receivers) ? i.receivers.map((r) => parseReceiverItem(r).audience).join(', ') : 'the receivers'}`,
  async apply(ctx, i) {
    const db = ctx.backends.db;
    const at = Math.floor(ctx.stepStartedAt.getTime() / 1000);
    await createSetMessages(db, {
      runId: ctx.runId,
      step: ctx.step,
      event: i.event,
      issuer: i.issuer,
      iat: at,
      claims: eventClaims(i.event, { at, reason: i.reason, credType: i.credType }),
      receivers: i.receivers.map(parseReceiverItem),
      subjects: await resolveAudience(ctx, i),
    });
    let key: Promise<SetSigningKey> | undefined;
    const policy = policyOf(i);
    const res = await deliverStep(
      ctx,
      async (row) => {
        key ??= ctx.kek().then((kek) => loadSetSigningKey(db, kek, i.kid));
        const body = await signSet(await key, row.payload);
        const headers = { 'content-type': 'application/secevent+jwt', accept: 'application/json' };
        return postWithRetries(new URL(row.target), { headers, body }, policy, judgeSetResponse);
      },
      SET_CONCURRENCY,
    );
    failIfUnsent(res, 'SET(s)');
    const [row] = await db.query<{ n: number }>('SELECT count(DISTINCT subject)::int AS n FROM notify_sends WHERE run_id = $1 AND step = $2', [ctx.runId, ctx.step]);
    return { sent: res.sent, subjects: row?.n ?? 0 };
  },
  async impact(backends, i) {
    const radius = await audienceImpact(backends, i);
    const receivers = Array.isArray(i.receivers) ? i.receivers.length : 0;
    return { ...radius, note: `${(radius.users * receivers).toLocaleString('en-US')} SET(s): one per user and receiver` };
  },
  abandon,
});

/** The runbook actions of the `notify` commands. */
export const NOTIFY_ACTIONS: readonly Action[] = [notifyEnqueue, notifyWithdraw, notifyOncall, notifySet];
