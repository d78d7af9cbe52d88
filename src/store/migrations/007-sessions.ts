/**
 * Sessions (issue 4): forced logout and session management. A logout ends refresh tokens too (a
 * logout that leaves the refresh token alive is not one), and its undo must revive exactly the
 * ones it ended, so each revoked refresh token records who revoked it.
 */
export const sql = `
-- "<run>:<step>" of the runbook step that revoked it; 'guard' when the guard did (reuse, a user
-- ending a session). Overwritten by a later revocation, so an earlier step's undo cannot revive it.
ALTER TABLE refresh_tokens ADD COLUMN revoked_by text;
CREATE INDEX refresh_tokens_revoked_by ON refresh_tokens (revoked_by) WHERE revoked_by IS NOT NULL;
-- A logout revokes the refresh tokens of the sessions it selected: joined by session id.
CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);
CREATE INDEX alerts_sid ON alerts (sid) WHERE sid IS NOT NULL;
CREATE INDEX sessions_cohort ON sessions (cohort);
`;
