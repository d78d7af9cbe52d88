import { describeKey, listKeys } from '../../state/keys.js';
import { currentPolicy } from '../../state/policy.js';
import { activeRuns } from '../../state/runs.js';
import type { CommandContext } from '../context.js';
import { renderPolicy, table } from '../render.js';

/** `jwtir status`: keys, the policy version, and any run in progress, at a glance. */
export async function status(ctx: CommandContext): Promise<void> {
  const backends = await ctx.backends();
  const keys = (await listKeys(backends.db)).map(describeKey).map(({ publicJwk: _, ...k }) => k);
  const policy = await currentPolicy(backends.db);
  const runs = (await activeRuns(backends.db)).map((r) => ({ id: r.id, runbook: r.runbook, status: r.status, lock: r.lock, actor: r.actor, error: r.error }));
  ctx.out.result({ backend: backends.label, database: backends.db.description, keys, policy, runs }, () => {
    const c = ctx.out.color;
    const lines = [`${c.bold('backend')}  ${backends.label}: ${backends.db.description}`, `${c.bold('policy')}   version ${policy.version}${policy.version === 0 ? ' (defaults)' : ''}`, ...renderPolicy(policy.doc).map((l) => `         ${l}`), '', c.bold('keys')];
    lines.push(keys.length ? table(['KID', 'ALG', 'STATE', 'VERIFY UNTIL', 'COMPROMISED'], keys.map((k) => [k.kid, k.alg, k.state, k.verifyUntil, k.compromised ? 'yes' : null])) : '  none');
    lines.push('', c.bold('runs in progress'));
    if (runs.length === 0) lines.push('  none');
    for (const r of runs) lines.push(`  run ${r.id} ${r.runbook}: ${r.status}${r.lock ? ` (holds lock ${r.lock})` : ''}${r.error ? c.dim(` — ${r.error}`) : ''}\n    next: \`jwtir runs resume ${r.id}\` or \`jwtir runs rollback ${r.id}\``);
    return lines.join('\n');
  });
}
