import { expect } from '@jest/globals';
import type { CliResult } from './cli.js';

/**
 * Asserts a refused command: its exit code, the stable code in the --json error, and the same
 * message (and next step) for people on stderr. Returns the error for further checks.
 */
export function expectFailure(res: CliResult, exitCode: number, code: string): { code: string; message: string; hint: string | null } {
  if (res.code !== exitCode || res.json?.error?.code !== code) {
    throw new Error(`expected exit ${exitCode} with ${code}, got exit ${res.code ?? res.signal} with ${res.json?.error?.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  }
  expect(res.json.error.exitCode).toBe(exitCode);
  expect(res.stderr).toContain(`jwtir: error ${code}: ${res.json.error.message}`);
  if (res.json.error.hint) expect(res.stderr).toContain(`next: ${res.json.error.hint}`);
  return res.json.error;
}
