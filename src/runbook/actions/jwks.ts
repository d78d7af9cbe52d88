import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { syncKeysToHotStore } from '../../state/keys.js';
import { jwksOf } from '../../store/hot/hot-store.js';
import { defineAction } from './action.js';

/**
 * Writes the public JWKS to a file (atomically: a reader sees the old file or the new one,
 * never half of one) and pushes the keyset to the guards.
 */
export const jwksPublish = defineAction({
  name: 'jwks.publish',
  mutates: true,
  outputs: ['keys', 'out'],
  input: z.object({ out: z.string().nullable() }),
  describe: (i) => `publish the public JWKS to the guards${i.out ? ` and to ${i.out}` : ''}`,
  async apply(ctx, i) {
    const published = await syncKeysToHotStore(ctx.backends.db, ctx.backends.hot);
    const jwks = jwksOf(published);
    if (i.out) writeAtomic(path.resolve(i.out), JSON.stringify(jwks, null, 2) + '\n');
    return { keys: jwks.keys.length, out: i.out };
  },
});

export function writeAtomic(file: string, content: string, mode = 0o644): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}
