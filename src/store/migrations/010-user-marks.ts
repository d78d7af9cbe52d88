/**
 * Issue 4 review: the cutover's health gate counts users, not requests (one account replaying an
 * old token must not sway it); and a policy step's undo recomputes each field from the writes
 * still in force, so undoing runs in any order ends where no run had changed it.
 */
export const sql = `
CREATE TABLE hot_user_marks (
  minute bigint NOT NULL,
  kind text NOT NULL CHECK (kind IN ('cut', 'allow')),
  kid text NOT NULL,
  cohort smallint NOT NULL,
  sub text NOT NULL,
  PRIMARY KEY (minute, kind, kid, cohort, sub)
);

-- What a runbook step's write set, and what those fields held before; null for other writes.
ALTER TABLE policy_versions ADD COLUMN patch jsonb;
ALTER TABLE policy_versions ADD COLUMN undone_at timestamptz;
CREATE INDEX policy_versions_origin ON policy_versions (run_id, step);
`;
