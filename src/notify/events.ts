/**
 * The Shared Signals vocabulary jwtir uses (no imports: the CLI wiring reads it for --help).
 * Events by the name the CLI takes, with their CAEP 1.0 / RISC 1.0 event type URIs.
 */
export const SET_EVENTS = {
  'session-revoked': 'https://schemas.openid.net/secevent/caep/event-type/session-revoked',
  'credential-compromise': 'https://schemas.openid.net/secevent/risc/event-type/credential-compromise',
} as const;
export type SetEventName = keyof typeof SET_EVENTS;
export const SET_EVENT_NAMES = Object.keys(SET_EVENTS) as SetEventName[];

/** RISC credential-compromise requires `credential_type`, from CAEP's credential-change list. */
export const CREDENTIAL_TYPES = ['password', 'pin', 'x509', 'fido2-platform', 'fido2-roaming', 'fido-u2f', 'verifiable-credential', 'phone-voice', 'phone-sms', 'app'] as const;

/** What a user notification in the outbox is about; the service's mailer picks the wording. */
export const OUTBOX_KINDS = ['forced_logout', 'suspicious_activity', 'session_revoked'] as const;
export type OutboxKind = (typeof OUTBOX_KINDS)[number];
