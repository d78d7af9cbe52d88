import { parseDuration } from '../../config/duration.js';
import { UsageError } from '../../errors.js';
import { oncallWebhook, receiverItem, setIssuer, setReceivers } from '../../notify/config.js';
import { setSigningKey } from '../../notify/signing-key.js';
import { runSummary } from '../../notify/summary.js';
import { countAffectedBySteps, sourceSteps } from '../../notify/subjects.js';
import { assertKnownUsers } from '../../state/users.js';
import type { Queryable } from '../../store/db.js';
import type { CommandContext } from '../context.js';
import { parseIntStrict } from '../parse.js';
import { runRunbook } from '../run-runbook.js';
import { refuseControlChars } from '../../lib/printable.js';

interface AudienceOptions {
  user?: string[];
  fromRun?: string;
  step?: string;
}
interface DeliveryOptions {
  deadline: string;
  attempts: string;
  dryRun?: boolean;
}
type Audience = { users: string[] | null; fromRun: number | null; fromStep: string | null };

const MAX_TEXT = 4000;

/** `jwtir notify users`: one outbox row per user for the service's mailer. */
export async function users(ctx: CommandContext, o: AudienceOptions & { kind: string; reason?: string; dryRun?: boolean }): Promise<void> {
  const audience = parseAudience(o);
  const reason = text(o.reason, '--reason');
  await checkAudience((await ctx.backends()).db, audience);
  await runRunbook(ctx, 'notify-users', { kind: o.kind, reason, ...audience }, { dryRun: o.dryRun, confirmPlan: true });
}

/** `jwtir notify oncall`: a message (or a run's summary) to the on-call webhook. */
export async function oncall(ctx: CommandContext, o: DeliveryOptions & { message?: string; fromRun?: string }): Promise<void> {
  if ((o.message === undefined) === (o.fromRun === undefined)) {
    throw new UsageError('give exactly one of --message <text> or --from-run <id>', { hint: 'jwtir notify oncall --message "rotation started" or --from-run 42 for a summary of that run' });
  }
  const delivery = parseDelivery(o);
  const fromRun = o.fromRun === undefined ? null : runId(o.fromRun, '--from-run');
  const message = text(o.message, '--message');
  // Checked before anything is opened: a missing or malformed webhook changes nothing.
  const url = oncallWebhook(ctx.settings.notify);
  const db = (await ctx.backends()).db;
  const body = message ?? (await runSummary(db, fromRun!));
  // The plan shows the start of it; what goes out is shown whole before the confirmation.
  if (!ctx.out.json) ctx.out.info(`${ctx.out.color.bold('message')}:\n${body.replace(/^/gm, '  ')}\n`);
  await runRunbook(ctx, 'notify-oncall', { message: body, host: url.host, fromRun, ...delivery }, { dryRun: o.dryRun, confirmPlan: true });
}

/** `jwtir notify set`: CAEP/RISC Security Event Tokens to every Shared Signals receiver. */
export async function set(
  ctx: CommandContext,
  o: AudienceOptions & DeliveryOptions & { event: 'session-revoked' | 'credential-compromise'; kid?: string; credentialType?: string; reason?: string },
): Promise<void> {
  const audience = parseAudience(o);
  if (o.event === 'credential-compromise' && !o.credentialType) {
    throw new UsageError('--event credential-compromise needs --credential-type (what was compromised, as the receivers know it)', {
      hint: 'for example --credential-type password; see --help for the values',
    });
  }
  if (o.event !== 'credential-compromise' && o.credentialType) throw new UsageError(`--credential-type is for --event credential-compromise only, not ${o.event}`);
  const delivery = parseDelivery(o);
  const reason = text(o.reason, '--reason');
  const receivers = setReceivers(ctx.settings.notify);
  const issuer = setIssuer(ctx.settings.notify);
  const db = (await ctx.backends()).db;
  const key = await setSigningKey(db, o.kid ?? null);
  await checkAudience(db, audience);
  await runRunbook(
    ctx,
    'notify-set',
    { event: o.event, credType: o.credentialType ?? null, reason, kid: key.kid, issuer, receivers: receivers.map(receiverItem), ...audience, ...delivery },
    { dryRun: o.dryRun, confirmPlan: true },
  );
}

function parseAudience(o: AudienceOptions): Audience {
  const users = o.user?.length ? [...new Set(o.user)] : null;
  if (users?.some((u) => u.trim() === '')) throw new UsageError('--user needs a subject, got an empty one');
  if (users && o.fromRun !== undefined) throw new UsageError('give --user or --from-run, not both');
  if (!users && o.fromRun === undefined) {
    throw new UsageError('say whom this is about: --user <sub> (repeat it for several) or --from-run <id>', {
      hint: '--from-run takes the users whose sessions that run ended (`jwtir runs list`)',
    });
  }
  if (o.step !== undefined && o.fromRun === undefined) throw new UsageError('--step needs --from-run');
  return { users, fromRun: o.fromRun === undefined ? null : runId(o.fromRun, '--from-run'), fromStep: o.step ?? null };
}

/** Unknown users, runs and steps are refused, and so is a run that ended nobody's session. */
async function checkAudience(db: Queryable, a: Audience): Promise<void> {
  if (a.users) return assertKnownUsers(db, a.users);
  const steps = await sourceSteps(db, a.fromRun!, a.fromStep);
  const { users } = await countAffectedBySteps(db, a.fromRun!, steps);
  if (users === 0) {
    throw new UsageError(`${a.fromStep ? `step ${a.fromStep} of ` : ''}run ${a.fromRun} ended no session that is in the ledger, so there is nobody to notify`, {
      hint: 'check the run id (`jwtir runs show <id>`); name users with --user instead',
    });
  }
}

function parseDelivery(o: DeliveryOptions): { deadline: number; attempts: number } {
  const deadline = parseDuration(o.deadline, '--deadline', 3600_000);
  if (deadline === 0) throw new UsageError('--deadline must be longer than 0s', { hint: 'for example --deadline 30s' });
  const attempts = parseIntStrict(o.attempts, '--attempts');
  if (attempts < 1 || attempts > 20) throw new UsageError(`--attempts must be between 1 and 20, got ${attempts}`);
  return { deadline, attempts };
}

function runId(value: string, what: string): number {
  const id = parseIntStrict(value, what);
  if (id < 1) throw new UsageError(`${what} must be a run id (1 or more), got ${value}`, { hint: 'see `jwtir runs list`' });
  return id;
}

function text(value: string | undefined, what: string): string | null {
  if (value === undefined) return null;
  if (value.trim() === '') throw new UsageError(`${what} is empty`);
  if (value.length > MAX_TEXT) throw new UsageError(`${what} is ${value.length} characters long; at most ${MAX_TEXT}`);
  refuseControlChars(value, what);
  return value;
}
