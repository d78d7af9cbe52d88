/** The first schema: keys, policy, ledger, watermarks, runs, audit trail, and the table hot store. */
export const sql = `
CREATE TABLE meta (
  k text PRIMARY KEY,
  v jsonb NOT NULL
);

CREATE TABLE keys (
  kid text PRIMARY KEY,
  alg text NOT NULL CHECK (alg IN ('HS256', 'RS256', 'ES256', 'EdDSA')),
  state text NOT NULL CHECK (state IN ('staged', 'active', 'retiring', 'disabled', 'destroyed')),
  public_jwk jsonb,
  private_enc text,
  kidless boolean NOT NULL DEFAULT false,
  weak boolean NOT NULL DEFAULT false,
  origin text NOT NULL CHECK (origin IN ('imported', 'generated')),
  origin_run bigint,
  origin_step text,
  published_at timestamptz,
  activated_at timestamptz,
  retired_at timestamptz,
  verify_until timestamptz,
  compromised boolean NOT NULL DEFAULT false,
  compromised_at timestamptz,
  -- run:step that flagged it, so only that step's undo clears the flag
  compromised_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- One signing key at a time, one key that answers for tokens without a kid.
CREATE UNIQUE INDEX keys_one_active ON keys ((true)) WHERE state = 'active';
CREATE UNIQUE INDEX keys_one_kidless ON keys ((true)) WHERE kidless;
-- A runbook step creates at most one key, which is what makes key generation idempotent.
CREATE UNIQUE INDEX keys_origin ON keys (origin_run, origin_step) WHERE origin_run IS NOT NULL;

CREATE TABLE policy_versions (
  version integer PRIMARY KEY,
  doc jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  run_id bigint,
  step text
);

CREATE TABLE sessions (
  sid text PRIMARY KEY,
  sub text NOT NULL,
  kid text,
  roles text[] NOT NULL DEFAULT '{}',
  fph text,
  issued_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  last_seen_at timestamptz,
  source text NOT NULL DEFAULT 'guard'
);
CREATE INDEX sessions_sub ON sessions (sub);
CREATE INDEX sessions_kid ON sessions (kid);

-- Every not-before watermark is its own row, tagged with the run and step that set it, so an
-- undo deletes exactly its own rows and the effective watermark is the maximum that remains.
CREATE TABLE watermarks (
  scope text NOT NULL CHECK (scope IN ('user', 'kid')),
  subject text NOT NULL,
  not_before timestamptz NOT NULL,
  run_id bigint NOT NULL DEFAULT 0,
  step text NOT NULL DEFAULT '',
  reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, subject, run_id, step)
);
CREATE INDEX watermarks_origin ON watermarks (run_id, step);

CREATE TABLE runs (
  id bigserial PRIMARY KEY,
  runbook text NOT NULL,
  runbook_path text NOT NULL,
  runbook_hash text NOT NULL,
  params jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'paused', 'done', 'failed', 'rolling_back', 'rolled_back')),
  actor text NOT NULL,
  holder text,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE run_steps (
  run_id bigint NOT NULL REFERENCES runs (id),
  idx integer NOT NULL,
  step text NOT NULL,
  action text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'skipped', 'failed', 'rolled_back')),
  inputs jsonb,
  outputs jsonb,
  undo jsonb,
  error text,
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (run_id, step)
);

-- A named lock held by a run until it finishes, is rolled back, or is unlocked by an operator.
-- It survives a crash on purpose: a half-done rotation must be resumed, not raced.
CREATE TABLE run_locks (
  name text PRIMARY KEY,
  run_id bigint NOT NULL REFERENCES runs (id),
  holder text NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit (
  seq bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  body jsonb NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL,
  idem text UNIQUE
);

-- The hot store implemented on tables (embedded default, and Postgres without Redis).
CREATE TABLE hot_kv (
  k text PRIMARY KEY,
  v jsonb NOT NULL
);
CREATE TABLE hot_watermarks (
  scope text NOT NULL,
  subject text NOT NULL,
  not_before bigint NOT NULL,
  PRIMARY KEY (scope, subject)
);
CREATE TABLE hot_changes (
  seq bigserial PRIMARY KEY,
  change jsonb NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
`;
