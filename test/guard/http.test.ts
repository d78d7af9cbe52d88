import { validateHeaderValue } from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { bearerToken, cookieValue, defaultOperation, httpDenial } from '../../src/guard/http.js';
import type { Reason, Verdict } from '../../src/guard/types.js';

const v = (decision: Verdict['decision'], reasons: string[], extra: Partial<Verdict> = {}): Verdict =>
  ({ decision, reasons: reasons as Reason[], ...extra });

/** Node itself must accept every header we produce (it throws on CR, LF and other invalid chars). */
function nodeAccepts(headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) expect(() => validateHeaderValue(name, value)).not.toThrow();
}

describe('httpDenial', () => {
  it('lets allow through', () => {
    expect(httpDenial(v('allow', []))).toBeNull();
  });

  it('step_up: 401 with an RFC 9470 challenge', () => {
    expect(httpDenial(v('step_up', ['new_device']))).toEqual({
      status: 401,
      headers: {
        'Cache-Control': 'no-store',
        'WWW-Authenticate':
          'Bearer realm="api", error="insufficient_user_authentication", error_description="a second factor is required", acr_values="mfa"',
      },
      body: { error: 'insufficient_user_authentication', reasons: ['new_device'] },
    });
    const d = httpDenial(v('step_up', ['bad_reputation']), { realm: 'bank', stepUpAcr: 'phr phrh', stepUpMaxAgeSec: 300 });
    expect(d?.headers['WWW-Authenticate']).toBe(
      'Bearer realm="bank", error="insufficient_user_authentication", error_description="a second factor is required", acr_values="phr phrh", max_age="300"',
    );
    expect(httpDenial(v('step_up', []), { stepUpMaxAgeSec: 0 })?.headers['WWW-Authenticate']).toMatch(/, max_age="0"$/);
  });

  it('block_critical: 403 insufficient_scope, the account holder must confirm', () => {
    expect(httpDenial(v('block_critical', ['dirty_device']), { realm: 'bank' })).toEqual({
      status: 403,
      headers: {
        'Cache-Control': 'no-store',
        'WWW-Authenticate':
          'Bearer realm="bank", error="insufficient_scope", error_description="the account holder must confirm before critical operations are allowed"',
      },
      body: { error: 'insufficient_scope', reasons: ['dirty_device'] },
    });
  });

  it('rate_limited: 429 with Retry-After (at least 1, whole seconds) and a Bearer challenge', () => {
    expect(httpDenial(v('deny', ['rate_limited'], { retryAfterSec: 7 }))).toEqual({
      status: 429,
      headers: {
        'Cache-Control': 'no-store',
        'Retry-After': '7',
        'WWW-Authenticate': 'Bearer realm="api", error="invalid_token", error_description="rate limit exceeded for this token"',
      },
      body: { error: 'rate_limited', reasons: ['rate_limited'] },
    });
    const after = (retryAfterSec?: number) => httpDenial(v('deny', ['rate_limited'], { retryAfterSec }))!.headers['Retry-After'];
    expect(after(2.2)).toBe('3');
    expect(after(0)).toBe('1');
    expect(after(-5)).toBe('1');
    expect(after(undefined)).toBe('1');
    expect(after(Number.NaN)).toBe('1');
    expect(after(1e21)).toBe('2147483648');
  });

  it('token_missing: 401 with a bare challenge, no error attribute (RFC 6750 §3.1)', () => {
    expect(httpDenial(v('deny', ['token_missing']), { realm: 'bank' })).toEqual({
      status: 401,
      headers: { 'Cache-Control': 'no-store', 'WWW-Authenticate': 'Bearer realm="bank"' },
      body: { error: 'authentication_required', reasons: ['token_missing'] },
    });
  });

  it('store_unavailable: 503 with Retry-After and no challenge (the token may be fine)', () => {
    expect(httpDenial(v('deny', ['store_unavailable']))).toEqual({
      status: 503,
      headers: { 'Cache-Control': 'no-store', 'Retry-After': '5' },
      body: { error: 'temporarily_unavailable', reasons: ['store_unavailable'] },
    });
    expect(httpDenial(v('deny', ['store_unavailable'], { retryAfterSec: 30 }))!.headers['Retry-After']).toBe('30');
  });

  it('every other deny: 401 invalid_token naming the reasons', () => {
    for (const reasons of [['expired'], ['bad_signature'], ['forged_unknown_session'], ['fingerprint_mismatch'], ['revoked_jti', 'too_old']]) {
      const d = httpDenial(v('deny', reasons))!;
      expect(d.status).toBe(401);
      expect(d.headers).toEqual({
        'Cache-Control': 'no-store',
        'WWW-Authenticate': `Bearer realm="api", error="invalid_token", error_description="token rejected: ${reasons.join(', ')}"`,
      });
      expect(d.body).toEqual({ error: 'invalid_token', reasons });
    }
    expect(httpDenial(v('deny', []))!.headers['WWW-Authenticate']).toBe(
      'Bearer realm="api", error="invalid_token", error_description="token rejected"',
    );
  });

  it('fails closed on a decision it does not know', () => {
    const d = httpDenial({ decision: 'maybe' as Verdict['decision'], reasons: [] })!;
    expect(d.status).toBe(401);
    expect(d.headers['WWW-Authenticate']).toContain('error="invalid_token"');
  });

  it('never puts claims, subject, session, kid or token material in headers or body', () => {
    const secretish = { sub: 'user-4711', sid: 'sess-abc', kid: 'kid-old', cohort: 42, claims: { email: 'alice@example.com', sub: 'user-4711' } };
    for (const verdict of [
      v('deny', ['expired'], secretish),
      v('step_up', ['new_device'], secretish),
      v('block_critical', ['dirty_device'], secretish),
      v('deny', ['rate_limited'], { ...secretish, retryAfterSec: 3 }),
    ]) {
      const text = JSON.stringify(httpDenial(verdict));
      for (const leak of ['user-4711', 'sess-abc', 'kid-old', 'alice@example.com', 'cohort', 'claims']) expect(text).not.toContain(leak);
      expect(Object.keys(httpDenial(verdict)!.body).sort()).toEqual(['error', 'reasons']);
    }
  });

  it('strips hostile reasons to RFC 6750 error_description characters', () => {
    const evil = 'x"\\\r\nSet-Cookie: pwned=1\u0000é"';
    const d = httpDenial(v('deny', [evil, 'expired']))!;
    expect(d.headers['WWW-Authenticate']).toBe(
      'Bearer realm="api", error="invalid_token", error_description="token rejected: xSet-Cookie: pwned=1, expired"',
    );
    nodeAccepts(d.headers);
    // The body is JSON: the reason is kept as data there, escaped by JSON.stringify.
    expect(d.body.reasons).toEqual([evil, 'expired']);
    // Very long reason lists do not grow the header without bound.
    const long = httpDenial(v('deny', Array(500).fill('expired')))!;
    expect(long.headers['WWW-Authenticate']!.length).toBeLessThan(300);
  });

  it('escapes the realm as a quoted-string and refuses configuration that cannot be a header', () => {
    const d = httpDenial(v('deny', ['token_missing']), { realm: 'a "b" \\c' })!;
    expect(d.headers['WWW-Authenticate']).toBe('Bearer realm="a \\"b\\" \\\\c"');
    nodeAccepts(d.headers);
    expect(() => httpDenial(v('deny', ['expired']), { realm: 'x\r\nSet-Cookie: a=b' })).toThrow(TypeError);
    expect(() => httpDenial(v('step_up', []), { stepUpAcr: 'a"b' })).toThrow(TypeError);
    expect(() => httpDenial(v('step_up', []), { stepUpAcr: '' })).toThrow(TypeError);
    expect(() => httpDenial(v('step_up', []), { stepUpMaxAgeSec: -1 })).toThrow(RangeError);
    expect(() => httpDenial(v('step_up', []), { stepUpMaxAgeSec: 1.5 })).toThrow(RangeError);
  });
});

