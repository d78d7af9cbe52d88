/** The guard's state: revocations, the device registry, refresh tokens, alerts, and their hot copies. */
export const sql = `
-- Revocations by jti, session or device fingerprint hash. Each row is tagged with the run and step
-- that made it (0/'' for the guard's own, e.g. a refresh-token reuse), so an undo removes only its own.
CREATE TABLE revocations (
  kind text NOT NULL CHECK (kind IN ('jti', 'sid', 'fph')),
  value text NOT NULL,
  expires_at timestamptz NOT NULL,
  run_id bigint NOT NULL DEFAULT 0,
  step text NOT NULL DEFAULT '',
  reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, value, run_id, step)
);
CREATE INDEX revocations_origin ON revocations (run_id, step);

CREATE TABLE devices (
  sub text NOT NULL,
  fph text NOT NULL,
  first_seen timestamptz NOT NULL DEFAULT now(),
  last_seen timestamptz NOT NULL DEFAULT now(),
  confirmed_at timestamptz,
  reputation text CHECK (reputation IN ('good', 'bad')),
  PRIMARY KEY (sub, fph)
);

-- Refresh tokens are stored only as SHA-256 hashes. A family is one login's chain of rotations.
CREATE TABLE refresh_tokens (
  hash text PRIMARY KEY,
  family text NOT NULL,
  sid text NOT NULL,
  sub text NOT NULL,
  fph text,
  issued_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE alerts (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  kind text NOT NULL,
  sub text,
  sid text,
  jti text,
  kid text,
  fph text,
  detail jsonb
);

CREATE TABLE hot_revocations (
  kind text NOT NULL,
  value text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (kind, value)
);
CREATE TABLE hot_devices (
  sub text NOT NULL,
  fph text NOT NULL,
  confirmed boolean NOT NULL,
  reputation text,
  PRIMARY KEY (sub, fph)
);
-- For compromised keys only: the sessions and users the service really issued tokens to.
CREATE TABLE hot_ledger (
  kid text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('sid', 'sub')),
  value text NOT NULL,
  PRIMARY KEY (kid, kind, value)
);
CREATE TABLE hot_counters (
  minute bigint NOT NULL,
  kid text NOT NULL,
  decision text NOT NULL,
  reason text NOT NULL,
  cohort integer NOT NULL,
  n bigint NOT NULL,
  PRIMARY KEY (minute, kid, decision, reason, cohort)
);
`;
