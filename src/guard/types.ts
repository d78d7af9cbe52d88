/**
 * The guard's public vocabulary: what a request brings (RequestContext) and what the guard
 * answers (Verdict). Adapters (Express, Fastify, forward-auth) translate these to HTTP.
 */

export type Decision = 'allow' | 'step_up' | 'block_critical' | 'deny';

/** What the service's fraud protection and router know about the request. */
export interface RequestContext {
  /** Hash of the device fingerprint (lower-case hex SHA-256), computed by the service's fraud protection. */
  fingerprint?: string;
  /** `critical` for money transfers, credential or e-mail changes, payout details. Default `read`. */
  operation?: 'read' | 'critical';
  /** Per-request device signals from fraud protection, when it has them. */
  signals?: {
    /** This device was not seen for this user before (the guard's registry is consulted too). */
    newDevice?: boolean;
    /** Device reputation: spoofed IP, geo or timezone, many sessions on one device → `bad`. */
    reputation?: 'good' | 'bad' | 'unknown';
  };
}

export type Reason =
  // the token itself
  | 'malformed'
  | 'too_large'
  | 'not_jws'
  | 'alg_none'
  | 'alg_not_allowed'
  | 'header_key_forbidden'
  | 'crit_unsupported'
  | 'kid_invalid'
  | 'bad_signature'
  | 'token_missing'
  // keys
  | 'kid_unknown'
  | 'kid_missing'
  | 'alg_mismatch'
  | 'key_disabled'
  | 'key_retired'
  | 'key_cutover'
  // claims
  | 'claims_invalid'
  | 'exp_missing'
  | 'expired'
  | 'not_yet_valid'
  | 'iat_in_future'
  | 'iat_missing'
  | 'too_old'
  | 'lifetime_too_long'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  // revocations
  | 'revoked_jti'
  | 'revoked_session'
  | 'revoked_device'
  | 'revoked_user'
  | 'revoked_kid'
  | 'revoked_cohort'
  // compromised key
  | 'forged_unknown_session'
  | 'forged_after_retirement'
  | 'forged_unknown_device'
  | 'rate_limited'
  // device binding
  | 'fingerprint_missing'
  | 'fingerprint_mismatch'
  // risk (step_up / block_critical)
  | 'new_device'
  | 'bad_reputation'
  | 'dirty_device'
  // the store
  | 'store_unavailable';

export interface Verdict {
  decision: Decision;
  /** Machine-readable reasons; empty when allowed. */
  reasons: Reason[];
  kid?: string;
  /** The verified claims (only when the signature verified). */
  claims?: Record<string, unknown>;
  sub?: string;
  sid?: string;
  /** The user's stable cohort, 0..99 (by a hash of sub). */
  cohort?: number;
  /** For `rate_limited`: seconds until the token's window resets. */
  retryAfterSec?: number;
}
