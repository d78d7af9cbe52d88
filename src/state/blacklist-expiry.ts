import { formatDuration } from '../config/duration.js';
import type { Queryable } from '../store/db.js';
import type { BlacklistEntry } from './blacklist.js';
import type { PolicyDoc } from './policy.js';

/**
 * When a blacklist entry ends: when the tokens it covers would have expired anyway.
 * - `ttl`: the operator said so (--ttl), counted from the step's start;
 * - `token-exp`: the finding carries the token's exp: that + the clock tolerance;
 * - `ledger-session`: a session the ledger knows: its expiry + the clock tolerance;
 * - `max-lifetime`: otherwise start + the policy's maxLifetimeSec + the tolerance. Sound, because
 *   the guard refuses any token living longer than maxLifetimeSec and every covered token was
 *   issued before the start.
 * The last bound also caps the exp- and ledger-based ones: no covered token can outlive it.
 */
export type ExpiryRule = 'ttl' | 'token-exp' | 'ledger-session' | 'max-lifetime';
export const EXPIRY_RULES: readonly ExpiryRule[] = ['ttl', 'token-exp', 'ledger-session', 'max-lifetime'];

export interface ExpiryBasis {
  /** The step's start, epoch seconds (kept across resumes, so a resume computes the same). */
  startSec: number;
  policy: Pick<PolicyDoc, 'clockToleranceSec' | 'maxLifetimeSec'>;
  ttlMs: number | null;
}

export interface Expiry {
  expiresAt: Date;
  rule: ExpiryRule;
}

/** The expiry of each jti/session/device entry, in order. One query for all the sessions. */
export async function revocationExpiries(db: Queryable, entries: BlacklistEntry[], basis: ExpiryBasis): Promise<Expiry[]> {
  const { clockToleranceSec: tol, maxLifetimeSec } = basis.policy;
  const bound = basis.startSec + maxLifetimeSec + tol;
  const sids = entries.filter((e) => e.kind === 'sid' && e.exp === undefined).map((e) => e.value);
  const ledger = new Map<string, number>();
  if (basis.ttlMs === null && sids.length) {
    const rows = await db.query<{ sid: string; exp: number }>(
      'SELECT sid, ceil(extract(epoch FROM expires_at))::bigint AS exp FROM sessions WHERE sid = ANY($1::text[])',
      [sids],
    );
    for (const r of rows) ledger.set(r.sid, Number(r.exp));
  }
  return entries.map((e) => {
    if (basis.ttlMs !== null) return at(basis.startSec + Math.ceil(basis.ttlMs / 1000), 'ttl');
    if (e.exp !== undefined) return at(Math.min(e.exp + tol, bound), 'token-exp');
    const session = e.kind === 'sid' ? ledger.get(e.value) : undefined;
    if (session !== undefined) return at(Math.min(session + tol, bound), 'ledger-session');
    return at(bound, 'max-lifetime');
  });
}

/**
 * A user watermark ends every token of the user issued before it, not only the one a finding
 * saw, so its expiry is always the maximum-lifetime bound. --ttl does not shorten it: ending it
 * early would bring those tokens (a stolen one among them) back to life.
 */
export function userExpiry(basis: ExpiryBasis): Expiry {
  return at(basis.startSec + basis.policy.maxLifetimeSec + basis.policy.clockToleranceSec, 'max-lifetime');
}

function at(sec: number, rule: ExpiryRule): Expiry {
  return { expiresAt: new Date(sec * 1000), rule };
}

export function countRules(expiries: Expiry[]): Partial<Record<ExpiryRule, number>> {
  const out: Partial<Record<ExpiryRule, number>> = {};
  for (const e of expiries) out[e.rule] = (out[e.rule] ?? 0) + 1;
  return out;
}

/** "3 by the token's exp + 30s tolerance, 1 by now + the maximum lifetime 30d + 30s" */
export function describeRules(counts: Partial<Record<ExpiryRule, number>>, basis: Pick<ExpiryBasis, 'policy' | 'ttlMs'>): string {
  const tol = formatDuration(basis.policy.clockToleranceSec * 1000);
  const text: Record<ExpiryRule, string> = {
    ttl: `by --ttl ${basis.ttlMs === null ? '' : formatDuration(basis.ttlMs)}`.trimEnd(),
    'token-exp': `by the token's exp + ${tol} clock tolerance`,
    'ledger-session': `by the ledger session's expiry + ${tol}`,
    'max-lifetime': `by now + the maximum token lifetime ${formatDuration(basis.policy.maxLifetimeSec * 1000)} + ${tol}`,
  };
  return EXPIRY_RULES.filter((r) => counts[r]).map((r) => `${counts[r]} ${text[r]}`).join(', ');
}
