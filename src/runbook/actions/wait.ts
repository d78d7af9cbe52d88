import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { formatDuration } from '../../config/duration.js';
import { defineAction } from './action.js';

/**
 * A gate that lets time pass, e.g. so every verifier has learned a new key before any token
 * uses it. Counted from the step's first start: a resumed wait only waits what is left.
 */
export const wait = defineAction({
  name: 'wait',
  mutates: false,
  outputs: ['until'],
  input: z.object({ ms: z.number().int().nonnegative(), reason: z.string().optional() }),
  describe: (i) => `wait ${formatDuration(i.ms)}${i.reason ? ` (${i.reason})` : ''}`,
  async apply(ctx, i) {
    const until = ctx.stepStartedAt.getTime() + i.ms;
    const left = until - Date.now();
    if (left > 0) ctx.progress(`waiting ${formatDuration(left)}${i.reason ? ` (${i.reason})` : ''}`);
    // In slices: a single timer longer than 2^31-1 ms fires at once.
    for (let rest = until - Date.now(); rest > 0; rest = until - Date.now()) await sleep(Math.min(rest, 86_400_000));
    return { until: new Date(until).toISOString() };
  },
});
