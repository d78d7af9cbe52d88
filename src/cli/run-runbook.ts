import { AbortedError } from '../errors.js';
import { ACTIONS } from '../runbook/actions/index.js';
import { startRun, type RunResult } from '../runbook/engine.js';
import { loadRunbook, runbookPath } from '../runbook/load.js';
import { resolveParams } from '../runbook/params.js';
import { planRun, type Plan } from '../runbook/plan.js';
import type { CommandContext } from './context.js';
import { renderPlan, renderRunResult } from './render.js';

/**
 * The shape every mutating command shares: read the runbook, resolve its parameters, plan
 * (pure), print the plan, confirm, apply. `--dry-run` stops after the plan.
 */
export async function runRunbook(
  ctx: CommandContext,
  name: string,
  given: Record<string, unknown>,
  /** print: false leaves the result (or the dry run's plan) to the caller, which combines several runs. */
  opts: { dryRun?: boolean; confirmPlan?: boolean; quietPlan?: boolean; print?: boolean } = {},
): Promise<RunResult | Plan> {
  const runbook = loadRunbook(runbookPath(name));
  const params = resolveParams(runbook.doc, given);
  const backends = await ctx.backends();
  const plan = await planRun(backends, runbook, params);
  const printable = { ...plan, params: redactSealed(plan.params) };
  // A missing or wrong KEK is refused before the run exists (and shows up in a dry run); otherwise
  // the run would start, fail at its first key step and keep its lock, though nothing had changed.
  if (plan.steps.some((s) => s.runs !== false && ACTIONS.get(s.action)?.needsKek)) await (opts.dryRun ? ctx.checkKek() : ctx.kek());
  if (opts.dryRun) {
    if (opts.print === false) return { ...plan, params: printable.params };
    ctx.out.result({ dryRun: true, plan: printable }, () => renderPlan(plan, ctx.out.color) + '\n\n' + ctx.out.color.dim('dry run: nothing was changed'));
    return plan;
  }
  const gated = opts.confirmPlan || plan.steps.some((s) => s.confirm && s.runs !== false);
  if (gated) ctx.requireInteractiveOrYes();
  if (!ctx.out.json && !opts.quietPlan) ctx.out.info(renderPlan(plan, ctx.out.color) + '\n');
  if (opts.confirmPlan && !(await ctx.confirm(`Run these ${plan.steps.length} steps?`))) {
    throw new AbortedError('nothing was done: the plan was not confirmed');
  }
  const res = await startRun(await ctx.engineEnv(), runbook, params, ctx.engineIO());
  if (opts.print !== false) ctx.out.result(res, () => renderRunResult(res, ctx.out.color));
  return res;
}

function redactSealed(params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, /secret/i.test(k) ? '[redacted]' : v]));
}
