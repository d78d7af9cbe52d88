import { randomBytes } from 'node:crypto';
import { expect } from '@jest/globals';
import { runOk, type CliResult } from './cli.js';
import { legacyService, seedLedger, withState } from './state.js';

/**
 * A state to notify about: the legacy HS256 key imported, `count` sessions in the ledger (device
 * and place set, every `privilegedEvery`-th user an admin and the next one staff), and, with
 * `rotateTo`, a finished `jwtir rotate --staged` whose end-privileged-sessions step logged out
 * the privileged users.
 */
export async function notifyState(env: Record<string, string>, o: { count: number; privilegedEvery: number; rotateTo?: 'ES256' | 'RS256' | 'EdDSA' }) {
  const secret = randomBytes(32).toString('hex');
  const service = legacyService(secret, 'legacy', o.count, { privilegedEvery: o.privilegedEvery, tokenFor: () => false });
  const sessions = service.sessions.map((s, i) => ({ ...s, device: i % 2 ? 'Firefox on Linux' : 'Safari on iOS', place: i % 3 ? 'Berlin, DE' : null }));
  await runOk(['init', '--json'], { env });
  await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
  await seedLedger(env, sessions);
  const privileged = sessions.filter((s) => s.roles.includes('admin') || s.roles.includes('staff'));
  let rotateRun: number | undefined;
  if (o.rotateTo) {
    const res = await runOk(['rotate', '--staged', '--alg', o.rotateTo, '--grace', '10m', '--publish-wait', '0s', '--yes', '--json'], { env });
    rotateRun = res.json.runId as number;
  }
  return { sessions, privileged, privilegedSubs: [...new Set(privileged.map((s) => s.sub))].sort(), rotateRun };
}

/** Asserts a failure: exit code, stable code in the --json error, and the message and next step on stderr. */
export function expectFailure(res: CliResult, exitCode: number, code: string): { code: string; message: string; hint: string | null } {
  if (res.code !== exitCode || res.json?.error?.code !== code) {
    throw new Error(`expected exit ${exitCode} with ${code}, got exit ${res.code ?? res.signal} with ${res.json?.error?.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  expect(res.stderr).toContain(`jwtir: error ${code}: ${res.json.error.message}`);
  if (res.json.error.hint) expect(res.stderr).toContain(`next: ${res.json.error.hint}`);
  return res.json.error;
}

/** Runs, steps, the audit trail and notifications as stored; equal snapshots mean nothing changed. */
export async function notifySnapshot(env: Record<string, string>) {
  return withState(env, async (b) => ({
    runs: await b.db.query('SELECT id, runbook, status, params, error FROM runs ORDER BY id'),
    steps: await b.db.query('SELECT run_id, step, state, outputs FROM run_steps ORDER BY run_id, idx'),
    audit: await b.db.query('SELECT seq, hash FROM audit ORDER BY seq'),
    sends: await b.db.query('SELECT id, status, attempts FROM notify_sends ORDER BY id'),
    outbox: await b.db.query('SELECT id, sub, kind FROM notify_outbox ORDER BY id'),
    locks: await b.db.query('SELECT name, run_id FROM run_locks ORDER BY name'),
  }));
}

/** The run a command announced on stderr ("run 7: start"), for runs whose process was killed before any JSON. */
export function announcedRunId(res: CliResult): number {
  const m = /run (\d+): start/.exec(res.stderr);
  if (!m) throw new Error(`no run announced\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return Number(m[1]);
}
