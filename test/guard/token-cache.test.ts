import { describe, expect, it } from '@jest/globals';
import { TokenCache, tokenHash } from '../../src/guard/token-cache.js';

describe('TokenCache', () => {
  it('admits a token on its second sight only', () => {
    const cache = new TokenCache<string>(100);
    const t = 'header.payload.signature-one';
    const h = tokenHash(t);
    expect(cache.offer(t, h, 'v1')).toBe(false);
    expect(cache.get(t, h)).toBeUndefined();
    expect(cache.offer(t, h, 'v1')).toBe(true);
    expect(cache.get(t, h)).toBe('v1');
  });

  it('never hands one token the entry of another that shares its hash', () => {
    const cache = new TokenCache<string>(100);
    // Same last 16 characters, so the same hash: only the whole token may match.
    const a = 'aaaa.bbbb.0123456789abcdefXYZ0123456789abcdef';
    const b = 'zzzz.yyyy.0123456789abcdefXYZ0123456789abcdef';
    expect(tokenHash(a)).toBe(tokenHash(b));
    cache.offer(a, tokenHash(a), 'A');
    cache.offer(a, tokenHash(a), 'A');
    expect(cache.get(a, tokenHash(a))).toBe('A');
    expect(cache.get(b, tokenHash(b))).toBeUndefined();
  });

  it('stays bounded: old entries age out once two generations have filled', () => {
    const cache = new TokenCache<number>(1000);
    const token = (i: number) => `h.p.sig-${String(i).padStart(12, '0')}`;
    for (let i = 0; i < 5000; i++) {
      cache.offer(token(i), tokenHash(token(i)), i);
      cache.offer(token(i), tokenHash(token(i)), i);
    }
    let kept = 0;
    for (let i = 0; i < 5000; i++) if (cache.get(token(i), tokenHash(token(i))) !== undefined) kept++;
    expect(kept).toBeLessThanOrEqual(1000);
    expect(cache.get(token(4999), tokenHash(token(4999)))).toBe(4999);
    expect(cache.get(token(0), tokenHash(token(0)))).toBeUndefined();
  });

  it('a cache of size 0 keeps nothing', () => {
    const cache = new TokenCache<number>(0);
    cache.offer('a.b.c', tokenHash('a.b.c'), 1);
    cache.offer('a.b.c', tokenHash('a.b.c'), 1);
    expect(cache.get('a.b.c', tokenHash('a.b.c'))).toBeUndefined();
  });
});
