/**
 * Fixed-window operation counts per token (PLAYBOOK A5): an attacker holding one old-key token
 * cannot drain an account in one burst. Counted in this guard instance.
 */
export class TokenRateLimiter {
  private windows = new Map<string, { start: number; count: number }>();
  private lastPrune = 0;

  /** Counts one operation; returns seconds until the window resets when over the limit, else 0. */
  hit(tokenId: string, ops: number, windowSec: number, nowMs: number): number {
    const windowMs = windowSec * 1000;
    const start = Math.floor(nowMs / windowMs) * windowMs;
    let w = this.windows.get(tokenId);
    if (!w || w.start !== start) {
      w = { start, count: 0 };
      this.windows.set(tokenId, w);
    }
    w.count += 1;
    if (nowMs - this.lastPrune > 60_000) this.prune(nowMs, windowMs);
    return w.count > ops ? Math.max(1, Math.ceil((start + windowMs - nowMs) / 1000)) : 0;
  }

  private prune(nowMs: number, windowMs: number): void {
    this.lastPrune = nowMs;
    for (const [id, w] of this.windows) if (w.start + windowMs < nowMs - 3_600_000) this.windows.delete(id);
  }
}
