import type { Action } from './action.js';

/** The runbook actions of the `blacklist` commands. */
export const BLACKLIST_ACTIONS: readonly Action[] = [];
