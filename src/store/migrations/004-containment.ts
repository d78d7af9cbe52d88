/**
 * Containment (issue 4): cohort watermarks for logging out whole cohorts, watermark expiry, and
 * what a user's session list shows (cohort, device label, place).
 */
export const sql = `
-- 'cohort' watermarks: subject "<n>" (0..99) ends tokens of every key for that cohort, "<kid>#<n>"
-- those of one key. A watermark covers only tokens issued before it, so once every such token
-- has expired (expires_at) it can be pruned.
ALTER TABLE watermarks DROP CONSTRAINT watermarks_scope_check;
ALTER TABLE watermarks ADD CONSTRAINT watermarks_scope_check CHECK (scope IN ('user', 'kid', 'cohort'));
ALTER TABLE watermarks ADD COLUMN expires_at timestamptz;

ALTER TABLE sessions ADD COLUMN cohort smallint;
ALTER TABLE sessions ADD COLUMN device text;
ALTER TABLE sessions ADD COLUMN place text;
CREATE INDEX sessions_kid_cohort ON sessions (kid, cohort);
CREATE INDEX sessions_fph ON sessions (fph) WHERE fph IS NOT NULL;
CREATE INDEX alerts_at ON alerts (at);

-- The guard's cohortOf (FNV-1a over the UTF-8 bytes, mod 100), for rows recorded before this
-- migration and for SQL a service may want to run; jwtir itself computes it when recording.
CREATE FUNCTION jwtir_cohort(sub text) RETURNS smallint LANGUAGE plpgsql IMMUTABLE STRICT AS $fn$
DECLARE
  h bigint := 2166136261;
  b bytea := convert_to(sub, 'UTF8');
BEGIN
  FOR i IN 0 .. length(b) - 1 LOOP
    h := ((h # get_byte(b, i)) * 16777619) & 4294967295;
  END LOOP;
  RETURN (h % 100)::smallint;
END
$fn$;
UPDATE sessions SET cohort = jwtir_cohort(sub) WHERE cohort IS NULL;
`;
