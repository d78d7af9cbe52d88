import { randomUUID } from 'node:crypto';
import { LedgerRowsInvalidError } from '../errors.js';
import type { Db } from '../store/db.js';
import { FIELDS, type ResolvedMapping } from './fields.js';
import { sourceId as idOf, type Mark, type Sink, type Source } from './source.js';
import { Stage } from './stage.js';
import { createImport, currentMark, discardImport, finishImport, pruneAbandoned } from './store.js';

/** Bad rows named in the error message; all of them (up to MAX_PROBLEMS_KEPT) are in its details. */
const PROBLEMS_SHOWN = 50;

export interface StagedImport {
  /** null for a dry run, which stages nothing. */
  importId: string | null;
  sourceId: string;
  markBefore: Mark | null;
  markAfter: Mark | null;
  /** A file changed before its mark and was read whole again. */
  restarted: boolean;
  rows: number;
  /** Rows whose session the ledger does not have yet (an estimate for the plan; the merge counts for real). */
  fresh: number;
  known: number;
  freshUsers: number;
}

/**
 * Read → check → stage: reads the source from its mark (or whole with `full`), checks every row,
 * and stages the good ones under a new import id. Any bad row, or a failure, discards what was
 * staged and throws, so nothing of a bad source reaches the ledger. A dry run only counts.
 */
export async function stageImport(
  db: Db,
  source: Source,
  kid: string,
  mapping: ResolvedMapping,
  opts: { full?: boolean; dryRun?: boolean; progress?: Sink['progress'] } = {},
): Promise<StagedImport> {
  const sourceId = idOf(source, kid, mapping);
  const markBefore = opts.full ? null : await currentMark(db, sourceId);
  const importId = opts.dryRun ? null : randomUUID();
  if (importId) {
    await pruneAbandoned(db);
    await createImport(db, { id: importId, sourceId, kind: source.kind, kid, description: source.description, markBefore, markAfter: null, rows: 0 });
  }
  const stage = new Stage(db, importId, sourceId, opts.progress);
  try {
    const outcome = await source.read(mapping, markBefore, stage);
    await stage.finish();
    if (stage.problemCount) throw rowsInvalid(source, stage);
    if (importId) await finishImport(db, importId, stage.rowCount, outcome.mark);
    return {
      importId,
      sourceId,
      markBefore,
      markAfter: outcome.mark,
      restarted: outcome.restarted,
      rows: stage.rowCount,
      fresh: stage.fresh,
      known: stage.known,
      freshUsers: stage.users.size,
    };
  } catch (error) {
    if (importId) await discardImport(db, importId).catch(() => {});
    throw error;
  }
}

function rowsInvalid(source: Source, stage: Stage): LedgerRowsInvalidError {
  const n = stage.problemCount;
  const shown = stage.problems.slice(0, PROBLEMS_SHOWN);
  const more = n - shown.length;
  return new LedgerRowsInvalidError(
    `${source.description} has ${n} row${n === 1 ? '' : 's'} that cannot be sessions:\n${shown.map((p) => `  ${p}`).join('\n')}${more ? `\n  … and ${more} more` : ''}`,
    {
      hint: `fix the rows listed (or the mapping: --map field=column, fields ${FIELDS.join(', ')}), then import again; nothing was imported`,
      details: { count: n, problems: stage.problems },
    },
  );
}

/** A mark for people: where the next import of the source starts. */
export function describeMark(mark: Mark | null): string {
  if (!mark) return 'the beginning';
  if ('offset' in mark) return `byte ${mark.offset.toLocaleString('en-US')} (after line ${mark.lines.toLocaleString('en-US')})`;
  return `issued_at ${mark.at}`;
}
