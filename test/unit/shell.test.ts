import { afterEach, beforeEach, expect, it } from '@jest/globals';
import { runShell, scrub } from '../../src/runbook/shell.js';

/**
 * The operator's commands (a cutover's health check, an issuer restart) run without jwtir's own
 * secrets, their output is scrubbed before it reaches the audit trail, and their deadline is hard.
 */
const saved = { ...process.env };
beforeEach(() => {
  process.env.JWTIR_KEK = 'a2VrLWtlay1rZWsta2VrLWtlay1rZWsta2VrLWtlay0=';
  process.env.DATABASE_URL = 'postgres://jwtir:hunter2hunter2@db.internal/jwtir';
  process.env.PAYMENTS_API_TOKEN = 'tok_live_0123456789abcdef';
});
afterEach(() => {
  process.env = { ...saved };
});

it("withholds jwtir's KEK and connection URLs from the command", async () => {
  const res = await runShell('echo "kek=[$JWTIR_KEK] db=[$DATABASE_URL]"', 5000, {});
  expect(res).toMatchObject({ exitCode: 0, timedOut: false, output: 'kek=[] db=[]' });
});

it('scrubs secret-looking variables and URL passwords from what the command prints', async () => {
  const res = await runShell('echo "token=$PAYMENTS_API_TOKEN"; echo "dsn=https://svc:s3cr3tpass@metrics.example/q"; exit 3', 5000, {});
  expect(res.exitCode).toBe(3);
  expect(res.output).toBe('token=[PAYMENTS_API_TOKEN redacted]\ndsn=https://svc:***@metrics.example/q');
  expect(scrub('kek a2VrLWtlay1rZWsta2VrLWtlay1rZWsta2VrLWtlay0= here')).toBe('kek [JWTIR_KEK redacted] here');
});

it('returns at the deadline with the whole group killed, and is not held up by a process left in the background', async () => {
  const started = Date.now();
  const slow = await runShell('sleep 30', 300, {});
  expect(slow).toMatchObject({ exitCode: null, timedOut: true });
  const detached = await runShell('setsid sleep 30 & echo started; exit 0', 10_000, {});
  expect(detached).toMatchObject({ exitCode: 0, timedOut: false, output: 'started' });
  // Both came back long before the 30 s sleeps would have ended.
  expect(Date.now() - started).toBeLessThan(10_000);
});
