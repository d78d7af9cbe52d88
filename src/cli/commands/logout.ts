import { NoMatchError, UnknownUserError } from '../../errors.js';
import { describeSelection } from '../../runbook/actions/logout.js';
import { getKey } from '../../state/keys.js';
import { countSelection, mechanismOf, namesUsersOnly, type Selection } from '../../state/selection.js';
import type { Queryable } from '../../store/db.js';
import type { CommandContext } from '../context.js';
import { parseSelection, type SelectorFlags } from '../logout-selectors.js';
import { runRunbook } from '../run-runbook.js';

/**
 * `jwtir logout`: read the selectors → check them against the state (unknown user, unknown key,
 * nothing selected) → run runbooks/logout.yaml with the one mechanism that fits. Every check
 * happens before a run exists, so bad input changes nothing.
 */
export async function logout(ctx: CommandContext, o: SelectorFlags & { dryRun?: boolean }): Promise<void> {
  const sel = parseSelection(o);
  const { db } = await ctx.backends();
  await assertSelectable(db, sel);
  const mechanism = mechanismOf(sel);
  await runRunbook(
    ctx,
    'logout',
    { ...sel, byKey: mechanism === 'key', byUser: mechanism === 'users', bySession: mechanism === 'sessions' },
    { dryRun: o.dryRun, confirmPlan: true },
  );
}

async function assertSelectable(db: Queryable, sel: Selection): Promise<void> {
  if (sel.kid) await getKey(db, sel.kid);
  await assertKnownUsers(db, sel.users);
  // A key, cohort or user watermark also ends tokens the ledger never saw (forged ones, tokens
  // from before the ledger was imported): worth setting even when no ledger session matches.
  if (mechanismOf(sel) === 'key' || namesUsersOnly(sel)) return;
  const { sessions } = await countSelection(db, sel);
  if (sessions === 0) {
    throw new NoMatchError(`no live sessions match: ${describeSelection(sel)}`, {
      hint: sel.suspicious
        ? 'no alert since then names a live session; widen --since, or see `jwtir alerts --since 24h`'
        : 'check the selectors against `jwtir sessions list --user <sub>`; nothing was changed',
    });
  }
}

/** Users are known by a session in the ledger or a device in the registry; a typo is neither. */
export async function assertKnownUsers(db: Queryable, users: string[]): Promise<void> {
  if (users.length === 0) return;
  const rows = await db.query<{ sub: string }>(
    `SELECT u AS sub FROM unnest($1::text[]) AS u
     WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.sub = u) AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.sub = u)`,
    [users],
  );
  if (rows.length === 0) return;
  const unknown = rows.map((r) => `"${r.sub}"`).join(', ');
  throw new UnknownUserError(`unknown user${rows.length > 1 ? 's' : ''} ${unknown}: no session in the ledger and no device`, {
    hint: 'check the spelling (subjects are case-sensitive); nothing was changed',
    details: { unknown: rows.map((r) => r.sub) },
  });
}