describe('bearerToken', () => {
  it.each<[string | undefined, string | undefined]>([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer x', 'x'],
    ['BEARER x', 'x'],
    ['Bearer a-b_c.d~e+f/g==', 'a-b_c.d~e+f/g=='],
    ['Bearer  x', undefined],
    ['Bearer x y', undefined],
    ['Bearer x ', undefined],
    ['Bearer\tx', undefined],
    ['Bearer ', undefined],
    ['Bearer', undefined],
    ['Basic x', undefined],
    ['Bearerx', undefined],
    ['Bearer x=y', undefined],
    ['Bearer "x"', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%j → %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe('cookieValue', () => {
  it('finds the exact name and nothing else', () => {
    const header = 'xsession=evil; session=good; other=1';
    expect(cookieValue(header, 'session')).toBe('good');
    expect(cookieValue(header, 'other')).toBe('1');
    expect(cookieValue(header, 'sess')).toBeUndefined();
    expect(cookieValue(header, 'Session')).toBeUndefined();
  });
  it('takes the first occurrence (the narrowest path, as browsers order them)', () => {
    expect(cookieValue('a=first; a=second', 'a')).toBe('first');
  });
  it('handles whitespace, quoted values, = inside values, and absent or empty cookies', () => {
    expect(cookieValue('  a = 1 ;b=2', 'a')).toBe('1');
    expect(cookieValue('a="q.r.s"', 'a')).toBe('q.r.s');
    expect(cookieValue('a=x==; b', 'a')).toBe('x==');
    expect(cookieValue('a=; b=2', 'a')).toBeUndefined();
    expect(cookieValue('b', 'b')).toBeUndefined();
    expect(cookieValue('', 'a')).toBeUndefined();
    expect(cookieValue(undefined, 'a')).toBeUndefined();
  });
  it('does not URL-decode', () => {
    expect(cookieValue('a=x%2Ey', 'a')).toBe('x%2Ey');
  });
});

describe('defaultOperation', () => {
  it('is read for safe methods and critical for everything else', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'get']) expect(defaultOperation(m)).toBe('read');
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE', 'MOVE', 'PROPPATCH', 'post', '', undefined]) expect(defaultOperation(m)).toBe('critical');
  });
});
