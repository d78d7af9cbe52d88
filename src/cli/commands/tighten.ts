import { parseDuration } from '../../config/duration.js';
import { InvalidStateError, UsageError } from '../../errors.js';
import type { RunResult } from '../../runbook/engine.js';
import type { Plan } from '../../runbook/plan.js';
import { listKeys, type KeyRecord } from '../../state/keys.js';
import { currentPolicy } from '../../state/policy.js';
import type { CommandContext } from '../context.js';
import { renderPlan, renderRunResult } from '../render.js';
import { runRunbook } from '../run-runbook.js';

export interface TightenOptions {
  kid?: string;
  maxAge?: string;
  rateLimit?: string;
  stepUp?: string;
  blockCritical?: string;
  cutover?: string;
  every?: string;
  checkCmd?: string;
  checkTimeout?: string;
  maxDenialRate?: string;
  minReloginRate?: string;
  minRequests?: string;
  minUsers?: string;
  dryRun?: boolean;
}

/** What the flags ask for, parsed and checked before anything is opened. */
interface TightenRequest {
  policy: Record<string, unknown> | undefined;
  cutover: Record<string, unknown> | undefined;
  needsKid: boolean;
}

/**
 * `jwtir tighten`: policy tightening for an old key's tokens and risky devices (tighten.yaml),
 * and the cohort-by-cohort cutover of the key (cutover.yaml, a run of its own under its own lock,
 * so a cutover that is watched for an hour does not keep anyone from changing a rate limit).
 */
export async function tighten(ctx: CommandContext, o: TightenOptions): Promise<void> {
  const request = parseRequest(o);
  const db = (await ctx.backends()).db;
  const kid = request.needsKid ? chooseKid(await listKeys(db), o.kid, request.cutover !== undefined) : null;
  // With a cutover in progress its lock is the thing to report (starting the run says so, with the run to resume).
  const cutoverRunning = request.cutover ? (await db.query(`SELECT 1 FROM run_locks WHERE name = 'cutover'`)).length > 0 : false;
  if (request.cutover && kid && !cutoverRunning) {
    const now = (await currentPolicy(db)).doc.kids[kid]?.cutoverPercent ?? 0;
    const first = Number((request.cutover.schedule as string[])[0]);
    if (first <= now) {
      throw new UsageError(`${kid} is already switched off for ${now} % of users: a schedule starting at ${first} % would switch it back on for some of them`, {
        hint: now >= 100 ? 'there is nothing left to cut over' : `start the schedule above ${now} %, for example --cutover ${[...new Set([Math.min(100, now + 10), 100])].join('%,')}%`,
      });
    }
  }
  const results: Array<RunResult | Plan> = [];
  if (request.policy) results.push(await runRunbook(ctx, 'tighten', { ...request.policy, kid }, { dryRun: o.dryRun, confirmPlan: true, print: false }));
  if (request.cutover) results.push(await runRunbook(ctx, 'cutover', { ...request.cutover, kid }, { dryRun: o.dryRun, confirmPlan: true, print: false }));
  const c = ctx.out.color;
  if (o.dryRun) {
    const plans = results as Plan[];
    ctx.out.result({ dryRun: true, plans }, () => plans.map((p) => renderPlan(p, c)).join('\n\n') + '\n\n' + c.dim('dry run: nothing was changed'));
  } else {
    const runs = results as RunResult[];
    ctx.out.result({ runs }, () => runs.map((r) => renderRunResult(r, c)).join('\n'));
  }
}

