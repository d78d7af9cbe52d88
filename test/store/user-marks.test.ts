import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Backends } from '../../src/store/open.js';
import type { UserMarkRow } from '../../src/store/hot/hot-store.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { openState } from '../helpers/state.js';

/**
 * The users a cutover stage's gate counts, on each hot store: those turned back (and let in) under
 * the stage's own policy version or a later one. Users an earlier stage or an undone run turned
 * back moments before, in the same minute, must not count against the stage (they made a
 * healthy stage look like a lock-out).
 */
const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
/** Marks of `subs` spread over cohorts 0-9, as guards write them. */
function marks(policyVersion: number, kind: 'cut' | 'allow', kid: string, subs: string[], cohortOffset = 0): UserMarkRow[] {
  const minute = Math.floor(Date.now() / 60_000);
  return Array.from({ length: 10 }, (_, cohort) => ({
    minute,
    policyVersion,
    kind,
    kid: kind === 'cut' ? kid : '',
    cohort: cohort + cohortOffset,
    subs: subs.filter((_, i) => i % 10 === cohort),
  }));
}

for (const c of backendCases('user-marks', ['embedded', 'postgres', 'postgres+redis'])) {
  describeBackend(c, 'users counted for a cutover gate', () => {
    let b: Backends;
    // Redis counts with HyperLogLog: estimates within about 1 % of each count (the tables are exact).
    const near = (actual: number, expected: number) => {
      const slack = b.hot.kind === 'redis' ? Math.max(3, Math.ceil(expected * 0.03)) : 0;
      expect(Math.abs(actual - expected)).toBeLessThanOrEqual(slack);
    };

    beforeAll(async () => {
      b = await openState(c.env);
      expect(b.hot.kind).toBe(c.name === 'postgres+redis' ? 'redis' : 'tables');
      // Version 6: an earlier stage (since undone) turned 300 users back; none of them got in again.
      await b.hot.addUserMarks(marks(6, 'cut', 'legacy', users('early', 300)));
      // Version 7, the stage being judged: 50 of those users turned back again and all logged in
      // again, with 200 users who were never turned back; another key's cutover turned 80 back.
      const again = users('early', 50);
      await b.hot.addUserMarks([
        ...marks(7, 'cut', 'legacy', again),
        ...marks(7, 'allow', 'legacy', [...again, ...users('new', 200)]),
        ...marks(7, 'cut', 'other', users('other', 80)),
        // Users of cohorts the stage did not cut (10-19): not judged.
        ...marks(7, 'cut', 'legacy', users('outside', 40), 10),
      ]);
      // Version 8, published during the stage's watch (another policy change): still counted.
      await b.hot.addUserMarks([...marks(8, 'cut', 'legacy', users('late', 30)), ...marks(8, 'allow', 'legacy', users('late', 20))]);
      await b.hot.publishPolicy({ version: 8, doc: {} });
    });
    afterAll(async () => {
      await b?.close();
    });

    it("counts from the stage's own policy version on: users turned back before it do not count", async () => {
      const stage = await b.hot.returningUsers({ fromPolicyVersion: 7, kid: 'legacy', cohortsBelow: 10 });
      near(stage.cut, 50 + 30);
      near(stage.back, 50 + 20);
      // Counted from version 6 the 250 users who never got in again would breach a 50 % floor.
      const wider = await b.hot.returningUsers({ fromPolicyVersion: 6, kid: 'legacy', cohortsBelow: 10 });
      near(wider.cut, 300 + 30);
      near(wider.back, 50 + 20);
      expect(wider.back / wider.cut).toBeLessThan(0.5);
      expect(stage.back / stage.cut).toBeGreaterThan(0.8);
    });

    it("counts only the key being cut over and the stage's cohorts", async () => {
      near((await b.hot.returningUsers({ fromPolicyVersion: 7, kid: 'other', cohortsBelow: 10 })).cut, 80);
      near((await b.hot.returningUsers({ fromPolicyVersion: 7, kid: 'legacy', cohortsBelow: 20 })).cut, 50 + 30 + 40);
      expect(await b.hot.returningUsers({ fromPolicyVersion: 9, kid: 'legacy', cohortsBelow: 100 })).toEqual({ cut: 0, back: 0 });
    });

    if (c.name !== 'postgres+redis') {
      it('the table hot store deletes counters and marks older than two days as guards flush (Redis expires its keys)', async () => {
        const now = Math.floor(Date.now() / 60_000);
        const old = now - 3 * 24 * 60;
        await b.hot.addUserMarks([
          { minute: old, policyVersion: 20, kind: 'cut', kid: 'legacy', cohort: 0, subs: users('stale', 7) },
          { minute: now, policyVersion: 20, kind: 'cut', kid: 'legacy', cohort: 0, subs: users('fresh', 5) },
        ]);
        const row = { kid: 'legacy', decision: 'deny', reason: 'key_cutover', cohort: 0, n: 3 };
        await b.hot.addCounters([{ ...row, minute: old }, { ...row, minute: now }]);
        expect((await b.hot.readCounters(0)).map((r) => r.minute)).toEqual([now]);
        expect(await b.hot.returningUsers({ fromPolicyVersion: 20, kid: 'legacy', cohortsBelow: 1 })).toEqual({ cut: 5, back: 0 });
      });
    }
  });
}
