/** Notifications (issue 4): the user outbox, and a record of every send to on-call and SET receivers. */
export const sql = `
-- Notifications for users, written by jwtir and consumed by the service's own mailer (README
-- "notify": the claim and mark statements a mailer runs). One row per user, kind and run step, so
-- a resumed step enqueues once. The payload holds session ids, device labels, places, times and
-- the reason; never a token.
CREATE TABLE notify_outbox (
  id bigserial PRIMARY KEY,
  sub text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('forced_logout', 'suspicious_activity', 'session_revoked')),
  payload jsonb NOT NULL,
  run_id bigint NOT NULL,
  step text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Set by the mailer: claimed (in progress), sent, attempts and its last error.
  claimed_at timestamptz,
  sent_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  UNIQUE (run_id, step, sub, kind)
);
-- What a mailer polls: the rows not yet sent, oldest first.
CREATE INDEX notify_outbox_unsent ON notify_outbox (id) WHERE sent_at IS NULL;

-- One row per message jwtir itself delivers (the on-call webhook, each SET to each receiver),
-- written before the first attempt, so no send is ever silently dropped: it ends sent or failed.
CREATE TABLE notify_sends (
  id bigserial PRIMARY KEY,
  run_id bigint NOT NULL,
  step text NOT NULL,
  channel text NOT NULL CHECK (channel IN ('webhook', 'set')),
  -- webhook: its host only (the URL itself is a secret); set: the receiver URL (which holds no credentials).
  target text NOT NULL,
  audience text,
  subject text,
  event text NOT NULL,
  jti text,
  -- webhook: the JSON body; set: the claims (signed again, with the same jti, on every attempt).
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_status integer,
  last_error text,
  first_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  sent_at timestamptz,
  -- run:step:channel[:receiver:subject]: a message is created once per run step, so a resume never sends it twice.
  idem text NOT NULL UNIQUE
);
CREATE INDEX notify_sends_origin ON notify_sends (run_id, step, id);
CREATE INDEX notify_sends_unsent ON notify_sends (run_id) WHERE status <> 'sent';
`;
