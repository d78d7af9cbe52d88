import type { ChalkInstance } from 'chalk';
import type { Plan } from '../runbook/plan.js';
import type { RunResult } from '../runbook/engine.js';
import type { PolicyDoc } from '../state/policy.js';
import { formatDuration } from '../config/duration.js';

/** Human renderings shared by several commands. */
export function renderPlan(plan: Plan, c: ChalkInstance): string {
  const lines = [c.bold(`Plan: ${plan.runbook}`) + c.dim(` (lock: ${plan.lock})`), c.dim(plan.summary), ''];
  for (const [i, step] of plan.steps.entries()) {
    const when = step.runs === false ? c.dim(' (skipped: condition is false)') : step.runs === null ? c.dim(' (if its condition holds)') : '';
    lines.push(`${String(i + 1).padStart(2)}. ${c.cyan(step.id)}${when}`);
    lines.push(`    ${step.summary}`);
    lines.push(c.dim(`    does: ${step.description}`));
    if (step.impact) {
      const n = (x: number) => x.toLocaleString('en-US');
      lines.push(`    ${c.yellow('blast radius')}: ${n(step.impact.sessions)} sessions, ${n(step.impact.users)} users${step.impact.note ? c.dim(` (${step.impact.note})`) : ''}`);
    }
    if (step.confirm) lines.push(`    ${c.magenta('asks')}: ${step.confirm}`);
    if (step.gate) lines.push(`    ${c.magenta('health gate')}: ${step.gate}`);
    lines.push(c.dim(`    undo: ${step.undo}`));
  }
  return lines.join('\n');
}

export function renderRunResult(res: RunResult, c: ChalkInstance): string {
  const color = res.status === 'done' || res.status === 'rolled_back' ? c.green : c.red;
  const lines = [`${c.bold(`run ${res.runId}`)} (${res.runbook}): ${color(res.status.replace('_', ' '))}`];
  for (const s of res.steps) {
    const mark = s.state === 'done' ? c.green('✔') : s.state === 'skipped' ? c.dim('-') : s.state === 'rolled_back' ? c.yellow('↶') : c.red('•');
    const outputs = s.outputs && Object.keys(s.outputs).length ? c.dim(` ${JSON.stringify(s.outputs)}`) : '';
    lines.push(`  ${mark} ${s.step} ${c.dim(s.state)}${outputs}`);
  }
  return lines.join('\n');
}

/** A plain aligned table. */
export function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [headers, ...rows.map((r) => r.map((v) => (v === null ? '-' : String(v))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** The incident policy in a few lines: what is tightened, per key, and the risk rules. */
export function renderPolicy(doc: PolicyDoc): string[] {
  const lines: string[] = [];
  for (const [kid, k] of Object.entries(doc.kids)) {
    const parts: string[] = [];
    if (k.cutoverPercent) parts.push(`switched off for ${k.cutoverPercent} % of users`);
    if (k.maxAgeSec) parts.push(`max age ${formatDuration(k.maxAgeSec * 1000)}`);
    if (k.rateLimit) parts.push(`${k.rateLimit.ops} operations per token per ${formatDuration(k.rateLimit.windowSec * 1000)}`);
    if (parts.length) lines.push(`${kid}: ${parts.join(', ')}`);
  }
  const stepUp = [doc.stepUp.newDevice && 'new devices', doc.stepUp.badReputation && 'bad-reputation devices'].filter(Boolean);
  if (stepUp.length) lines.push(`step-up for ${stepUp.join(' and ')}`);
  if (doc.blockCritical.dirtyDevice) lines.push('critical operations held for clean accounts on dirty devices');
  lines.push(`fail mode ${doc.failMode}, clock tolerance ${doc.clockToleranceSec} s`);
  return lines;
}
