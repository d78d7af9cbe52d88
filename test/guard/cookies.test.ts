import { validateHeaderValue } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { clearCookie, refreshCookie } from '../../src/guard/cookies.js';

const scope = { path: '/auth/refresh', maxAgeSec: 1209600 };

describe('refreshCookie', () => {
  it('is HttpOnly, Secure, SameSite=Strict and scoped to the refresh path', () => {
    expect(refreshCookie('__Secure-refresh', 'rt.abc-DEF_123', scope)).toBe(
      '__Secure-refresh=rt.abc-DEF_123; HttpOnly; Secure; SameSite=Strict; Path=/auth/refresh; Max-Age=1209600',
    );
    expect(refreshCookie('rt', 'v', { ...scope, domain: 'example.com' })).toBe(
      'rt=v; HttpOnly; Secure; SameSite=Strict; Path=/auth/refresh; Domain=example.com; Max-Age=1209600',
    );
    expect(() => validateHeaderValue('Set-Cookie', refreshCookie('rt', 'v', scope))).not.toThrow();
  });

  it('refuses a wide or malformed path', () => {
    for (const path of ['/', '', 'auth/refresh', '/a;Domain=evil.com', '/a\r\nX: y', '/a\u0000']) {
      expect(() => refreshCookie('rt', 'v', { ...scope, path })).toThrow(TypeError);
    }
    expect(() => refreshCookie('rt', 'v', { ...scope, path: '/' })).toThrow(/narrow/);
  });

  it('refuses names and values outside RFC 6265', () => {
    for (const name of ['', 'a b', 'a=b', 'a;b', 'a"b', 'a\r\n', 'é', '(x)']) {
      expect(() => refreshCookie(name, 'v', scope)).toThrow(TypeError);
    }
    for (const value of ['', 'a b', 'a;b', 'a,b', 'a"b', 'a\\b', 'a\r\nSet-Cookie: x=y', 'é']) {
      expect(() => refreshCookie('rt', value, scope)).toThrow(TypeError);
    }
  });

  it('refuses __Host- (it needs Path=/) and points to __Secure-', () => {
    expect(() => refreshCookie('__Host-refresh', 'v', scope)).toThrow(/__Secure-/);
    expect(() => refreshCookie('__host-refresh', 'v', scope)).toThrow(TypeError);
  });

  it('refuses bad domains and lifetimes', () => {
    for (const domain of ['', 'evil.com; Path=/', '-a.com', 'a..com', 'a com']) {
      expect(() => refreshCookie('rt', 'v', { ...scope, domain })).toThrow(TypeError);
    }
    for (const maxAgeSec of [0, -1, 1.5, Number.NaN, Infinity, 400 * 86400 + 1]) {
      expect(() => refreshCookie('rt', 'v', { ...scope, maxAgeSec })).toThrow(RangeError);
    }
    expect(refreshCookie('rt', 'v', { ...scope, maxAgeSec: 400 * 86400 })).toMatch(/Max-Age=34560000$/);
  });
});

describe('clearCookie', () => {
  it('expires the cookie with the same attributes (else the browser keeps it)', () => {
    expect(clearCookie('__Secure-refresh', { path: '/auth/refresh' })).toBe(
      '__Secure-refresh=; HttpOnly; Secure; SameSite=Strict; Path=/auth/refresh; Max-Age=0',
    );
    expect(clearCookie('rt', { path: '/auth', domain: 'example.com' })).toBe(
      'rt=; HttpOnly; Secure; SameSite=Strict; Path=/auth; Domain=example.com; Max-Age=0',
    );
    expect(() => clearCookie('rt', { path: '/' })).toThrow(TypeError);
    expect(() => clearCookie('__Host-rt', { path: '/auth' })).toThrow(TypeError);
  });
});
