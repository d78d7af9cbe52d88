import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { formatDuration } from '../config/duration.js';
import type { CounterRow, HotStore } from '../store/hot/hot-store.js';
import { runShell, type ShellResult } from './shell.js';

/**
 * A health gate (DESIGN "Runbooks"): after a step's effect, watch for a while, then judge the
 * guards' counters and the service's own check. A breach makes the engine undo the step and stop.
 */
export const gateSpec = z
  .object({
    waitMs: z.number().int().nonnegative(),
    /** The key being switched off: its key_cutover denials are what the step means to cause. */
    kid: z.string().min(1).nullable().default(null),
    /** Judge only the cohorts below this percentage (those the step has cut over); null: all. */
    cohortsBelow: z.coerce.number().int().min(1).max(100).nullable().default(null),
    maxDenialRate: z.number().min(0).max(1).nullable().default(null),
    minReloginRate: z.number().min(0).max(1).nullable().default(null),
    /** Fewer decisions than this in the window: too little traffic to judge the rates (the check still runs). */
    minRequests: z.number().int().nonnegative().default(0),
    checkCmd: z.string().min(1).nullable().default(null),
    checkTimeoutMs: z.number().int().positive().default(60_000),
  })
  .strict();
export type GateSpec = z.infer<typeof gateSpec>;

/**
 * Denials that are the attacker's, or what an operator ordered (revocations, max age, rate
 * limits), not harm the stage does to legitimate users: counting them would let a flood of forged
 * tokens, or an earlier tightening, roll the cutover back.
 */
const NOT_COLLATERAL = new Set([
  'too_old',
  'rate_limited',
  'key_retired',
  'forged_unknown_session',
  'forged_after_retirement',
  'forged_unknown_device',
  'fingerprint_mismatch',
  'revoked_jti',
  'revoked_session',
  'revoked_device',
  'revoked_user',
  'revoked_kid',
  'revoked_cohort',
]);

/** Sums over counter rows; a difference of two readings is the traffic between them. */
export interface TrafficCounts {
  /** Decisions in the judged cohorts, minus the attack and operator-ordered denials. */
  decisions: number;
  denials: number;
  /** Of those, key_cutover denials of the gate's key (expected right after a stage). */
  cutoverDenials: number;
  /** Requests of those users already allowed on another key (they logged in again). */
  allowedOnOtherKeys: number;
}

export interface TrafficRates extends TrafficCounts {
  denialRate: number | null;
  reloginRate: number | null;
}

/**
 * The denial rate and the re-login rate in the cut-over cohorts, from counter rows.
 * - denialRate = denials / decisions (attack and revocation denials excluded from both);
 * - reloginRate = allowed on another key / (that + key_cutover denials of the gate's key): the
 *   share of the cut-over users' requests that already carry a token of the new key.
 */
export function trafficRates(rows: CounterRow[], spec: Pick<GateSpec, 'kid' | 'cohortsBelow'>, baseline?: TrafficCounts): TrafficRates {
  const counts = trafficCounts(rows, spec);
  const decisions = counts.decisions - (baseline?.decisions ?? 0);
  const denials = counts.denials - (baseline?.denials ?? 0);
  const cutoverDenials = counts.cutoverDenials - (baseline?.cutoverDenials ?? 0);
  const allowedOnOtherKeys = counts.allowedOnOtherKeys - (baseline?.allowedOnOtherKeys ?? 0);
  const relogin = allowedOnOtherKeys + cutoverDenials;
  return {
    decisions,
    denials,
    cutoverDenials,
    allowedOnOtherKeys,
    denialRate: decisions > 0 ? denials / decisions : null,
    reloginRate: spec.kid !== null && relogin > 0 ? allowedOnOtherKeys / relogin : null,
  };
}

export function trafficCounts(rows: CounterRow[], spec: Pick<GateSpec, 'kid' | 'cohortsBelow'>): TrafficCounts {
  let decisions = 0;
  let denials = 0;
  let cutoverDenials = 0;
  let allowedOnOtherKeys = 0;
  for (const r of rows) {
    if (r.cohort < 0 || (spec.cohortsBelow !== null && r.cohort >= spec.cohortsBelow)) continue;
    if (r.decision === 'deny' && NOT_COLLATERAL.has(r.reason)) continue;
    decisions += r.n;
    if (r.decision === 'deny') denials += r.n;
    if (r.decision === 'deny' && r.reason === 'key_cutover' && r.kid === spec.kid) cutoverDenials += r.n;
    if (r.decision === 'allow' && r.kid !== spec.kid) allowedOnOtherKeys += r.n;
  }
  return { decisions, denials, cutoverDenials, allowedOnOtherKeys };
}

/**
 * The counts already recorded in the stage's first minute when the stage starts. Counters are
 * kept per minute; subtracting this reading makes the gate judge only what came after the effect.
 */
