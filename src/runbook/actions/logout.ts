import { z } from 'zod';
import { InvalidStateError } from '../../errors.js';
import { endByKey, endSession, endSessions, endUsers, restoreStep, type LogoutOutcome, type StepRef } from '../../state/logout.js';
import { countAlertsWithoutSession, countSelection, mechanismOf, type Mechanism, type Selection } from '../../state/selection.js';
import type { Backends } from '../../store/open.js';
import { defineAction, type ActionContext, type BlastRadius } from './action.js';

/** Unset list parameters arrive as null; absent means "no such selector". */
const list = <T extends z.ZodTypeAny>(item: T) => z.array(item).nullable().transform((v) => v ?? []);

/** A logout's selection as runbook inputs (see state/selection.ts). */
export const selectionInput = z.object({
  users: list(z.string().min(1)),
  roles: list(z.string().min(1)),
  kid: z.string().min(1).nullable(),
  cohorts: list(z.coerce.number().int().min(0).max(99)),
  device: z.string().min(1).nullable(),
  issuedBefore: z.string().datetime({ offset: true }).nullable(),
  suspicious: z.boolean(),
  alertsSince: z.string().datetime({ offset: true }).nullable(),
});

const OUTPUTS = ['sessions', 'users', 'refreshTokens', 'notBefore'] as const;

const refOf = (ctx: ActionContext): StepRef => ({ runId: ctx.runId, step: ctx.step, startedAt: ctx.stepStartedAt, progress: ctx.progress });

/** Plain words for a selection: "users alice, bob on key legacy issued before …". */
export function describeSelection(s: Selection): string {
  const parts: string[] = [];
  if (s.users.length) parts.push(`user ${s.users.join(', ')}`);
  if (s.roles.length) parts.push(`role ${s.roles.join(' or ')}`);
  if (s.kid) parts.push(`key ${s.kid}`);
  if (s.cohorts.length) parts.push(`cohort ${s.cohorts.join(',')}`);
  if (s.device) parts.push(`device ${s.device.length > 16 ? s.device.slice(0, 12) + '…' : s.device}`);
  if (s.issuedBefore) parts.push(`issued before ${s.issuedBefore}`);
  if (s.suspicious) parts.push(`alerted on since ${s.alertsSince}`);
  return parts.join(', ') || 'nothing';
}

/** The three logout steps share inputs, outputs and blast radius; each refuses a selection that is not its mechanism. */
function logoutAction(name: string, mechanism: Mechanism, how: string, end: (b: Backends, sel: Selection, ref: StepRef) => Promise<LogoutOutcome>) {
  return defineAction({
    name,
    mutates: true,
    outputs: OUTPUTS,
    input: selectionInput,
    describe: (sel) => `${how}: sessions of ${describeSelection(sel)}`,
    async apply(ctx, sel): Promise<Record<string, unknown> & LogoutOutcome> {
      // A run started by hand with inconsistent parameters must not end the wrong thing.
      if (mechanismOf(sel) !== mechanism) throw new InvalidStateError(`step ${ctx.step} (${name}) does not apply to a selection by ${describeSelection(sel)}`);
      return { ...(await end(ctx.backends, sel, refOf(ctx))) };
    },
    async impact(backends, raw): Promise<BlastRadius> {
      const sel = selectionInput.parse(raw);
      const ignored = sel.suspicious && sel.alertsSince ? await countAlertsWithoutSession(backends.db, sel.alertsSince) : 0;
      const why = ignored ? `; ${ignored} alert${ignored === 1 ? '' : 's'} name no ledger session (forged tokens, already denied) and end nothing` : '';
      return { ...(await countSelection(backends.db, sel)), note: `they must log in again${why}` };
    },
  });
}

export const logoutByKey = logoutAction('logout.by-key', 'key', 'kid or cohort watermarks', (b, sel, ref) => endByKey(b.db, b.hot, sel, ref));
export const logoutUsers = logoutAction('logout.users', 'users', 'a watermark per user', (b, sel, ref) => endUsers(b.db, b.hot, sel, ref));
export const logoutSessions = logoutAction('logout.sessions', 'sessions', 'a revocation per session', (b, sel, ref) => endSessions(b.db, b.hot, sel, ref));

/** `sessions revoke <sid>`: one session, by the same mechanism as a logout by device. */
export const sessionRevoke = defineAction({
  name: 'session.revoke',
  mutates: true,
  outputs: OUTPUTS,
  input: z.object({ sid: z.string().min(1) }),
  describe: (i) => `end session ${i.sid} (its access tokens and its refresh tokens)`,
  async apply(ctx, i): Promise<Record<string, unknown> & LogoutOutcome> {
    const { db, hot } = ctx.backends;
    const [row] = await db.query<{ sub: string }>('SELECT sub FROM sessions WHERE sid = $1', [i.sid]);
    if (!row) throw new InvalidStateError(`session ${i.sid} is not in the session ledger`);
    return { ...(await endSession(db, hot, i.sid, refOf(ctx))) };
  },
  async impact(backends, i): Promise<BlastRadius> {
    const [row] = await backends.db.query<{ sessions: number; users: number }>(
      `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM sessions WHERE sid = $1 AND expires_at > now()`,
      [i.sid],
    );
    return { ...row!, note: 'its user must log in again on that device' };
  },
});

/** Undo of every logout step and of `session.revoke`. */
export const logoutRestore = defineAction({
  name: 'logout.restore',
  mutates: true,
  outputs: ['watermarks', 'revocations', 'refreshTokens'],
  input: z.object({}),
  describe: () => 'restore the sessions this step ended: clear its watermarks, lift its session revocations, revive the refresh tokens it revoked',
  async apply(ctx) {
    return restoreStep(ctx.backends.db, ctx.backends.hot, refOf(ctx));
  },
});

export const LOGOUT_ACTIONS = [logoutByKey, logoutUsers, logoutSessions, sessionRevoke, logoutRestore];
