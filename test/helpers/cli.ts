import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin', 'jwtir');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is JSON. */
  json: any;
}

/**
 * Runs the real `bin/jwtir` as a child process with a clean environment: only PATH/HOME plus
 * what the test gives, so a developer's own DATABASE_URL never leaks into a test.
 */
export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NO_COLOR: '1', CI: 'true' };
    for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: opts.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code, signal, stdout, stderr, json });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs the CLI and fails with its output when the exit code is not the expected one. */
export async function runOk(args: string[], opts: Parameters<typeof runCli>[1] = {}, expectCode = 0): Promise<CliResult> {
  const res = await runCli(args, opts);
  if (res.code !== expectCode) {
    throw new Error(`jwtir ${args.join(' ')} exited ${res.code ?? res.signal} (expected ${expectCode})\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  return res;
}
