import { spawn } from 'node:child_process';

export interface ShellResult {
  exitCode: number | null;
  timedOut: boolean;
  /** The last 2,000 characters it printed (stdout and stderr), with secrets scrubbed, for the audit trail. */
  output: string;
}

/**
 * Variables a command never gets: jwtir's own secrets and connections. The command is the
 * operator's (a health check, an issuer restart); it has no business with the KEK or the state
 * database, and what it prints goes into the audit trail.
 */
const WITHHELD = /^(JWTIR_KEK|JWTIR_KEK_FILE|DATABASE_URL|REDIS_URL|PGPASSWORD|JWTIR_ONCALL_WEBHOOK_URL|JWTIR_SET_RECEIVERS)$/;
/** Variables whose values are scrubbed from what a command prints, should it print them. */
const SECRET_NAME = /SECRET|TOKEN|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH|WEBHOOK|_URL$/i;
/** How long a command may keep its output open after it exited (a background child holding it). */
const DRAIN_MS = 200;

/**
 * Runs an operator's command with `sh -c`, without jwtir's secrets in its environment. At the
 * deadline its whole process group is killed and the result is returned at once; a process it
 * left running in the background does not hold the run up either.
 */
export function runShell(command: string, timeoutMs: number, extraEnv: Record<string, string>): Promise<ShellResult> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !WITHHELD.test(k)));
  const child = spawn('sh', ['-c', command], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-4000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve) => {
    let done = false;
    const finish = (exitCode: number | null, timedOut: boolean, note = '') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ exitCode, timedOut, output: scrub((output + note).trim()).slice(-2000) });
    };
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      finish(null, true);
    }, timeoutMs);
    child.on('error', (error) => finish(null, false, `could not run: ${error.message}`));
    child.on('exit', (code) => {
      const drained = setTimeout(() => finish(code, false), DRAIN_MS);
      child.on('close', () => {
        clearTimeout(drained);
        finish(code, false);
      });
    });
  });
}

/** Replaces the values of secret-looking variables (and any URL password) in a command's output. */
export function scrub(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let out = text;
  for (const [name, value] of Object.entries(env)) {
    if (!value || value.length < 8 || !(SECRET_NAME.test(name) || WITHHELD.test(name))) continue;
    out = out.split(value).join(`[${name} redacted]`);
  }
  return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]+@/gi, '$1***@');
}
