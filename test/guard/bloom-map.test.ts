import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { BloomMap } from '../../src/guard/bloom-map.js';

const value = () => randomBytes(12).toString('base64url');

describe('BloomMap', () => {
  it('answers exactly like a Map through adds, removals, re-adds, growth and pruning', () => {
    const model = new Map<string, number>();
    const set = new BloomMap();
    const known: string[] = [];
    // Enough operations to grow the filter several times and to trigger rebuilds after removals.
    for (let round = 0; round < 40; round++) {
      const changes: Array<[string, number | null]> = [];
      for (let i = 0; i < 1500; i++) {
        const r = Math.random();
        if (r < 0.6 || known.length === 0) {
          const v = value();
          known.push(v);
          changes.push([v, 1000 + Math.floor(Math.random() * 1000)]);
        } else if (r < 0.85) {
          changes.push([known[Math.floor(Math.random() * known.length)]!, null]);
        } else {
          changes.push([known[Math.floor(Math.random() * known.length)]!, 1000 + Math.floor(Math.random() * 1000)]);
        }
      }
      set.apply(changes);
      for (const [v, exp] of changes) {
        if (exp === null) model.delete(v);
        else model.set(v, exp);
      }
      if (round % 10 === 9) {
        set.pruneExpired(1500);
        for (const [v, exp] of model) if (exp <= 1500) model.delete(v);
      }
      expect(set.size).toBe(model.size);
    }
    for (const v of known) expect(set.get(v)).toBe(model.get(v));
    for (let i = 0; i < 5000; i++) expect(set.get(value())).toBeUndefined();
    expect(new Map(set.entries())).toEqual(model);
  });

  it('filters: at most 3 % of misses reach the Map, at every fill level between rebuilds', () => {
    const set = new BloomMap();
    for (let round = 0; round < 8; round++) {
      set.apply(Array.from({ length: 25_000 }, () => [value(), 1] as [string, number]));
      let maybe = 0;
      for (let i = 0; i < 20_000; i++) if (set.mayHave(value())) maybe++;
      expect(maybe / 20_000).toBeLessThan(0.03);
    }
    expect(set.size).toBe(200_000);
  });

  it('adopts a snapshot map, and answers for its entries at once', () => {
    const snapshot = new Map(Array.from({ length: 20_000 }, (_, i) => [`jti-${i}`, i + 1] as [string, number]));
    const set = new BloomMap(snapshot);
    expect(set.size).toBe(20_000);
    for (let i = 0; i < 20_000; i += 97) expect(set.get(`jti-${i}`)).toBe(i + 1);
    expect(set.get('jti-20000')).toBeUndefined();
    expect(new BloomMap().get('anything')).toBeUndefined();
  });
});
