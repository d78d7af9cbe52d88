/**
 * `jwtir/guard`: the library a service's gateway calls on every request. It imports none of the
 * CLI's packages (commander, inquirer, chalk, ora).
 */
export { createGuard } from './guard.js';
export type { Guard, GuardEvent, GuardOptions } from './guard.js';
export type { IssueRequest, IssuedToken, Session } from './issuer.js';
export type { UserSession } from './sessions.js';
export type { Decision, Reason, RequestContext, Verdict } from './types.js';
export type { Alert } from './telemetry.js';
export { GuardError, NO_ACTIVE_KEY, REFRESH_FINGERPRINT, REFRESH_INVALID, REFRESH_REUSED, SESSION_NOT_FOUND } from './errors.js';
export { cohortOf } from './cohort.js';
export { prometheusMetrics } from './prometheus.js';
export type { PrometheusMetrics } from './prometheus.js';
export { httpDenial, bearerToken, cookieValue } from './http.js';
export type { DenialOptions, HttpDenial } from './http.js';
export { refreshCookie, clearCookie } from './cookies.js';
export { guardMiddleware } from './adapters/express.js';
export { guardHook } from './adapters/fastify.js';
export { recordSessions } from '../state/ledger.js';
export type { LedgerSession } from '../state/ledger.js';
