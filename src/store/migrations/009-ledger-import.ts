/**
 * Ledger import (issue 5): the sessions a service issued, read from its own tables, files or
 * session store. A source is read and checked whole before its run starts, into staged chunks;
 * the run then merges them in one transaction, so a bad row or a crash never leaves half an import.
 */
export const sql = `
-- The run that added a session, and the latest import run of another source that read it again:
-- an import's undo removes only what it added and no other source has vouched for since. Not
-- indexed: an index would cost every imported row its upkeep (a tenth of a million-row merge),
-- while only an undo and the push to the guards look rows up by it, each in one pass.
ALTER TABLE sessions ADD COLUMN import_run bigint;
ALTER TABLE sessions ADD COLUMN import_seen_run bigint;

-- One row per source (a hash of its kind, query / file / pattern, URL without password, key and
-- mapping) with the high-water mark the next import starts from: {"at","value"} for SQL,
-- {"offset","lines","sha256","header"} for files; Redis sources are rescanned and have none.
CREATE TABLE ledger_sources (
  id text PRIMARY KEY,
  kind text NOT NULL,
  description text NOT NULL,
  mark jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per import command that read a source; merged_at is set by the run's merge step.
CREATE TABLE ledger_imports (
  id text PRIMARY KEY,
  source_id text NOT NULL,
  kind text NOT NULL,
  kid text NOT NULL,
  description text NOT NULL,
  mark_before jsonb,
  mark_after jsonb,
  rows bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  run_id bigint,
  step text,
  merged_at timestamptz,
  new_sessions bigint,
  new_users bigint,
  undone_at timestamptz,
  removed bigint,
  kept bigint
);
CREATE INDEX ledger_imports_source ON ledger_imports (source_id, created_at);

-- The checked rows of an import, a chunk of up to 10,000 per row as parallel arrays: writing
-- and deleting a hundred rows is far cheaper than a million. Times are epoch milliseconds; roles
-- holds each session's roles as an array literal; seen lists the session ids another import had
-- added already (the undo rule above).
CREATE TABLE ledger_staging (
  import_id text NOT NULL,
  chunk integer NOT NULL,
  sid text[] NOT NULL,
  sub text[] NOT NULL,
  roles text[] NOT NULL,
  fph text[] NOT NULL,
  issued_ms double precision[] NOT NULL,
  expires_ms double precision[] NOT NULL,
  device text[] NOT NULL,
  place text[] NOT NULL,
  cohort smallint[] NOT NULL,
  seen text[] NOT NULL,
  PRIMARY KEY (import_id, chunk)
);
-- Written once and read once: compressing the arrays would cost more time than it saves.
ALTER TABLE ledger_staging ALTER COLUMN sid SET STORAGE EXTERNAL;
ALTER TABLE ledger_staging ALTER COLUMN sub SET STORAGE EXTERNAL;
ALTER TABLE ledger_staging ALTER COLUMN roles SET STORAGE EXTERNAL;
ALTER TABLE ledger_staging ALTER COLUMN issued_ms SET STORAGE EXTERNAL;
ALTER TABLE ledger_staging ALTER COLUMN expires_ms SET STORAGE EXTERNAL;
`;
