import { createHmac, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { CompactEncrypt, CompactSign, SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose';
import { DEFAULT_MAX_TOKEN_BYTES, TokenRejected, parseCompactJws, type RejectReason } from '../../src/guard/jws.js';

const SECRET = randomBytes(32);
const b64 = (v: unknown): string =>
  (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))).toString('base64url');
const CLAIMS = { sub: 'user-1', exp: 4102444800 };

/** Hand-forge a token the way an attacker would: no library between them and the bytes. */
function forge(header: unknown, payload: unknown = CLAIMS, sig?: string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sig ?? createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

function reasonOf(fn: () => unknown): RejectReason {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenRejected) return err.reason;
    throw err;
  }
  throw new Error('expected the token to be rejected');
}

const rejects = (token: string, maxBytes?: number): RejectReason => reasonOf(() => parseCompactJws(token, maxBytes));

afterEach(() => {
  jest.restoreAllMocks();
});

describe('parseCompactJws: accepted shape', () => {
  it('returns header, claims, alg, kid, signing input and signature bytes', async () => {
    const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(SECRET);
    const parsed = parseCompactJws(token);
    expect(parsed.alg).toBe('HS256');
    expect(parsed.kid).toBe('k1');
    expect(parsed.payload).toEqual(CLAIMS);
    expect(parsed.signingInput).toBe(token.slice(0, token.lastIndexOf('.')));
    expect(parsed.signature.equals(createHmac('sha256', SECRET).update(parsed.signingInput).digest())).toBe(true);
  });

  it('leaves kid undefined when absent and keeps alg exactly as given', () => {
    const parsed = parseCompactJws(forge({ alg: 'hs256' }));
    expect(parsed.kid).toBeUndefined();
    expect(parsed.alg).toBe('hs256');
  });

  it('is synchronous and does no I/O', () => {
    expect(parseCompactJws.constructor.name).toBe('Function');
  });
});

describe('alg none', () => {
  it('rejects jose UnsecuredJWT (alg none, empty signature)', () => {
    expect(rejects(new UnsecuredJWT(CLAIMS).encode())).toBe('alg_none');
  });

  it.each(['none', 'None', 'NONE', 'nOnE'])('rejects alg %s with an empty signature', (alg) => {
    expect(rejects(forge({ alg, kid: 'k1' }, CLAIMS, ''))).toBe('alg_none');
  });

  it('rejects alg none even when a signature is attached', () => {
    expect(rejects(forge({ alg: 'none' }))).toBe('alg_none');
  });
});

describe('keys named by the token are never used', () => {
  it('rejects an embedded attacker jwk (signed with the matching attacker key)', async () => {
    const attacker = await generateKeyPair('ES256');
    const jwk = await exportJWK(attacker.publicKey);
    const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'ES256', jwk }).sign(attacker.privateKey);
    expect(rejects(token)).toBe('header_key_forbidden');
  });

  it.each(['jku', 'x5u'])('rejects %s pointing at the metadata service without any network access', async (name) => {
    const fetchSpy = jest.spyOn(globalThis, 'fetch');
    const attacker = await generateKeyPair('RS256');
    const token = await new CompactSign(Buffer.from(JSON.stringify(CLAIMS)))
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', [name]: 'http://169.254.169.254/latest/meta-data/' })
      .sign(attacker.privateKey);
    // A synchronous throw proves no request could have been awaited.
    expect(rejects(token)).toBe('header_key_forbidden');
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it.each(['x5c', 'x5t', 'x5t#S256'])('rejects %s in any form', (name) => {
    expect(rejects(forge({ alg: 'HS256', [name]: null }))).toBe('header_key_forbidden');
  });
});

describe('kid', () => {
  it.each(['../../../../dev/null', "' UNION SELECT 'x"])('keeps printable kid %j verbatim for exact-match lookup', (kid) => {
    expect(parseCompactJws(forge({ alg: 'HS256', kid })).kid).toBe(kid);
  });

  it.each([
    ['a NUL byte', 'k1\u0000'],
    ['a newline', 'k1\nforged log line'],
    ['a bidi override', 'k1\u202e'],
    ['a lone surrogate', 'k1\ud800'],
    ['an empty string', ''],
    ['a number', 1],
    ['null', null],
    ['an array', ['k1']],
  ])('rejects a kid with %s', (_label, kid) => {
    expect(rejects(forge({ alg: 'HS256', kid }))).toBe('kid_invalid');
  });

  it('rejects a 10 KB kid: too_large under the default cap, kid_invalid under a larger one', () => {
    const token = forge({ alg: 'HS256', kid: 'k'.repeat(10 * 1024) });
    expect(rejects(token)).toBe('too_large');
    expect(rejects(token, 64 * 1024)).toBe('kid_invalid');
  });

  it('accepts 256 characters and rejects 257', () => {
    expect(parseCompactJws(forge({ alg: 'HS256', kid: 'k'.repeat(256) })).kid).toHaveLength(256);
    expect(rejects(forge({ alg: 'HS256', kid: 'k'.repeat(257) }))).toBe('kid_invalid');
  });
});

