import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { RevocationSet } from '../../src/guard/revocation-set.js';

const value = () => randomBytes(12).toString('base64url');

describe('RevocationSet', () => {
  it('answers exactly like a Map through adds, removals, re-adds, growth and pruning', () => {
    const model = new Map<string, number>();
    const set = new RevocationSet();
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
    for (const v of known) expect(set.expiresAt(v)).toBe(model.get(v));
    for (let i = 0; i < 5000; i++) expect(set.expiresAt(value())).toBeUndefined();
    expect(new Map(set.entries())).toEqual(model);
  });

  it('adopts a snapshot map, and answers for its entries at once', () => {
    const snapshot = new Map(Array.from({ length: 20_000 }, (_, i) => [`jti-${i}`, i + 1] as [string, number]));
    const set = new RevocationSet(snapshot);
    expect(set.size).toBe(20_000);
    for (let i = 0; i < 20_000; i += 97) expect(set.expiresAt(`jti-${i}`)).toBe(i + 1);
    expect(set.expiresAt('jti-20000')).toBeUndefined();
    expect(new RevocationSet().expiresAt('anything')).toBeUndefined();
  });
});
