import { UnknownUserError } from '../errors.js';
import type { Queryable } from '../store/db.js';
import { quote } from '../lib/printable.js';
import { looksLikeToken } from '../lib/token-shape.js';

/** The subjects of `subs` jwtir has never seen: no session in the ledger and no device. */
export async function unknownUsers(db: Queryable, subs: string[]): Promise<string[]> {
  if (subs.length === 0) return [];
  const rows = await db.query<{ sub: string }>(`SELECT sub FROM sessions WHERE sub = ANY($1::text[]) UNION SELECT sub FROM devices WHERE sub = ANY($1::text[])`, [subs]);
  const known = new Set(rows.map((r) => r.sub));
  return subs.filter((s) => !known.has(s));
}

/**
 * Refuses subjects jwtir has never seen: a typo would otherwise log out, blacklist or notify
 * nobody, silently. Names up to ten of them; all are in the error's details.
 */
export async function assertKnownUsers(db: Queryable, subs: string[], hint = 'check the spelling (subjects are matched exactly, case matters); nothing was changed'): Promise<void> {
  const unknown = await unknownUsers(db, subs);
  if (unknown.length === 0) return;
  // A token pasted as a subject is not repeated: it is a credential.
  const shown = unknown.slice(0, 10).map((u) => (looksLikeToken(u) ? '(a token, not shown)' : quote(u))).join(', ') + (unknown.length > 10 ? ` and ${unknown.length - 10} more` : '');
  throw new UnknownUserError(`unknown user${unknown.length > 1 ? 's' : ''} ${shown}: no session in the ledger and no device`, { hint, details: { unknown } });
}
