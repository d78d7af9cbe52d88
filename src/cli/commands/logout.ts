import { NoMatchError, UsageError } from '../../errors.js';
import { refuseControlChars } from '../../lib/printable.js';
import { assertKnownUsers } from '../../state/users.js';
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
export async function logout(ctx: CommandContext, o: SelectorFlags & { dryRun?: boolean; notify?: boolean; reason?: string }): Promise<void> {
  if (o.reason !== undefined && !o.notify) throw new UsageError('--reason is what --notify tells the users: add --notify, or leave --reason out', { hint: 'nothing was changed' });
  if (o.reason !== undefined) refuseControlChars(o.reason, '--reason');
  const sel = parseSelection(o);
  const { db } = await ctx.backends();
  await assertSelectable(db, sel);
  const mechanism = mechanismOf(sel);
  await runRunbook(
    ctx,
    'logout',
    { ...sel, byKey: mechanism === 'key', byUser: mechanism === 'users', bySession: mechanism === 'sessions', notify: o.notify === true, reason: o.reason },
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
        ? 'no alert since then names a live session of the ledger (alerts on forged tokens without one log nobody out: the guards already deny those tokens); widen --since, or see `jwtir alerts --since 24h`'
        : 'check the selectors against `jwtir sessions list --user <sub>`; nothing was changed',
    });
  }
}
