/**
 * Errors the guard library raises for bad data (not caller misuse, which is a TypeError).
 * Each has a stable code a service can branch on.
 */
export class GuardError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'GuardError';
    this.code = code;
  }
}

/** Unknown, expired or revoked refresh token: the user must log in again. */
export const REFRESH_INVALID = 'ERR_REFRESH_INVALID';
/** A spent refresh token was presented again: its whole family is now revoked. */
export const REFRESH_REUSED = 'ERR_REFRESH_REUSED';
/** The refresh token is bound to another device. */
export const REFRESH_FINGERPRINT = 'ERR_REFRESH_FINGERPRINT_MISMATCH';
/** No key is active for signing. */
export const NO_ACTIVE_KEY = 'ERR_NO_ACTIVE_KEY';
/** The session does not exist or belongs to another user (one code for both: no oracle for session ids). */
export const SESSION_NOT_FOUND = 'ERR_SESSION_NOT_FOUND';
