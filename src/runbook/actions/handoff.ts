import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { formatDuration } from '../../config/duration.js';
import { open as unseal } from '../../crypto/envelope.js';
import { InvalidStateError, IssuerHandoffError } from '../../errors.js';
import { currentKid, keyFiles, rememberPrevious, removeKeyDir, switchCurrent, writeKeyDir } from '../../keys/export-dir.js';
import { getKey, syncKeysToHotStore } from '../../state/keys.js';
import { jwksOf } from '../../store/hot/hot-store.js';
import { runShell } from '../shell.js';
import { defineAction, type ActionContext } from './action.js';

/**
 * Handing a key to the service's own issuer (issue 5): export it to a directory the issuer
 * reads, switch the issuer over (`current`, then the operator's restart command), and wait until
 * the guards see tokens signed with it before the run goes on.
 */

/** Writes the key's files for the issuer (PLAYBOOK A3: the service signs with the new key). */
export const keyExport = defineAction({
  name: 'key.export',
  mutates: true,
  needsKek: true,
  outputs: ['kid', 'dir', 'files', 'current'],
  input: z.object({ kid: z.string().min(1), dir: z.string().min(1), makeCurrent: z.boolean() }),
  describe: (i) => `write ${i.kid}'s signing material to ${i.dir}/${i.kid}/ (0600 files, written whole, then renamed)${i.makeCurrent ? ` and point ${i.dir}/current at it` : ''}`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const key = await getKey(db, i.kid);
    if (!key.privateEnc) throw new InvalidStateError(`key ${i.kid} is ${key.state}: its private material is gone, so it cannot be exported`);
    const material = unseal((await ctx.kek()).key, key.privateEnc, i.kid);
    try {
      const files = keyFiles(i.kid, key.alg, material, jwksOf(await syncKeysToHotStore(db, hot)));
      writeKeyDir(i.dir, i.kid, files);
      if (i.makeCurrent) {
        rememberPrevious(i.dir, i.kid);
        switchCurrent(i.dir, i.kid);
      }
      return { kid: i.kid, dir: i.dir, files: Object.keys(files).sort(), current: currentKid(i.dir) };
    } finally {
      material.fill(0);
    }
  },
});

/** Undo of an export: `current` goes back to what it was, and the exported files are overwritten and removed. */
export const keyUnexport = defineAction({
  name: 'key.unexport',
  mutates: true,
  outputs: [],
  input: z.object({ kid: z.string().min(1), dir: z.string().min(1) }),
  describe: (i) => `remove ${i.dir}/${i.kid}/ (and point ${i.dir}/current back where it was)`,
  async apply(_ctx, i) {
    if (currentKid(i.dir) === i.kid) switchCurrent(i.dir, rememberPrevious(i.dir, i.kid));
    removeKeyDir(i.dir, i.kid);
    return {};
  },
});

const handoffInput = z.object({
  kid: z.string().min(1),
  dir: z.string().min(1).nullable(),
  command: z.string().min(1).nullable(),
  timeoutMs: z.number().int().positive(),
});

/**
 * Switches the service's issuer to `kid`: points `current` at it, then runs the operator's
 * command (a deploy or a restart). Idempotent: `current` is set again, and restarting an issuer
 * twice is what restarts are for. The evidence that it took is the next step's job.
 */
export const issuerHandOff = defineAction({
  name: 'issuer.hand-off',
  mutates: true,
  outputs: ['kid', 'previous'],
  input: handoffInput,
  describe: (i) => [i.dir && `point ${i.dir}/current at ${i.kid}`, i.command && `run \`${i.command}\``].filter(Boolean).join(', then ') || 'nothing to hand off',
  async apply(ctx, i) {
    const previous = i.dir ? rememberPrevious(i.dir, i.kid) : null;
    if (i.dir) switchCurrent(i.dir, i.kid);
    if (i.command) await runIssuerCommand(ctx, i.command, i.kid, i.dir, i.timeoutMs);
    return { kid: i.kid, previous };
  },
});

