import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from '../errors.js';

/**
 * An exclusive, process-level lock on a state directory. The embedded database is a directory
 * of files that exactly one process may open at a time; two processes opening it would corrupt
 * it. The lock file records the holder's pid, so a holder killed with SIGKILL is detected as
 * gone (its pid no longer exists) and the next process takes over at once, without a timeout.
 */
export interface DirLock {
  release(): void;
}

interface Holder {
  pid: number;
  host: string;
  command: string;
  since: string;
}

export async function lockStateDir(dir: string, opts: { waitMs?: number; command?: string } = {}): Promise<DirLock> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'lock');
  const deadline = Date.now() + (opts.waitMs ?? 3000);
  const me: Holder = { pid: process.pid, host: os.hostname(), command: opts.command ?? process.argv.slice(2).join(' '), since: new Date().toISOString() };
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          rmSync(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readHolder(file);
    if (!holder || (holder.host === me.host && !isAlive(holder.pid))) {
      rmSync(file, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new ConflictError(
        `the embedded state in ${dir} is in use by pid ${holder.pid} on ${holder.host} (jwtir ${holder.command}, since ${holder.since})`,
        { hint: 'wait for that command to finish; for several operators at once, use Postgres (DATABASE_URL)' },
      );
    }
    await sleep(50);
  }
}

function readHolder(file: string): Holder | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Holder;
  } catch {
    // Half-written by a holder that died between create and write: treat as stale.
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
