/**
 * `jwtir/guard`: the library a service's gateway calls on every request. It imports none of the
 * CLI's packages (commander, inquirer, chalk, ora).
 */
export { createGuard } from './guard.js';
export type { Guard, GuardEvent, GuardOptions, IssueRequest, IssuedToken } from './guard.js';
export type { DenyReason, Verdict } from './decide.js';
export { recordSessions } from '../state/ledger.js';
export type { LedgerSession } from '../state/ledger.js';