export async function gateBaseline(hot: HotStore, spec: GateSpec, startedAt: Date): Promise<TrafficCounts> {
  return trafficCounts(await hot.readCounters(Math.floor(startedAt.getTime() / 60_000)), spec);
}

export interface GateVerdict {
  healthy: boolean;
  /** Why it breached (empty when healthy). */
  breaches: string[];
  /** Counted from this minute on (counters are kept per minute), less the baseline read before the effect. */
  windowFrom: string;
  baseline: TrafficCounts | null;
  judgedAt: string;
  traffic: TrafficRates;
  /** False when there was too little traffic to judge the rates. */
  ratesJudged: boolean;
  check: ShellResult | null;
}

export interface GateEnv {
  hot: HotStore;
  /** When the step first started: a resumed gate only waits what is left. */
  startedAt: Date;
  /** The counts before the effect (gateBaseline); null when unknown, and then the whole first minute counts. */
  baseline: TrafficCounts | null;
  /** Variables for the check command (JWTIR_RUN_ID, JWTIR_STEP, …). */
  checkEnv: Record<string, string>;
  progress(message: string): void;
}

/** Waits out the gate, then judges it. Pure apart from the wait, the counter read and the check. */
export async function judgeGate(spec: GateSpec, env: GateEnv): Promise<GateVerdict> {
  const until = env.startedAt.getTime() + spec.waitMs;
  if (until > Date.now()) env.progress(`watching for ${formatDuration(until - Date.now())} before judging the health gate`);
  for (let rest = until - Date.now(); rest > 0; rest = until - Date.now()) await sleep(Math.min(rest, 60_000));

  const fromMinute = Math.floor(env.startedAt.getTime() / 60_000);
  const traffic = trafficRates(await env.hot.readCounters(fromMinute), spec, env.baseline ?? undefined);
  const ratesJudged = traffic.decisions >= spec.minRequests && traffic.decisions > 0;
  const breaches: string[] = [];
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  if (ratesJudged && spec.maxDenialRate !== null && traffic.denialRate !== null && traffic.denialRate > spec.maxDenialRate) {
    breaches.push(`denial rate ${pct(traffic.denialRate)} > ${pct(spec.maxDenialRate)} (${traffic.denials} of ${traffic.decisions} decisions)`);
  }
  if (ratesJudged && spec.minReloginRate !== null && traffic.reloginRate !== null && traffic.reloginRate < spec.minReloginRate) {
    breaches.push(`re-login rate ${pct(traffic.reloginRate)} < ${pct(spec.minReloginRate)} (${traffic.allowedOnOtherKeys} allowed on a new key, ${traffic.cutoverDenials} cut-over denials)`);
  }
  let check: ShellResult | null = null;
  if (spec.checkCmd) {
    env.progress(`running the health check: ${spec.checkCmd}`);
    check = await runShell(spec.checkCmd, spec.checkTimeoutMs, env.checkEnv);
    if (check.timedOut) breaches.push(`the health check did not finish within ${formatDuration(spec.checkTimeoutMs)}`);
    else if (check.exitCode !== 0) breaches.push(`the health check exited ${check.exitCode}`);
  }
  return { healthy: breaches.length === 0, breaches, windowFrom: new Date(fromMinute * 60_000).toISOString(), baseline: env.baseline, judgedAt: new Date().toISOString(), traffic, ratesJudged, check };
}

/** A runbook's `gate:` block (wait, checkTimeout as durations) in the names of GateSpec; unset values dropped. */
export function gateFields(gate: Record<string, unknown>): Record<string, unknown> {
  const { wait, checkTimeout, ...rest } = gate;
  return Object.fromEntries(Object.entries({ ...rest, waitMs: wait, checkTimeoutMs: checkTimeout }).filter(([, v]) => v !== undefined && v !== null));
}

/** One line for the plan: what the gate watches. */
export function describeGate(spec: Partial<Record<keyof GateSpec, unknown>>): string {
  const parts = [`watch ${typeof spec.waitMs === 'number' ? formatDuration(spec.waitMs) : String(spec.waitMs)}`];
  const pct = (x: unknown) => (typeof x === 'number' ? `${x * 100} %` : String(x));
  if (spec.cohortsBelow !== undefined && spec.cohortsBelow !== null) parts.push(`in cohorts below ${String(spec.cohortsBelow)}`);
  if (spec.maxDenialRate !== undefined && spec.maxDenialRate !== null) parts.push(`denial rate ≤ ${pct(spec.maxDenialRate)}`);
  if (spec.minReloginRate !== undefined && spec.minReloginRate !== null) parts.push(`re-login rate ≥ ${pct(spec.minReloginRate)}`);
  if (spec.checkCmd) parts.push(`check \`${String(spec.checkCmd)}\` exits 0`);
  return `${parts.join(', ')}; on a breach the step is undone and the run stops`;
}
