import type { z } from 'zod';
import type { Kek } from '../../crypto/kek.js';
import type { Settings } from '../../config/settings.js';
import type { Backends } from '../../store/open.js';

/** What an action may use. Actions never print; they report through `progress`. */
export interface ActionContext {
  backends: Backends;
  settings: Settings;
  /** The KEK, loaded and checked against this state on first use. */
  kek(): Promise<Kek>;
  runId: number;
  /** The step this action belongs to; for an undo, the step being undone. */
  step: string;
  actor: string;
  /** When the step first started; kept across resumes so waits and watermarks stay the same. */
  stepStartedAt: Date;
  /** Reports progress; with `counts`, the CLI shows a progress bar. */
  progress(message: string, counts?: { done: number; total: number }): void;
}

/** Read-only view for planning: how many sessions and users a step would touch. */
export interface BlastRadius {
  sessions: number;
  users: number;
  note?: string;
}

/**
 * One kind of step. `apply` must be idempotent for a given run and step: applied twice (a
 * resume after a crash between the effect and its record), it ends in the same state as once,
 * and returns the same outputs.
 */
export interface Action<I = any, O extends Record<string, unknown> = Record<string, unknown>> {
  readonly name: string;
  /** Changes state; a runbook step using it must declare its undo. */
  readonly mutates: boolean;
  /** Output names later steps and the undo can reference. */
  readonly outputs: readonly string[];
  /** Reads or writes private key material: the KEK is checked before a run using it starts. */
  readonly needsKek?: boolean;
  readonly input: z.ZodType<I>;
  describe(inputs: I): string;
  apply(ctx: ActionContext, inputs: I): Promise<O>;
  /**
   * Called when a rollback finds this step interrupted and leaves it undone rather than finish
   * it: records that what it had still to do will not happen (a message never sent is marked so).
   */
  abandon?(ctx: ActionContext): Promise<Record<string, unknown>>;
  /** null when the step has no blast radius to show (e.g. a rate limit ends no session at once). */
  impact?(backends: Backends, inputs: Partial<I>): Promise<BlastRadius | null>;
}

export function defineAction<I, O extends Record<string, unknown>>(action: Action<I, O>): Action<I, O> {
  return action;
}
