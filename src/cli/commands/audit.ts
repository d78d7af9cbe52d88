import { AuditTamperedError } from '../../errors.js';
import { verifyAuditChain } from '../../state/audit.js';
import type { CommandContext } from '../context.js';

/** `jwtir audit trail`: verifies the hash chain; exits 0 only when it is intact. */
export async function trail(ctx: CommandContext): Promise<void> {
  const verdict = await verifyAuditChain((await ctx.backends()).db);
  if (!verdict.intact) {
    throw new AuditTamperedError(`the audit trail is broken at row ${verdict.firstBadSeq}: ${verdict.reason}`, {
      hint: 'treat this as an incident: compare with a backup or an exported head hash; rows before it still verify',
      details: verdict,
    });
  }
  ctx.out.result(verdict, () => `${ctx.out.color.green('✔')} audit trail intact: ${verdict.rows} rows, head ${verdict.head}\n  ${ctx.out.color.dim('record the head hash elsewhere: it also proves no rows were cut from the end')}`);
}
