/**
 * Containment (issue 4): revocations and watermarks can be lifted by a later step (`blacklist
 * remove`, an undo) without losing the row, so the undo of a lift can restore exactly what it lifted.
 */
export const sql = `
-- A lifted revocation no longer applies. lifted_by is "<run>:<step>" of the step that lifted it.
ALTER TABLE revocations ADD COLUMN lifted_at timestamptz;
ALTER TABLE revocations ADD COLUMN lifted_by text;
CREATE INDEX revocations_lifted_by ON revocations (lifted_by) WHERE lifted_by IS NOT NULL;
CREATE INDEX revocations_value ON revocations (kind, value);
-- Watermarks cleared by another step than the one that set them (blacklist remove --user, logout undo).
ALTER TABLE watermarks ADD COLUMN cleared_by text;
CREATE INDEX watermarks_cleared_by ON watermarks (cleared_by) WHERE cleared_by IS NOT NULL;

-- Large inputs of a run (a findings file's 100,000 jtis), kept once by content hash, so the run's
-- parameters and the audit trail record the hash and the count instead of the whole list.
CREATE TABLE input_sets (
  hash text PRIMARY KEY,
  kind text NOT NULL,
  items jsonb NOT NULL,
  count integer NOT NULL,
  source text,
  created_at timestamptz NOT NULL DEFAULT now()
);
`;
