import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from '@jest/globals';
import { ROOT } from '../helpers/cli.js';

/**
 * The embedded state directory is opened by one process at a time. Many processes racing for it
 * at once, some killed with SIGKILL while they hold it, must never hold it together.
 */
it('never lets two processes hold the embedded state directory at once, also when holders are killed', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-lock-'));
  const script = path.join(dir, 'holder.mjs');
  writeFileSync(
    script,
    `import { appendFileSync } from 'node:fs';
     import { lockStateDir } from ${JSON.stringify(path.join(ROOT, 'dist/store/dir-lock.js'))};
     const lock = await lockStateDir(process.argv[2], { waitMs: 60000 });
     appendFileSync(process.argv[2] + '/log', 'in\\n');
     await new Promise((r) => setTimeout(r, 20));
     appendFileSync(process.argv[2] + '/log', 'out\\n');
     if (process.argv[3] === 'die') process.kill(process.pid, 'SIGKILL');
     lock.release();`,
  );
  const state = path.join(dir, 'state');
  const run = (die: boolean) =>
    new Promise<void>((resolve) => spawn(process.execPath, [script, state, die ? 'die' : 'live'], { stdio: 'ignore' }).on('close', () => resolve()));
  await Promise.all(Array.from({ length: 16 }, (_, i) => run(i % 4 === 0)));
  const log = readFileSync(path.join(state, 'log'), 'utf8').trim().split('\n');
  let holders = 0;
  let most = 0;
  for (const line of log) {
    holders += line === 'in' ? 1 : -1;
    most = Math.max(most, holders);
  }
  expect(log.filter((l) => l === 'in')).toHaveLength(16);
  expect(most).toBe(1);
});
