/**
 * Remembers tokens whose signature and static claims already checked out, so a session's access
 * token, presented again and again, skips parsing and signature work. Only tokens that verified
 * are cached; everything time- or state-dependent is re-checked per request.
 *
 * - Two generations: when the young one fills up it becomes the old one, so memory stays bounded
 *   without a per-hit LRU list.
 * - A doorkeeper admits a token on its second sight only (as in TinyLFU). A token seen once, the
 *   common case for a flood of minted tokens, then costs no retained memory and no GC work.
 * - Entries are found by a 31-bit hash of the token's last characters (its signature, which
 *   differs between any two tokens): cheaper than hashing the whole token string. The whole token
 *   is then compared, so a collision is only ever a miss, never another token's entry.
 */
const TAIL = 16;

interface Entry<V> {
  token: string;
  value: V;
}

export class TokenCache<V> {
  private young = new Map<number, Entry<V>>();
  private old = new Map<number, Entry<V>>();
  private readonly seen: Int32Array;
  private readonly mask: number;

  constructor(private readonly capacity: number) {
    let slots = 1024;
    while (slots < capacity) slots *= 2;
    this.seen = new Int32Array(slots);
    this.mask = slots - 1;
  }

  get(token: string, hash: number): V | undefined {
    const hit = this.young.get(hash);
    if (hit !== undefined) return hit.token === token ? hit.value : undefined;
    const aged = this.old.get(hash);
    if (aged === undefined || aged.token !== token) return undefined;
    this.young.set(hash, aged);
    this.rollIfFull();
    return aged.value;
  }

  /** Caches `value` if this token was offered before (recently); returns whether it did. */
  offer(token: string, hash: number, value: V): boolean {
    if (this.capacity <= 0) return false;
    const slot = hash & this.mask;
    if (this.seen[slot] !== hash) {
      this.seen[slot] = hash;
      return false;
    }
    this.young.set(hash, { token, value });
    this.rollIfFull();
    return true;
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
    this.seen.fill(0);
  }

  private rollIfFull(): void {
    if (this.young.size >= this.capacity / 2) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}

/** FNV-1a over the token's last characters, as a non-negative 31-bit integer (a V8 small integer). */
export function tokenHash(token: string): number {
  let h = 0x811c9dc5;
  for (let i = Math.max(0, token.length - TAIL); i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193);
  return h & 0x7fffffff;
}
