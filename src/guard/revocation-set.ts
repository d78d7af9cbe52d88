/**
 * Revoked values of one kind (jti, sid or device fingerprint), each with the epoch second its
 * entry expires. Nearly every lookup on the request path is a miss, and a miss in a Map of
 * 100,000 strings costs several trips to main memory (about 1 µs here). A Bloom filter in front,
 * 16 bits per entry so it stays in the CPU cache, answers almost every miss with two bit tests;
 * only its rare false positives (about 1.4 %) and real hits reach the Map.
 *
 * Removals leave their bits set (a stale bit only costs a Map lookup); the filter is rebuilt
 * when removals pile up or the set outgrows it.
 */
const BITS_PER_ENTRY = 16;
const MIN_BITS = 1 << 12;

export class RevocationSet {
  private readonly map: Map<string, number>;
  private bits = new Int32Array(MIN_BITS >>> 5);
  private mask = MIN_BITS - 1;
  private removed = 0;

  constructor(entries?: Map<string, number>) {
    this.map = entries ?? new Map();
    this.rebuild();
  }

  get size(): number {
    return this.map.size;
  }

  /** The epoch second the value's entry expires, or undefined when it is not revoked. */
  expiresAt(value: string): number | undefined {
    if (this.map.size === 0) return undefined;
    const h1 = hash(value);
    const h2 = mix(h1);
    const a = h1 & this.mask;
    const b = h2 & this.mask;
    if ((this.bits[a >>> 5]! & (1 << (a & 31))) === 0 || (this.bits[b >>> 5]! & (1 << (b & 31))) === 0) return undefined;
    return this.map.get(value);
  }

  /** Applies changes from the feed: a number sets the expiry, null removes the entry. */
  apply(entries: ReadonlyArray<readonly [string, number | null]>): void {
    for (const [value, exp] of entries) {
      if (exp === null) {
        if (this.map.delete(value)) this.removed++;
      } else {
        if (!this.map.has(value)) this.add(value);
        this.map.set(value, exp);
      }
    }
    this.maybeRebuild();
  }

  /** Drops entries whose tokens have expired anyway. */
  pruneExpired(nowSec: number): void {
    for (const [value, exp] of this.map) {
      if (exp <= nowSec) {
        this.map.delete(value);
        this.removed++;
      }
    }
    this.maybeRebuild();
  }

  entries(): IterableIterator<[string, number]> {
    return this.map.entries();
  }

  private add(value: string): void {
    const h1 = hash(value);
    const a = h1 & this.mask;
    const b = mix(h1) & this.mask;
    this.bits[a >>> 5]! |= 1 << (a & 31);
    this.bits[b >>> 5]! |= 1 << (b & 31);
  }

  private maybeRebuild(): void {
    const tooSmall = this.map.size * BITS_PER_ENTRY > this.mask + 1;
    if (tooSmall || (this.removed > 1024 && this.removed > this.map.size)) this.rebuild();
  }

  private rebuild(): void {
    let size = MIN_BITS;
    while (size < this.map.size * BITS_PER_ENTRY * 2) size *= 2;
    this.bits = new Int32Array(size >>> 5);
    this.mask = size - 1;
    this.removed = 0;
    for (const value of this.map.keys()) this.add(value);
  }
}

/** FNV-1a over the UTF-16 code units. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** murmur3's finaliser: a second, independent-enough index from the first hash. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
