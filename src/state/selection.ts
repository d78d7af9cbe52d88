import type { Queryable } from '../store/db.js';

/**
 * Which sessions a forced logout ends. Every selector given narrows the selection (AND); lists
 * match any of their items. Times are absolute ISO strings: the CLI turns "2h" into a time
 * before the run starts, so a resume selects exactly what the first attempt did.
 */
export interface Selection {
  users: string[];
  roles: string[];
  kid: string | null;
  /** User cohorts, 0..99 (see cohortOf). */
  cohorts: number[];
  /** Device fingerprint hash (the sessions' `fph`). */
  device: string | null;
  issuedBefore: string | null;
  /** Sessions the guards raised an alert on since `alertsSince`. */
  suspicious: boolean;
  alertsSince: string | null;
}

/**
 * How a selection is ended, the cheapest way that covers exactly it:
 * - `key`: only --kid, --cohort, --issued-before: kid or cohort watermarks, O(1)-O(100) rows;
 * - `users`: --user or --role (with those): per-user watermarks;
 * - `sessions`: --device or --suspicious: session revocations for the matching ledger sessions.
 */
export type Mechanism = 'key' | 'users' | 'sessions';

export function mechanismOf(sel: Selection): Mechanism {
  if (sel.device || sel.suspicious) return 'sessions';
  if (sel.users.length || sel.roles.length) return 'users';
  return 'key';
}

/** Only --user was given: the named users are logged out even where the ledger does not know their tokens. */
export function namesUsersOnly(sel: Selection): boolean {
  return sel.users.length > 0 && !sel.roles.length && !sel.kid && !sel.cohorts.length && !sel.device && !sel.issuedBefore && !sel.suspicious;
}

/** Key states whose tokens verify: an --issued-before without a kid ends the old tokens of each. */
export const VERIFYING_STATES = `('staged', 'active', 'retiring')`;

/** Collects query parameters while SQL is assembled, so every value stays a bound parameter. */
export class Params {
  readonly values: unknown[] = [];
  constructor(initial: unknown[] = []) {
    this.values.push(...initial);
  }
  add(value: unknown, cast = ''): string {
    this.values.push(value);
    return `$${this.values.length}${cast}`;
  }
}

/** Conditions on ledger sessions `s` for every selector except --suspicious. */
export function baseConditions(sel: Selection, p: Params): string[] {
  const where: string[] = [];
  if (sel.users.length) where.push(`s.sub = ANY(${p.add(sel.users, '::text[]')})`);
  if (sel.roles.length) where.push(`s.roles && ${p.add(sel.roles, '::text[]')}`);
  if (sel.kid) where.push(`s.kid = ${p.add(sel.kid)}`);
  if (sel.cohorts.length) where.push(`s.cohort = ANY(${p.add(sel.cohorts, '::smallint[]')})`);
  if (sel.device) where.push(`s.fph = ${p.add(sel.device)}`);
  if (sel.issuedBefore) where.push(`s.issued_at < ${p.add(sel.issuedBefore, '::timestamptz')}`);
  return where;
}

/**
 * Ledger sessions named by an alert (a stolen token, a forgery on a real session, refresh
 * reuse). Only the ledger's own session ids count: whoever holds the leaked secret can mint
 * tokens for any user, without a session id or with an invented one, and have the guards alert
 * on them; such tokens are already denied as forged, and logging out the users they name would
 * let the attacker choose whom --suspicious logs out (and whom --notify mails).
 */
export function alertedSessions(sel: Selection, p: Params): string {
  return `s.sid IN (SELECT a.sid FROM alerts a WHERE a.at >= ${p.add(sel.alertsSince, '::timestamptz')} AND a.sid IS NOT NULL)`;
}

/** Alerts since `since` that name no ledger session, so --suspicious leaves them be (see alertedSessions). */
export async function countAlertsWithoutSession(db: Queryable, since: string): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM alerts a WHERE a.at >= $1::timestamptz AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sid = a.sid)`,
    [since],
  );
  return row?.n ?? 0;
}

/**
 * The users a step gives user watermarks, as SQL yielding a column `sub`: the named users
 * themselves when --user is the only selector (their tokens end even where the ledger does not
 * know them), else the users of sessions live at `liveAt` and issued before `before` that match
 * (both ISO times; null means now()). Parameters are added only where used: Postgres cannot
 * type an unused one.
 */
export function pickedUsers(sel: Selection, p: Params, at: { liveAt: string | null; before: string | null }): string {
  if (namesUsersOnly(sel)) return `SELECT unnest(${p.add(sel.users, '::text[]')}) AS sub`;
  const time = (iso: string | null) => (iso === null ? 'now()' : p.add(iso, '::timestamptz'));
  const where = [...baseConditions(sel, p), `s.expires_at > ${time(at.liveAt)}`, `s.issued_at < ${time(at.before)}`];
  return `SELECT DISTINCT s.sub FROM sessions s WHERE ${where.join(' AND ')}`;
}

/** The sessions a `sessions`-mechanism step revokes one by one: SQL over `s` (a WHERE body). */
export function revokedSessionsWhere(sel: Selection, p: Params): string {
  const where = baseConditions(sel, p);
  if (sel.suspicious) where.push(alertedSessions(sel, p));
  return where.length ? where.join(' AND ') : 'true';
}

/**
 * The blast radius of a logout right now: live sessions (expires_at > now()) and their users,
 * counted set-based (no row leaves the database). A run's own count afterwards
 * (state/affected.ts) derives the same sessions from the rows the run wrote.
 */
export async function countSelection(db: Queryable, sel: Selection): Promise<{ sessions: number; users: number }> {
  const p = new Params();
  const cutoff = () => (sel.issuedBefore ? p.add(sel.issuedBefore, '::timestamptz') : 'now()');
  const parts: string[] = [];
  const mechanism = mechanismOf(sel);
  if (mechanism === 'key') {
    const where = baseConditions(sel, p);
    if (!sel.kid && !sel.cohorts.length) where.push(`s.kid IN (SELECT kid FROM keys WHERE state IN ${VERIFYING_STATES})`);
    parts.push(`SELECT s.sub, s.sid FROM sessions s WHERE ${where.join(' AND ')} AND s.expires_at > now()`);
  }
  if (mechanism === 'sessions') {
    parts.push(`SELECT s.sub, s.sid FROM sessions s WHERE ${revokedSessionsWhere(sel, p)} AND s.expires_at > now()`);
  }
  if (mechanism === 'users') {
    parts.push(
      `SELECT s.sub, s.sid FROM sessions s JOIN (${pickedUsers(sel, p, { liveAt: null, before: sel.issuedBefore })}) u ON u.sub = s.sub
       WHERE s.expires_at > now() AND s.issued_at < ${cutoff()}`,
    );
  }
  const [row] = await db.query<{ sessions: number; users: number }>(
    `SELECT count(*)::int AS sessions, count(DISTINCT sub)::int AS users FROM (${parts.join(' UNION ')}) a`,
    p.values,
  );
  return row ?? { sessions: 0, users: 0 };
}
