/**
 * The server's log: one JSON line per event on stderr (startup, shutdown, degradation). Request
 * paths, tokens and claims are never logged; the guard's counters and alerts record decisions.
 */
export function log(level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }) + '\n');
}
