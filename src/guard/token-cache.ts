/**
 * Remembers tokens whose signature and static claims already checked out, so a session's access
 * token, presented again and again, skips parsing and signature work. Two generations: when the
 * young one fills up it becomes the old one, so memory stays bounded without a per-hit LRU list.
 * Only tokens that verified are cached; everything time- or state-dependent is re-checked per request.
 */
export class TokenCache<V> {
  private young = new Map<string, V>();
  private old = new Map<string, V>();

  constructor(private readonly capacity: number) {}

  get(token: string): V | undefined {
    const hit = this.young.get(token);
    if (hit !== undefined) return hit;
    const aged = this.old.get(token);
    if (aged !== undefined) this.set(token, aged);
    return aged;
  }

  set(token: string, value: V): void {
    if (this.young.size >= this.capacity / 2) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(token, value);
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
  }
}