describe('crit and b64', () => {
  it.each([[['urn:example:unknown']], [[]], ['x'], [[null]], [['b64']]])('rejects crit %j', (crit) => {
    expect(rejects(forge({ alg: 'HS256', crit }))).toBe('crit_unsupported');
  });

  it('rejects b64 false, with or without crit', () => {
    expect(rejects(forge({ alg: 'HS256', b64: false, crit: ['b64'] }))).toBe('crit_unsupported');
    expect(rejects(forge({ alg: 'HS256', b64: false }))).toBe('crit_unsupported');
  });
});

describe('size and JWE', () => {
  it('rejects a 1 MB header as too_large before any JSON.parse', () => {
    const parseSpy = jest.spyOn(JSON, 'parse');
    const token = forge({ alg: 'HS256', pad: 'x'.repeat(1024 * 1024) });
    expect(rejects(token)).toBe('too_large');
    expect(parseSpy).not.toHaveBeenCalled();
  });

  it('accepts exactly maxBytes and rejects one more', () => {
    const token = forge({ alg: 'HS256' });
    expect(parseCompactJws(token, token.length).alg).toBe('HS256');
    expect(rejects(token, token.length - 1)).toBe('too_large');
    expect(DEFAULT_MAX_TOKEN_BYTES).toBe(8192);
  });

  it('rejects a real 5-segment JWE encrypted to an RSA key as not_jws', async () => {
    const { publicKey } = await generateKeyPair('RSA-OAEP-256');
    const jwe = await new CompactEncrypt(Buffer.from(JSON.stringify(CLAIMS)))
      .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: 'k1' })
      .encrypt(publicKey);
    expect(jwe.split('.')).toHaveLength(5);
    expect(rejects(jwe)).toBe('not_jws');
  });

  it('rejects a PBES2 JWE with p2c 2147483647 fast, before any key derivation', () => {
    const header = { alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', p2c: 2147483647, p2s: b64('saltsaltsaltsalt') };
    const parts = [b64(header), b64(randomBytes(40)), b64(randomBytes(12)), b64(randomBytes(32)), b64(randomBytes(16))];
    const started = process.hrtime.bigint();
    expect(rejects(parts.join('.'))).toBe('not_jws');
    // The same header squeezed into three segments is still not a JWS.
    expect(rejects(forge(header))).toBe('not_jws');
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(50);
  });

  it.each(['a.b', 'a.b.c.d', 'abc', '', 'a..b.c'])('rejects %j as not_jws', (token) => {
    expect(rejects(token)).toBe('not_jws');
  });
});

describe('strict base64url and JSON objects', () => {
  const h = b64({ alg: 'HS256' });
  const p = b64(CLAIMS);

  it.each([
    ['padding', `${h}=.${p}.AAAA`],
    ['+ in a segment', `${h}.${p}.AA+A`],
    ['/ in a segment', `${h}.${p}.AA/A`],
    ['whitespace', `${h}.${p} .AAAA`],
    ['length = 1 mod 4', `${h}.${p}.AAAAA`],
    ['non-canonical trailing bits', `${h}.${p}.AB`],
    ['empty header', `.${p}.AAAA`],
    ['empty payload', `${h}..AAAA`],
    ['header array', `${b64([{ alg: 'HS256' }])}.${p}.AAAA`],
    ['header null', `${b64('null')}.${p}.AAAA`],
    ['header string', `${b64('"HS256"')}.${p}.AAAA`],
    ['header not JSON', `${b64('{alg:HS256}')}.${p}.AAAA`],
    ['header with a BOM', `${b64('\ufeff{"alg":"HS256"}')}.${p}.AAAA`],
    ['header invalid UTF-8', `${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${p}.AAAA`],
    ['payload array', `${h}.${b64([1])}.AAAA`],
    ['payload null', `${h}.${b64('null')}.AAAA`],
    ['payload number', `${h}.${b64('42')}.AAAA`],
    ['alg missing', `${b64({ kid: 'k1' })}.${p}.AAAA`],
    ['alg not a string', `${b64({ alg: ['HS256'] })}.${p}.AAAA`],
  ])('rejects %s as malformed', (_label, token) => {
    expect(rejects(token)).toBe('malformed');
  });

  it('rejects an empty signature segment as bad_signature', () => {
    expect(rejects(forge({ alg: 'RS256', kid: 'k1' }, CLAIMS, ''))).toBe('bad_signature');
  });

  it('decodes a 1-byte signature (the key rejects it, not the parser)', () => {
    expect(parseCompactJws(forge({ alg: 'HS256' }, CLAIMS, 'AA')).signature).toHaveLength(1);
  });
});
