import type { Action } from './action.js';

/** The runbook actions of the `notify` commands. */
export const NOTIFY_ACTIONS: readonly Action[] = [];
