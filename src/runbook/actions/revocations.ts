import { z } from 'zod';
import { claimLifted, liftRevocations, restoreLifted, stepTag } from '../../state/revocations.js';
import { REVOCATION_KINDS } from '../../store/hot/hot-store.js';
import { defineAction } from './action.js';

/**
 * Undo of any step that revoked jtis, sessions or devices: lifts the rows that step added
 * (tagged with its run and step); revocations made by other runs stay. Idempotent.
 */
export const revocationsLiftOwn = defineAction({
  name: 'revocations.lift-own',
  mutates: true,
  outputs: ['values'],
  input: z.object({}),
  describe: () => 'lift the revocations this step made',
  async apply(ctx) {
    const { db, hot } = ctx.backends;
    const tag = stepTag(ctx.runId, `undo:${ctx.step}`);
    await claimLifted(db, tag, ctx.runId, ctx.step);
    let values = 0;
    for (const kind of REVOCATION_KINDS) {
      values += (await liftRevocations(db, hot, kind, tag, 'run_id = $3 AND step = $4', [ctx.runId, ctx.step])).length;
    }
    return { values };
  },
});

/** Undo of a step that lifted revocations (`blacklist remove`): what it lifted applies again. */
export const revocationsRestore = defineAction({
  name: 'revocations.restore',
  mutates: true,
  outputs: [],
  input: z.object({}),
  describe: () => 'restore the revocations this step lifted',
  async apply(ctx) {
    for (const kind of REVOCATION_KINDS) await restoreLifted(ctx.backends.db, ctx.backends.hot, kind, stepTag(ctx.runId, ctx.step));
    return {};
  },
});
