import { z } from 'zod';
import { mergeImport, unmergeImport } from '../../ledger/store.js';
import { findKey } from '../../state/keys.js';
import { syncLedgerToHotStore } from '../../state/ledger.js';
import { defineAction } from './action.js';

/**
 * Merges the rows `jwtir ledger import` read, checked and staged into the session ledger, in one
 * transaction; when their key is compromised, also into the guards' reference ledger, so the
 * forgery check accepts these sessions at once. Applied again after a crash, it finds the merge
 * recorded and returns the same counts.
 */
export const ledgerImport = defineAction({
  name: 'ledger.import',
  mutates: true,
  outputs: ['read', 'new', 'known', 'mark', 'pushed'],
  input: z.object({
    import: z.string().min(1),
    kid: z.string().min(1),
    source: z.string(),
    rows: z.number().int().nonnegative(),
    newSessions: z.number().int().nonnegative(),
    newUsers: z.number().int().nonnegative(),
  }),
  describe: (i) => `add the sessions among ${i.rows} rows read from ${i.source} to the ledger as signed by ${i.kid}`,
  async apply(ctx, i) {
    const { db, hot } = ctx.backends;
    const merging = `merging ${i.rows.toLocaleString('en-US')} rows into the session ledger`;
    ctx.progress(merging, { done: 0, total: i.rows });
    const merged = await mergeImport(db, i.import, ctx.runId, ctx.step, (done) => ctx.progress(merging, { done, total: i.rows }));
    ctx.progress(`${merged.new.toLocaleString('en-US')} new sessions, ${merged.known.toLocaleString('en-US')} known`, { done: i.rows, total: i.rows });
    // Checked after the merge committed: a key flagged meanwhile pushed its whole ledger, these rows included.
    const key = await findKey(db, i.kid);
    const pushed = key?.compromised ? await syncLedgerToHotStore(db, hot, i.kid, { importRun: ctx.runId }) : 0;
    if (pushed) ctx.progress(`pushed ${pushed} sessions to the guards' forgery check for ${i.kid}`);
    return { ...merged, pushed };
  },
  async impact(_backends, i) {
    return { sessions: i.newSessions ?? 0, users: i.newUsers ?? 0, note: 'sessions added to the ledger; nobody is logged out' };
  },
});

/** Undo of an import: its sessions leave the ledger, unless another source's import read them since. */
export const ledgerUnimport = defineAction({
  name: 'ledger.unimport',
  mutates: true,
  outputs: ['removed', 'kept'],
  input: z.object({ import: z.string().min(1) }),
  describe: () => 'remove the sessions this import added (those another source has read since stay)',
  async apply(ctx, i) {
    return unmergeImport(ctx.backends.db, i.import);
  },
});

export const LEDGER_ACTIONS = [ledgerImport, ledgerUnimport];
