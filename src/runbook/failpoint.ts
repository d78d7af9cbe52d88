/**
 * Test-only crash injection: JWTIR_FAILPOINT=<step>:<before|after> kills this process with
 * SIGKILL at that point (no cleanup, no finally blocks), so tests can prove that every step
 * resumes to the state an uninterrupted run reaches. `before` is after the intent and audit
 * row are written and before the effect; `after` is after the effect and before its completion
 * is recorded; `gate` is while a step's health gate watches (after its effect); `undo` is just
 * before a step's undo takes effect during a rollback.
 */
export function failpoint(step: string, when: 'before' | 'after' | 'gate' | 'undo'): void {
  const spec = process.env.JWTIR_FAILPOINT;
  if (spec && spec === `${step}:${when}`) process.kill(process.pid, 'SIGKILL');
}