/**
 * Undo of a hand-off: `current` points where it did before (remembered beside the key), and the
 * command runs again to switch the issuer back. Needs only the step's inputs, so a hand-off whose
 * command failed half-way can be undone as it stands.
 */
export const issuerHandBack = defineAction({
  name: 'issuer.hand-back',
  mutates: true,
  outputs: [],
  input: handoffInput,
  describe: (i) => [i.dir && `point ${i.dir}/current back where it was`, i.command && `run \`${i.command}\` again`].filter(Boolean).join(', then ') || 'nothing to hand back',
  async apply(ctx, i) {
    const previous = i.dir ? rememberPrevious(i.dir, i.kid) : null;
    if (i.dir && currentKid(i.dir) === i.kid) switchCurrent(i.dir, previous);
    if (i.command) await runIssuerCommand(ctx, i.command, previous ?? '', i.dir, i.timeoutMs);
    return {};
  },
});

/**
 * Waits until the guards have allowed a token signed by `kid`: the run does not go on without
 * that evidence, since an issuer that still signs with the old key would otherwise be found out
 * only when the old key stops verifying. Changes nothing.
 */
export const issuerAwaitKey = defineAction({
  name: 'issuer.await-key',
  mutates: false,
  outputs: ['evidence', 'seenAfterMs'],
  input: z.object({ kid: z.string().min(1), timeoutMs: z.number().int().positive() }),
  describe: (i) => `wait up to ${formatDuration(i.timeoutMs)} until a guard allows a token signed by ${i.kid}`,
  apply: (ctx, i) => awaitEvidence(ctx, i.kid, i.timeoutMs),
});

async function runIssuerCommand(ctx: ActionContext, command: string, kid: string, dir: string | null, timeoutMs: number): Promise<void> {
  ctx.progress(`running \`${command}\``);
  const res = await runShell(command, timeoutMs, { JWTIR_KID: kid, ...(dir ? { JWTIR_EXPORT_DIR: dir } : {}), JWTIR_RUN_ID: String(ctx.runId) });
  if (res.exitCode !== 0) {
    throw new IssuerHandoffError(`\`${command}\` ${res.timedOut ? `did not finish within ${formatDuration(timeoutMs)}` : `exited ${res.exitCode}`}${res.output ? `: ${res.output.split('\n').slice(-3).join(' / ')}` : ''}`, {
      hint: 'fix the command or the issuer; the step is retried by `jwtir runs resume`',
    });
  }
}

/**
 * Polls the guards' counters (summed across instances) for allowed tokens of `kid` since the step
 * first began. Each attempt waits up to `timeoutMs` of its own, so `runs resume` waits again.
 */
async function awaitEvidence(ctx: ActionContext, kid: string, timeoutMs: number): Promise<{ evidence: number; seenAfterMs: number }> {
  const started = ctx.stepStartedAt.getTime();
  const fromMinute = Math.floor(started / 60_000);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await ctx.backends.hot.readCounters(fromMinute);
    const evidence = rows.filter((r) => r.kid === kid && r.decision === 'allow').reduce((n, r) => n + r.n, 0);
    if (evidence > 0) return { evidence, seenAfterMs: Date.now() - started };
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new IssuerHandoffError(`no guard has allowed a token signed by ${kid} within ${formatDuration(timeoutMs)}: the issuer may still sign with the old key`, {
        hint: `check the issuer (does it read the new key? was it restarted?) and \`jwtir counters --kid ${kid}\`; then wait again with \`jwtir runs resume ${ctx.runId}\`, or switch back with \`jwtir runs rollback ${ctx.runId}\``,
      });
    }
    ctx.progress(`waiting for the first token signed by ${kid} at a guard (${formatDuration(left)} left; guards report every few seconds)`);
    await sleep(Math.min(2000, left));
  }
}

export const HANDOFF_ACTIONS = [keyExport, keyUnexport, issuerHandOff, issuerHandBack, issuerAwaitKey];
