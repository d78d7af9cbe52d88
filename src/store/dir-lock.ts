import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  /** The arguments of the jwtir command holding it (all that older versions recorded). */
  command: string;
  /** The holding process as `ps` would name it: `jwtir logout --user alice`, `node server.js`. */
  process?: string;
  /** A jwtir command (done in seconds), or another process, like a service's guard (holds it while it runs). */
  cli?: boolean;
  since: string;
}

export async function lockStateDir(dir: string, opts: { waitMs?: number } = {}): Promise<DirLock> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'lock');
  const deadline = Date.now() + (opts.waitMs ?? 3000);
  const me: Holder = { pid: process.pid, host: os.hostname(), command: process.argv.slice(2).join(' '), ...thisProcess(), since: new Date().toISOString() };
  // The lock file appears with its content in one step (a hard link to a file written first): a
  // second process never sees it empty, which it would take for a holder that died mid-write.
  const mine = path.join(dir, `.lock.${process.pid}.${Math.random().toString(36).slice(2)}`);
  writeFileSync(mine, JSON.stringify(me), { mode: 0o600 });
  try {
    return await acquire(file, mine, me, deadline, dir);
  } finally {
    rmSync(mine, { force: true });
  }
}

async function acquire(file: string, mine: string, me: Holder, deadline: number, dir: string): Promise<DirLock> {
  for (;;) {
    try {
      linkSync(mine, file);
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
    if (holder === 'gone') continue;
    if (!holder || (holder.host === me.host && !isAlive(holder.pid))) {
      breakStale(file, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      const cli = holder.cli ?? true;
      throw new ConflictError(`the embedded state in ${dir} is in use by pid ${holder.pid} on ${holder.host} (${holder.process ?? `jwtir ${holder.command}`}, since ${holder.since})`, {
        hint: cli
          ? 'wait for that command to finish; for several operators at once, use Postgres (DATABASE_URL)'
          : 'a guard or service process on the embedded default holds the database for as long as it runs: stop it first, or use Postgres (DATABASE_URL) to run the CLI and guards side by side',
      });
    }
    await sleep(50);
  }
}

/**
 * Removes a lock whose holder is dead, unless someone took it over meanwhile: two processes that
 * both found the same dead holder must not both remove (one of them the other's fresh lock).
 * The file is moved aside first, and put back if it is not the one found dead.
 */
function breakStale(file: string, seen: Holder | undefined): void {
  const aside = `${file}.stale.${process.pid}`;
  try {
    renameSync(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const moved = readHolder(aside);
  const same = moved === undefined || moved === 'gone' || (seen !== undefined && moved.pid === seen.pid && moved.since === seen.since);
  if (!same) {
    try {
      linkSync(aside, file);
    } catch {
      /* a third process holds it now; the one we moved will find its file gone on release, harmlessly */
    }
  }
  rmSync(aside, { force: true });
}

/** The holder, 'gone' when the lock was released meanwhile, undefined when it is unreadable (stale). */
function readHolder(file: string): Holder | 'gone' | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    return JSON.parse(text) as Holder;
  } catch {
    // Written by an older jwtir that created the file before writing it, and died in between.
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

/**
 * What this process is, for whoever finds the lock held. A service's own arguments may carry
 * secrets, so only its program and script are named (and a title it set for itself); jwtir's
 * arguments never do (secrets never go in argv).
 */
function thisProcess(): { process: string; cli: boolean } {
  const script = process.argv[1];
  if (script && path.basename(script) === 'jwtir') return { process: ['jwtir', ...process.argv.slice(2)].join(' '), cli: true };
  const program = [path.basename(process.argv0 || process.execPath)];
  if (script) program.push(script.startsWith(process.cwd() + path.sep) ? path.relative(process.cwd(), script) : script);
  if (process.argv.length > 2) program.push('…');
  const titled = process.title && process.title !== process.argv0 && process.title !== process.execPath && process.title !== program[0];
  return { process: titled ? `${process.title} (${program.join(' ')})` : program.join(' '), cli: false };
}
