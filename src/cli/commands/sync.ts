import { appendAudit } from '../../state/audit.js';
import { resyncHotStore } from '../../state/hot-sync.js';
import type { CommandContext } from '../context.js';

/** `jwtir sync`: rebuilds the hot copy (Redis, or the hot tables) from the database. */
export async function sync(ctx: CommandContext): Promise<void> {
  const { db, hot, label } = await ctx.backends();
  await appendAudit(db, { actor: ctx.settings.actor, action: 'hot.resync', phase: 'intent', params: { backend: label } });
  const summary = await resyncHotStore(db, hot);
  ctx.out.result(summary, () =>
    `${ctx.out.color.green('✔')} hot copy rebuilt from the database: ${summary.keys} keys, policy v${summary.policyVersion}, ${summary.watermarks} watermarks, ${summary.revocations} revocations, ${summary.devices} devices, ${summary.ledgerSessions} ledger sessions of compromised keys`,
  );
}
