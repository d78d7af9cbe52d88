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
    /** Fewer decisions than this in the window: too little traffic to judge the denial rate (the check still runs). */
    minRequests: z.number().int().nonnegative().default(0),
    /** Fewer users turned back than this: too few to judge the re-login rate. */
    minUsers: z.number().int().nonnegative().default(0),
    checkCmd: z.string().min(1).nullable().default(null),
    checkTimeoutMs: z.number().int().positive().default(60_000),
  })
  .strict();
export type GateSpec = z.infer<typeof gateSpec>;

/**
 * Denials that are no harm done by the stage: an attack (forgeries, stolen tokens), an order
 * (revocations, max age, rate limits, a retired key), or a fault of the token itself that any
 * user can produce at will (an expired token replayed, a fingerprint left out).
 */
const NOT_COLLATERAL = new Set([
  'too_old',
  'rate_limited',
  'key_retired',
  'forged_unknown_session',
  'forged_after_retirement',
  'forged_unknown_device',
  'fingerprint_mismatch',
  'fingerprint_missing',
  'expired',
  'revoked_jti',
  'revoked_session',
  'revoked_device',
  'revoked_user',
  'revoked_kid',
  'revoked_cohort',
]);

/** Sums over counter rows; a difference of two readings is the traffic between them. */
export interface TrafficCounts {
  /** Decisions on tokens of the other keys (the new one) in the judged cohorts, harmless denials left out. */
  decisions: number;
  /** Of those, denials: a new issuer whose tokens the guards refuse (audience, lifetime, clock…). */
  denials: number;
  /** Requests turned back by the cutover (for the record; the gate judges users, below). */
  cutoverDenials: number;
}

export interface TrafficRates extends TrafficCounts {
  denialRate: number | null;
}

/**
 * The denial rate of the cut-over cohorts: denials / decisions over tokens of keys other than the
 * one being cut over. Tokens of the leaked key are left out (anyone can mint them, with any
 * claims), and so are denials that are no harm done by the stage (NOT_COLLATERAL).
 */
export function trafficRates(rows: CounterRow[], spec: Pick<GateSpec, 'kid' | 'cohortsBelow'>, baseline?: TrafficCounts): TrafficRates {
  const counts = trafficCounts(rows, spec);
  const decisions = counts.decisions - (baseline?.decisions ?? 0);
  const denials = counts.denials - (baseline?.denials ?? 0);
  const cutoverDenials = counts.cutoverDenials - (baseline?.cutoverDenials ?? 0);
  return { decisions, denials, cutoverDenials, denialRate: decisions > 0 ? denials / decisions : null };
}

export function trafficCounts(rows: CounterRow[], spec: Pick<GateSpec, 'kid' | 'cohortsBelow'>): TrafficCounts {
  let decisions = 0;
  let denials = 0;
  let cutoverDenials = 0;
  for (const r of rows) {
    if (r.cohort < 0 || (spec.cohortsBelow !== null && r.cohort >= spec.cohortsBelow)) continue;
    if (r.kid === spec.kid) {
      if (r.decision === 'deny' && r.reason === 'key_cutover') cutoverDenials += r.n;
      continue;
    }
    if (r.decision === 'deny' && NOT_COLLATERAL.has(r.reason)) continue;
    decisions += r.n;
    if (r.decision === 'deny') denials += r.n;
  }
  return { decisions, denials, cutoverDenials };
}

/**
 * The counts already recorded in the stage's first minute when the stage starts. Counters are
 * kept per minute; subtracting this reading makes the gate judge only what came after the effect.
 */
export async function gateBaseline(hot: HotStore, spec: GateSpec, startedAt: Date): Promise<TrafficCounts> {
  return trafficCounts(await hot.readCounters(Math.floor(startedAt.getTime() / 60_000)), spec);
}

/**
 * The re-login rate, by users: of the users the cutover turned back under the stage's policy
 * version (or a later one), the share who got in on another key under those versions.
 */
