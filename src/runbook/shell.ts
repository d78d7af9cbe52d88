import { spawn } from 'node:child_process';

export interface ShellResult {
  exitCode: number | null;
  timedOut: boolean;
  /** The last 2,000 characters it printed (stdout and stderr), for the audit trail. */
  output: string;
}

/**
 * Runs an operator's command (a health check, an issuer restart) with `sh -c`. At the deadline
 * its whole process group is killed. A command that leaves a process running in the background
 * must detach its output (`nohup … >log 2>&1 &`), or this waits for it until the deadline.
 */
export function runShell(command: string, timeoutMs: number, extraEnv: Record<string, string>): Promise<ShellResult> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-2000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ exitCode: null, timedOut: false, output: `could not run: ${error.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ exitCode: code, timedOut, output: output.trim() });
    });
  });
}
