/**
 * One errors module. Every failure a user can cause or meet has a stable `code`, an exit code,
 * and where possible a `hint`: the next thing to do. The CLI boundary (src/cli/main.ts) is the
 * only place that turns these into output and a process exit code.
 */

/** Documented exit codes (README "Exit codes"). */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  conflict: 3,
  unavailable: 4,
  refused: 5,
  integrity: 6,
  runFailed: 7,
  aborted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class JwtirError extends Error {
  readonly code: string = 'ERR_JWTIR';
  readonly exitCode: ExitCodeValue = ExitCode.internal;
  readonly hint: string | undefined;
  readonly details: unknown;

  constructor(message: string, opts: { hint?: string; cause?: unknown; details?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

/** A flag, argument, file or value the user gave is wrong. Nothing was changed. */
export class UsageError extends JwtirError {
  override readonly code: string = 'ERR_USAGE';
  override readonly exitCode = ExitCode.usage;
}
export class InvalidDurationError extends UsageError {
  override readonly code = 'ERR_DURATION_INVALID';
}
export class RunbookInvalidError extends UsageError {
  override readonly code = 'ERR_RUNBOOK_INVALID';
}
export class ConfigInvalidError extends UsageError {
  override readonly code = 'ERR_CONFIG_INVALID';
}
export class NotFoundError extends UsageError {
  override readonly code: string = 'ERR_NOT_FOUND';
}
export class UnknownKidError extends NotFoundError {
  override readonly code = 'ERR_KID_UNKNOWN';
}
export class UnknownRunError extends NotFoundError {
  override readonly code = 'ERR_RUN_UNKNOWN';
}
/** Confirmation needed but there is no terminal to ask on and --yes was not given. */
export class ConfirmationRequiredError extends UsageError {
  override readonly code = 'ERR_CONFIRMATION_REQUIRED';
}

/** The current state forbids the action (lock held, run in progress, runbook changed). */
export class ConflictError extends JwtirError {
  override readonly code: string = 'ERR_CONFLICT';
  override readonly exitCode = ExitCode.conflict;
}
export class LockHeldError extends ConflictError {
  override readonly code = 'ERR_LOCK_HELD';
}
export class RunbookChangedError extends ConflictError {
  override readonly code = 'ERR_RUNBOOK_CHANGED';
}
export class InvalidStateError extends ConflictError {
  override readonly code = 'ERR_INVALID_STATE';
}

/** A backend (Postgres, Redis, the embedded store) cannot be reached or opened. */
export class BackendUnavailableError extends JwtirError {
  override readonly code = 'ERR_BACKEND_UNAVAILABLE';
  override readonly exitCode = ExitCode.unavailable;
}

/** A security rule refused the action: weak secret, missing or wrong KEK, unsafe file modes. */
export class RefusedError extends JwtirError {
  override readonly code: string = 'ERR_REFUSED';
  override readonly exitCode = ExitCode.refused;
}
export class KekMissingError extends RefusedError {
  override readonly code = 'ERR_KEK_MISSING';
}
export class KekMismatchError extends RefusedError {
  override readonly code = 'ERR_KEK_MISMATCH';
}
export class WeakSecretError extends RefusedError {
  override readonly code = 'ERR_SECRET_WEAK';
}

/** The audit trail could not be written (so nothing happened) or failed verification. */
export class AuditUnwritableError extends JwtirError {
  override readonly code = 'ERR_AUDIT_UNWRITABLE';
  override readonly exitCode = ExitCode.integrity;
}
export class AuditTamperedError extends JwtirError {
  override readonly code = 'ERR_AUDIT_TAMPERED';
  override readonly exitCode = ExitCode.integrity;
}

/** A runbook step failed; the run is stopped and can be resumed or rolled back. */
export class RunFailedError extends JwtirError {
  override readonly code = 'ERR_RUN_FAILED';
  override readonly exitCode = ExitCode.runFailed;
}

/** The operator declined a confirmation gate. */
export class AbortedError extends JwtirError {
  override readonly code = 'ERR_ABORTED';
  override readonly exitCode = ExitCode.aborted;
}

/** The service's issuer did not take the new key: its command failed, or no guard saw a token signed with it in time. */
export class IssuerHandoffError extends JwtirError {
  override readonly code = 'ERR_ISSUER_HANDOFF';
  override readonly exitCode = ExitCode.runFailed;
}

/** A step's health gate breached: the step was undone and the run stopped (resume retries it). */
export class HealthGateBreachedError extends JwtirError {
  override readonly code = 'ERR_HEALTH_GATE_BREACHED';
  override readonly exitCode = ExitCode.runFailed;
}

// --- blacklist (issue 4) ---

/** A findings file (--from-file) is missing, too large, empty, or has bad entries (each listed with its line). */
export class FindingsInvalidError extends UsageError {
  override readonly code = 'ERR_FINDINGS_INVALID';
}
/** A jti, session id, subject or device fingerprint given on the command line is malformed. */
export class EntryInvalidError extends UsageError {
  override readonly code = 'ERR_ENTRY_INVALID';
}
/** A user the session ledger and the device registry have never seen (a typo, or a forged subject); blacklist, logout and notify. */
export class UnknownUserError extends NotFoundError {
  override readonly code = 'ERR_USER_UNKNOWN';
}
/** `blacklist remove` of something that is not blacklisted. */
export class NotBlacklistedError extends NotFoundError {
  override readonly code = 'ERR_NOT_BLACKLISTED';
}

// --- logout and sessions (issue 4) ---
/** A session id that is not in the session ledger. */
export class UnknownSessionError extends NotFoundError {
  override readonly code = 'ERR_SESSION_UNKNOWN';
}
/** A logout selector is malformed (a cohort out of 0..99, a time in the future, …), or none was given. */
export class InvalidSelectorError extends UsageError {
  override readonly code = 'ERR_SELECTOR_INVALID';
}
/** The selectors are well-formed but select no live session: there is nothing to log out. */
export class NoMatchError extends UsageError {
  override readonly code = 'ERR_NO_MATCH';
}

// --- notify (issue 4): notifications to users, on-call and Shared Signals receivers ---

/** A notification channel the command needs is not configured (no on-call webhook, no SET receivers or issuer). */
export class NotifyNotConfiguredError extends UsageError {
  override readonly code = 'ERR_NOTIFY_NOT_CONFIGURED';
}
/**
 * SETs would be signed with a shared secret: any holder of that secret (here, the attacker too)
 * could forge them, so they prove nothing to a receiver. A safety refusal, like a weak secret.
 */
export class SetKeyRefusedError extends RefusedError {
  override readonly code = 'ERR_SET_KEY_SYMMETRIC';
}
/** Messages stayed undelivered after their retries and deadline: recorded as failed, and the step stops. */
export class NotifySendFailedError extends JwtirError {
  override readonly code = 'ERR_NOTIFY_SEND_FAILED';
  override readonly exitCode = ExitCode.runFailed;
}

// --- ledger import (issue 5) ---

/** The import's source cannot be read as given: no such file, a query Postgres rejects, a bad pattern, conflicting source flags. */
export class LedgerSourceError extends UsageError {
  override readonly code = 'ERR_LEDGER_SOURCE';
}
/** The service's database or Redis named as the source cannot be reached. */
export class LedgerSourceUnreachableError extends JwtirError {
  override readonly code = 'ERR_LEDGER_SOURCE_UNREACHABLE';
  override readonly exitCode = ExitCode.unavailable;
}
/** A connection URL with a password on the command line, where every user of the machine can read it. */
export class SecretInArgvError extends UsageError {
  override readonly code = 'ERR_SECRET_IN_ARGV';
}
/** The mapping of ledger fields to the source's columns is malformed, or names a column the source does not have. */
export class LedgerMappingError extends UsageError {
  override readonly code = 'ERR_LEDGER_MAPPING';
}
/** Rows of the source that cannot be sessions (each listed with its line, row or key); nothing was imported. */
export class LedgerRowsInvalidError extends UsageError {
  override readonly code = 'ERR_LEDGER_ROWS_INVALID';
}

// --- guard serve (issue 5): the forward-auth decision endpoint ---

/** The `--serve-config` file is unreadable, not YAML/JSON, or has invalid fields (each listed with where it is). */
export class ServeConfigInvalidError extends UsageError {
  override readonly code = 'ERR_SERVE_CONFIG_INVALID';
}
/** A `--workers` process failed to start, or kept crashing; its own error is on stderr above. The exit code is the worker's. */
export class ServeWorkerFailedError extends JwtirError {
  override readonly code = 'ERR_SERVE_WORKER_FAILED';
  override readonly exitCode: ExitCodeValue;
  constructor(message: string, exitCode: ExitCodeValue, opts: { hint?: string } = {}) {
    super(message, opts);
    this.exitCode = exitCode;
  }
}