export interface Relogin {
  /** The policy version counted from (the stage's own); null when the step published none. */
  fromPolicyVersion: number | null;
  cutUsers: number;
  returnedUsers: number;
  rate: number | null;
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
  relogin: Relogin;
  /** False when there were too few decisions (denial rate) or turned-back users (re-login rate) to judge. */
  ratesJudged: boolean;
  reloginJudged: boolean;
  check: ShellResult | null;
}

export interface GateEnv {
  hot: HotStore;
  /** When the step first started: a resumed gate only waits what is left. */
  startedAt: Date;
  /** The counts before the effect (gateBaseline); null when unknown, and then the whole first minute counts. */
  baseline: TrafficCounts | null;
  /**
   * The policy version the step published (its `version` output). Users are counted under it and
   * later versions only; a step that published none has no re-login rate to judge.
   */
  policyVersion: number | null;
  /** Variables for the check command (JWTIR_RUN_ID, JWTIR_STEP, …). */
  checkEnv: Record<string, string>;
  progress(message: string): void;
}

/** Waits out the gate, then judges it. Pure apart from the wait, the counter read and the check. */
export async function judgeGate(spec: GateSpec, env: GateEnv): Promise<GateVerdict> {
  const until = env.startedAt.getTime() + spec.waitMs;
  if (until > Date.now()) env.progress(`watching for ${formatDuration(until - Date.now())} before judging the health gate`);
  for (let rest = until - Date.now(); rest > 0; rest = until - Date.now()) await sleep(Math.min(rest, 60_000));

  // The service's check first, then the counters: they then cover the whole time the check took too.
  const checkBreaches: string[] = [];
  let check: ShellResult | null = null;
  if (spec.checkCmd) {
    env.progress(`running the health check: ${spec.checkCmd}`);
    check = await runShell(spec.checkCmd, spec.checkTimeoutMs, env.checkEnv);
    if (check.timedOut) checkBreaches.push(`the health check did not finish within ${formatDuration(spec.checkTimeoutMs)}`);
    else if (check.exitCode !== 0) checkBreaches.push(`the health check exited ${check.exitCode}`);
  }
  const fromMinute = Math.floor(env.startedAt.getTime() / 60_000);
  const traffic = trafficRates(await env.hot.readCounters(fromMinute), spec, env.baseline ?? undefined);
  const users = spec.kid && env.policyVersion !== null ? await env.hot.returningUsers({ fromPolicyVersion: env.policyVersion, kid: spec.kid, cohortsBelow: spec.cohortsBelow ?? 100 }) : { cut: 0, back: 0 };
  const relogin: Relogin = { fromPolicyVersion: env.policyVersion, cutUsers: users.cut, returnedUsers: users.back, rate: users.cut > 0 ? users.back / users.cut : null };
  const ratesJudged = traffic.decisions >= spec.minRequests && traffic.decisions > 0;
  const reloginJudged = relogin.cutUsers >= spec.minUsers && relogin.cutUsers > 0;
  const breaches: string[] = [...checkBreaches];
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  if (ratesJudged && spec.maxDenialRate !== null && traffic.denialRate !== null && traffic.denialRate > spec.maxDenialRate) {
    breaches.push(`denial rate ${pct(traffic.denialRate)} > ${pct(spec.maxDenialRate)} (${traffic.denials} of ${traffic.decisions} decisions on other keys' tokens)`);
  }
  if (reloginJudged && spec.minReloginRate !== null && relogin.rate !== null && relogin.rate < spec.minReloginRate) {
    breaches.push(`re-login rate ${pct(relogin.rate)} < ${pct(spec.minReloginRate)} (${relogin.returnedUsers} of ${relogin.cutUsers} users turned back got in again on another key)`);
  }
  return { healthy: breaches.length === 0, breaches, windowFrom: new Date(fromMinute * 60_000).toISOString(), baseline: env.baseline, judgedAt: new Date().toISOString(), traffic, relogin, ratesJudged, reloginJudged, check };
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
