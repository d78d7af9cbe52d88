import { spawn, type ChildProcess } from 'node:child_process';
import { BIN, ROOT } from './cli.js';

export interface ServeProcess {
  /** What the `serve.started` log line says: host:port or the socket path. */
  address: string;
  child: ChildProcess;
  stderr(): string;
  /** Sends the signal and resolves with how the process ended and what it printed. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The JSON log lines of a serve process's stderr (other lines, such as a CLI error, are skipped). */
export function logLines(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Runs the real `jwtir guard serve` (with a clean environment, as runCli does) until its
 * `serve.started` line; rejects with its output if it exits first.
 */
export function startServe(args: string[], env: Record<string, string>): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'guard', 'serve', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', CI: 'true', ...env },
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let started = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('close', (code, signal) => r({ code, signal })));
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => {
      stderr += d;
      const line = started ? undefined : logLines(stderr).find((l) => l.event === 'serve.started');
      if (!line) return;
      started = true;
      resolve({
        address: String(line.address),
        child,
        stderr: () => stderr,
        async stop(signal = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          const end = await exited;
          return { ...end, stdout, stderr };
        },
      });
    });
    void exited.then(({ code, signal }) => {
      if (!started) reject(new Error(`jwtir guard serve exited ${code ?? signal} before it started\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}
