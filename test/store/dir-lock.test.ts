import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { ROOT, runCli, runOk } from '../helpers/cli.js';
import { freshCase } from '../helpers/services.js';

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

it('a guard holding the embedded state is named by its process, with the way out, when a CLI command finds it busy', async () => {
  const { env } = freshCase('embedded', 'lock_guard');
  await runOk(['init', '--json'], { env });
  const server = path.join(env.JWTIR_STATE_DIR!, 'server.mjs');
  writeFileSync(
    server,
    `import { createGuard } from ${JSON.stringify(path.join(ROOT, 'dist/guard/index.js'))};
     const guard = await createGuard({ stateDir: process.env.JWTIR_STATE_DIR, kek: process.env.JWTIR_KEK });
     process.stdout.write('ready\\n');
     process.stdin.on('end', async () => { await guard.close(); process.exit(0); }).resume();`,
  );
  const service = spawn(process.execPath, [server, '--port', '8080'], { env: { ...process.env, ...env }, cwd: env.JWTIR_STATE_DIR, stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      service.stdout.on('data', (d) => String(d).includes('ready') && resolve());
      service.on('exit', (code) => reject(new Error(`the guard process exited with ${code}`)));
    });
    const res = await runCli(['status', '--json'], { env });
    expect(res.code).toBe(ExitCode.conflict);
    // Its program and script, not its arguments (they may hold secrets), and not a jwtir command.
    expect(res.json.error.message).toMatch(new RegExp(`is in use by pid ${service.pid} on \\S+ \\(node server\\.mjs …, since \\S+\\)$`));
    expect(res.json.error.hint).toBe(
      'a guard or service process on the embedded default holds the database for as long as it runs: stop it first, or use Postgres (DATABASE_URL) to run the CLI and guards side by side',
    );
  } finally {
    const closed = service.exitCode !== null || service.signalCode !== null ? Promise.resolve() : new Promise((r) => service.once('close', r));
    service.stdin.end();
    await closed;
  }
});
