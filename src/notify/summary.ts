import { countAffected } from '../state/affected.js';
import { redact } from '../state/redact.js';
import { getRun, getSteps } from '../state/runs.js';
import type { Queryable } from '../store/db.js';

/**
 * What a run did, for the on-call channel: its status, each step with the sessions and users it
 * ended, and the commands to inspect, resume or undo it. Outputs are shown redacted, short.
 */
export async function runSummary(db: Queryable, runId: number): Promise<string> {
  const run = await getRun(db, runId);
  const steps = await getSteps(db, runId);
  const lines = [
    `*jwtir run ${run.id} (${run.runbook}): ${run.status.replace('_', ' ')}*`,
    `started by ${run.actor} at ${run.startedAt.toISOString()}${run.finishedAt ? `, finished at ${run.finishedAt.toISOString()}` : ''}`,
  ];
  for (const s of steps) {
    const { sessions, users } = await countAffected(db, runId, s.step);
    const ended = sessions > 0 ? `, ended ${sessions.toLocaleString('en-US')} session(s) of ${users.toLocaleString('en-US')} user(s)` : '';
    const outputs = s.outputs && Object.keys(s.outputs).length ? ` ${short(JSON.stringify(redact(s.outputs)))}` : '';
    lines.push(`• ${s.step} (${s.action}): ${s.state.replace('_', ' ')}${ended}${outputs}`);
  }
  if (run.error) lines.push(`error: ${short(run.error, 300)}`);
  lines.push(`details: \`jwtir runs show ${run.id}\``);
  if (['running', 'paused', 'failed'].includes(run.status)) lines.push(`resume: \`jwtir runs resume ${run.id}\``);
  if (run.status !== 'rolled_back') lines.push(`undo: \`jwtir runs rollback ${run.id}\``);
  return lines.join('\n');
}

const short = (text: string, max = 120) => (text.length > max ? text.slice(0, max - 1) + '…' : text);
