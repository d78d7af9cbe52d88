/**
 * The cutover's gate counts users by the policy version a guard was enforcing, not by minute: users
 * an earlier stage (or an undone run) turned back in the same minute are not counted against a
 * stage that did not turn them back. Marks written before this have no version and are not judged.
 */
export const sql = `
ALTER TABLE hot_user_marks ADD COLUMN policy_version bigint NOT NULL DEFAULT 0;
ALTER TABLE hot_user_marks DROP CONSTRAINT hot_user_marks_pkey;
ALTER TABLE hot_user_marks ADD PRIMARY KEY (policy_version, kind, kid, cohort, sub, minute);
`;
