import type { Backends } from '../store/open.js';
import { ACTIONS } from './actions/index.js';
import type { BlastRadius } from './actions/action.js';
import { expandSteps } from './expand.js';
import { describeGate, gateFields } from './gate.js';
import type { Runbook } from './load.js';
import { render, renderForDisplay, UnresolvedReference, type Scope } from './template.js';

export interface PlannedStep {
  id: string;
  action: string;
  summary: string;
  /** What the action will do, with the inputs known now (later outputs shown as <steps.x.outputs.y>). */
  description: string;
  inputs: unknown;
  /** true / false when known now; null when it depends on an earlier step's output. */
  runs: boolean | null;
  confirm: string | null;
  undo: string;
  /** What the step's health gate watches before the run goes on; null without one. */
  gate: string | null;
  impact: BlastRadius | null;
}

export interface Plan {
  runbook: string;
  summary: string;
  lock: string;
  params: Record<string, unknown>;
  steps: PlannedStep[];
}

/**
 * The plan of a run: what each step will do, what undoes it, and its blast radius. Reads the
 * state (for blast radius) but never writes it; `--dry-run` prints exactly this.
 */
export async function planRun(backends: Backends | undefined, runbook: Runbook, params: Record<string, unknown>): Promise<Plan> {
  const scope: Scope = { params, steps: {} };
  const steps: PlannedStep[] = [];
  for (const step of expandSteps(runbook.doc, params)) {
    const action = ACTIONS.get(step.action)!;
    const inputs = renderForDisplay(step.with, scope);
    let runs: boolean | null = true;
    if (step.when) {
      try {
        runs = Boolean(render(step.when, scope));
      } catch (error) {
        if (!(error instanceof UnresolvedReference)) throw error;
        runs = null;
      }
    }
    let description: string;
    try {
      description = action.describe(action.input.parse(render(step.with, scope)));
    } catch {
      description = action.describe(inputs as never);
    }
    const impact = backends && action.impact && runs !== false ? await action.impact(backends, inputs as never) : null;
    steps.push({
      id: step.id,
      action: step.action,
      summary: String(renderForDisplay(step.summary, scope)),
      description,
      inputs,
      runs,
      confirm: step.confirm ? String(renderForDisplay(step.confirm, scope)) : null,
      undo: !step.undo ? 'none' : 'none' in step.undo ? `none (${step.undo.none})` : step.undo.action,
      gate: step.gate ? describeGate(gateFields(renderForDisplay(step.gate, scope) as Record<string, unknown>)) : null,
      impact,
    });
  }
  return { runbook: runbook.doc.name, summary: runbook.doc.summary, lock: runbook.doc.lock, params, steps };
}

