import { RunbookInvalidError } from '../errors.js';
import type { RunbookDoc, StepDoc } from './schema.js';
import { render } from './template.js';

/** The names a `foreach` step's templates may use besides params and steps. */
export const LOOP_NAMES = ['item', 'index', 'previous'] as const;

const LOOP_EXPR = /\$\{\{\s*(item|index|previous)\s*\}\}/g;
const LOOP_WHOLE = /^\$\{\{\s*(item|index|previous)\s*\}\}$/;

/**
 * The steps of a run: a `foreach` step becomes one step per item of its list parameter, with
 * ids `<id>-1`, `<id>-2`, … and the loop names bound. Pure and deterministic in the parameters,
 * so a resume or a rollback (which re-expand from the run's recorded parameters) meets exactly
 * the steps the run started with.
 */
export function expandSteps(doc: RunbookDoc, params: Record<string, unknown>): StepDoc[] {
  const out: StepDoc[] = [];
  for (const step of doc.steps) {
    if (!step.foreach) {
      out.push(step);
      continue;
    }
    const items = render(step.foreach, { params });
    if (items === null) continue;
    if (!Array.isArray(items)) throw new RunbookInvalidError(`step ${step.id}: foreach needs a list, got ${JSON.stringify(items)}`);
    items.forEach((item, i) => {
      const loop: Record<string, unknown> = { item, index: i + 1, previous: i > 0 ? items[i - 1] : null };
      const bind = <T>(value: T): T => bindLoop(value, loop) as T;
      const { foreach: _foreach, ...rest } = step;
      const expanded: StepDoc = { ...rest, id: `${step.id}-${i + 1}`, with: bind(step.with), summary: bind(step.summary) };
      if (step.when) expanded.when = bind(step.when);
      if (step.confirm) expanded.confirm = bind(step.confirm);
      if (step.gate) expanded.gate = bind(step.gate);
      if (step.undo && 'action' in step.undo) expanded.undo = { action: step.undo.action, with: bind(step.undo.with) };
      out.push(expanded);
    });
  }
  return out;
}

/** Replaces only the loop names; every other ${{ … }} stays for the engine to render later. */
function bindLoop(value: unknown, loop: Record<string, unknown>): unknown {
  if (typeof value === 'string') {
    const whole = LOOP_WHOLE.exec(value);
    if (whole) return loop[whole[1]!];
    return value.replace(LOOP_EXPR, (_, name: string) => String(loop[name]));
  }
  if (Array.isArray(value)) return value.map((v) => bindLoop(v, loop));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, bindLoop(v, loop)]));
  return value;
}
