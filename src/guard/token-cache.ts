/**
 * Remembers tokens whose signature and static claims already checked out, so a session's access
 * token, presented again and again, skips parsing and signature work. Two generations: when the
 * young one fills up it becomes the old one, so memory stays bounded without a per-hit LRU list.
 * Only tokens that verified are cached; everything time- or state-dependent is re-checked per request.
 *
 * Entries are found by the token's last characters (its signature, which differs between any two
 * tokens) because hashing a short slice is cheaper than hashing the whole token on every request;
 * the whole token is then compared, so a token that merely shares a tail never gets another's entry.
 */
const TAIL = 24;

interface Entry<V> {
  token: string;
  value: V;
}

export class TokenCache<V> {
  private young = new Map<string, Entry<V>>();
  private old = new Map<string, Entry<V>>();

  constructor(private readonly capacity: number) {}

  get(token: string): V | undefined {
    const tail = token.slice(-TAIL);
    const hit = this.young.get(tail);
    if (hit !== undefined) return hit.token === token ? hit.value : undefined;
    const aged = this.old.get(tail);
    if (aged === undefined || aged.token !== token) return undefined;
    this.young.set(tail, aged);
    this.rollIfFull();
    return aged.value;
  }

  set(token: string, value: V): void {
    this.young.set(token.slice(-TAIL), { token, value });
    this.rollIfFull();
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
  }

  private rollIfFull(): void {
    if (this.young.size >= this.capacity / 2) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}
