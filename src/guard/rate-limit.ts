/**
 * Fixed-window operation counts per token (PLAYBOOK A5): an attacker holding one old-key token
 * cannot drain an account in one burst. Counted in this guard instance.
 *
 * One count map per window length, replaced whole when its window ends: memory is bounded by the
 * tokens seen in one window, no pruning pass is needed, and a count is a small integer in a Map
 * (no object per token), which keeps a flood of distinct tokens cheap.
 */
export class TokenRateLimiter {
  private readonly windows = new Map<number, { index: number; counts: Map<string, number> }>();

  /** Counts one operation; returns seconds until the window resets when over the limit, else 0. */
  hit(tokenId: string, ops: number, windowSec: number, nowMs: number): number {
    const windowMs = windowSec * 1000;
    const index = Math.floor(nowMs / windowMs);
    let w = this.windows.get(windowSec);
    if (w === undefined) this.windows.set(windowSec, (w = { index, counts: new Map() }));
    else if (w.index !== index) {
      w.index = index;
      w.counts = new Map();
    }
    const count = (w.counts.get(tokenId) ?? 0) + 1;
    w.counts.set(tokenId, count);
    return count > ops ? Math.max(1, Math.ceil(((index + 1) * windowMs - nowMs) / 1000)) : 0;
  }
}