function parseRequest(o: TightenOptions): TightenRequest {
  const problems: string[] = [];
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };
  const policy: Record<string, unknown> = {};
  if (o.maxAge !== undefined) {
    const ms = attempt(() => parseDuration(o.maxAge!, '--max-age'));
    if (ms !== undefined && ms < 1000) problems.push(`--max-age "${o.maxAge}" is shorter than a second: every token would be refused`);
    else if (ms !== undefined) policy.maxAgeSec = Math.floor(ms / 1000);
  }
  if (o.rateLimit !== undefined) {
    const limit = attempt(() => parseRate(o.rateLimit!));
    if (limit) Object.assign(policy, { rateLimitOps: limit.ops, rateLimitWindowSec: limit.windowSec });
  }
  for (const rule of attempt(() => parseChoices(o.stepUp, '--step-up', ['new-device', 'bad-reputation'])) ?? []) {
    policy[rule === 'new-device' ? 'stepUpNewDevice' : 'stepUpBadReputation'] = true;
  }
  for (const _rule of attempt(() => parseChoices(o.blockCritical, '--block-critical', ['dirty-device'])) ?? []) policy.blockCriticalDirtyDevice = true;

  let cutover: Record<string, unknown> | undefined;
  if (o.cutover !== undefined) {
    cutover = {
      schedule: attempt(() => parseSchedule(o.cutover!))?.map(String),
      every: o.every ?? '15m',
      checkCmd: o.checkCmd,
      checkTimeout: o.checkTimeout,
      maxDenialRate: attempt(() => parseShare(o.maxDenialRate, '--max-denial-rate')),
      minReloginRate: attempt(() => parseShare(o.minReloginRate, '--min-relogin-rate')),
      minRequests: o.minRequests,
      minUsers: o.minUsers,
    };
    attempt(() => parseDuration(cutover!.every as string, '--every'));
    if (o.checkTimeout !== undefined) {
      const ms = attempt(() => parseDuration(o.checkTimeout!, '--check-timeout'));
      if (ms !== undefined && ms < 1000) problems.push(`--check-timeout "${o.checkTimeout}" is shorter than a second: every check would time out`);
    }
    for (const [flag, value] of [['--min-requests', o.minRequests], ['--min-users', o.minUsers]] as const) {
      if (value !== undefined && !/^\d+$/.test(value)) problems.push(`${flag} must be a whole number, got "${value}"`);
    }
  } else {
    for (const [flag, value] of [['--every', o.every], ['--check-cmd', o.checkCmd], ['--check-timeout', o.checkTimeout], ['--max-denial-rate', o.maxDenialRate], ['--min-relogin-rate', o.minReloginRate], ['--min-requests', o.minRequests], ['--min-users', o.minUsers]] as const) {
      if (value !== undefined) problems.push(`${flag} belongs to a cutover: add --cutover <schedule>`);
    }
  }
  const hasPolicy = Object.keys(policy).length > 0;
  if (!hasPolicy && !cutover && problems.length === 0) {
    problems.push('nothing to tighten: give at least one of --max-age, --rate-limit, --step-up, --block-critical, --cutover');
  }
  if (problems.length) {
    throw new UsageError(problems.length === 1 ? problems[0]! : `${problems.length} problems with the flags:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      hint: 'nothing was changed; see `jwtir tighten --help` for examples',
    });
  }
  return { policy: hasPolicy ? policy : undefined, cutover, needsKid: cutover !== undefined || 'maxAgeSec' in policy || 'rateLimitOps' in policy };
}

/** `5/1m`, `100/1h`, `5/m`: at most n operations per token per window. */
export function parseRate(text: string): { ops: number; windowSec: number } {
  const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(text);
  if (!m) throw new UsageError(`--rate-limit "${text}" is not <operations>/<window>, like 5/1m or 100/1h`);
  const ops = Number(m[1]);
  if (ops < 1 || !Number.isSafeInteger(ops)) throw new UsageError(`--rate-limit "${text}": the number of operations must be at least 1 (0 would refuse every request)`);
  const window = /^[a-z]+$/.test(m[2]!) ? `1${m[2]}` : m[2]!;
  const ms = parseDuration(window, '--rate-limit window');
  if (ms < 1000) throw new UsageError(`--rate-limit "${text}": the window must be at least 1s`);
  return { ops, windowSec: Math.round(ms / 1000) };
}

/** `1%,10%,50%,100%` (or without the %): strictly rising whole percentages that end at 100. */
export function parseSchedule(text: string): number[] {
  const items = text.split(',').map((s) => s.trim());
  const stages = items.map((s) => {
    const m = /^(\d{1,3})%?$/.exec(s);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 100) {
      throw new UsageError(`--cutover "${text}": "${s}" is not a whole percentage from 1% to 100% (users are split into 100 cohorts)`);
    }
    return Number(m[1]);
  });
  for (let i = 1; i < stages.length; i++) {
    if (stages[i]! <= stages[i - 1]!) throw new UsageError(`--cutover "${text}": stages must rise (${stages[i - 1]}% then ${stages[i]}%)`);
  }
  if (stages.at(-1) !== 100) {
    throw new UsageError(`--cutover "${text}" ends at ${stages.at(-1)}%, not 100%: the key would keep verifying for the other users`, {
      hint: `end the schedule at 100%, for example --cutover ${[...stages.filter((s) => s < 100), 100].join('%,')}%`,
    });
  }
  return stages;
}

function parseShare(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  const value = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
  if (!(value >= 0 && value <= 1)) throw new UsageError(`${flag} "${text}" is not a share from 0 to 1 (or 0% to 100%)`);
  return value;
}

function parseChoices(text: string | undefined, flag: string, allowed: string[]): string[] {
  if (text === undefined) return [];
  const items = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = items.filter((s) => !allowed.includes(s));
  if (bad.length || items.length === 0) throw new UsageError(`${flag} "${text}": ${bad.length ? `unknown ${bad.join(', ')}` : 'nothing given'}; choose from ${allowed.join(', ')}`);
  return items;
}

/**
 * The key to tighten: --kid, else the one flagged compromised that still verifies, else the only
 * retiring one. Cutting over the key that signs new tokens would lock out everyone who logs in again.
 */
function chooseKid(keys: KeyRecord[], given: string | undefined, cutover: boolean): string {
  const verifying = keys.filter((k) => k.state === 'staged' || k.state === 'active' || k.state === 'retiring');
  let key: KeyRecord | undefined;
  if (given !== undefined) {
    key = keys.find((k) => k.kid === given);
    if (!key) throw new UsageError(`there is no key "${given}"`, { hint: `keys: ${keys.map((k) => k.kid).join(', ') || 'none'} (see \`jwtir keys list\`)` });
  } else {
    const candidates = verifying.filter((k) => k.compromised);
    const retiring = verifying.filter((k) => k.state === 'retiring');
    const pick = candidates.length ? candidates : retiring;
    if (pick.length !== 1) {
      throw new UsageError(pick.length ? `several keys could be meant (${pick.map((k) => k.kid).join(', ')})` : 'no key is flagged compromised or retiring, so there is no old key to tighten', {
        hint: 'name it with --kid <kid> (see `jwtir keys list`)',
      });
    }
    key = pick[0]!;
  }
  if (!verifying.includes(key)) throw new InvalidStateError(`key ${key.kid} is ${key.state}: it verifies nothing, so there is nothing to tighten`);
  if (cutover && key.state === 'active') {
    throw new InvalidStateError(`key ${key.kid} is the active signing key: cutting it over would refuse the very tokens users get when they log in again`, {
      hint: 'rotate first (`jwtir rotate --staged --compromised`), then cut the old key over',
    });
  }
  return key.kid;
}
