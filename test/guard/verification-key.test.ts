import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type JsonWebKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { SignJWT, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, type CryptoKey } from 'jose';
import { TokenRejected, parseCompactJws, type RejectReason } from '../../src/guard/jws.js';
import { SUPPORTED_ALGS, createVerificationKey, type JwsAlg, type VerificationKey } from '../../src/guard/verification-key.js';

const CLAIMS = { sub: 'user-1', exp: 4102444800 };
const b64 = (v: unknown): string =>
  (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))).toString('base64url');

/** The caller's side of the contract, in miniature: parse, exact kid lookup, pinned alg, verify. */
function decide(token: string, keys: Map<string, VerificationKey>): 'ok' | 'unknown_kid' | RejectReason {
  let parsed;
  try {
    parsed = parseCompactJws(token);
  } catch (err) {
    if (err instanceof TokenRejected) return err.reason;
    throw err;
  }
  const key = parsed.kid === undefined ? undefined : keys.get(parsed.kid);
  if (key === undefined) return 'unknown_kid';
  if (parsed.alg !== key.alg) return 'alg_not_allowed';
  return key.verify(parsed.signingInput, parsed.signature) ? 'ok' : 'bad_signature';
}

function hmacForge(header: unknown, secret: string | Uint8Array): string {
  const input = `${b64(header)}.${b64(CLAIMS)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function withSignature(token: string, sig: Uint8Array): string {
  return `${token.slice(0, token.lastIndexOf('.'))}.${b64(sig)}`;
}

function flipSignatureBit(token: string): string {
  const sig = Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');
  sig[sig.length >> 1] ^= 0x01;
  return withSignature(token, sig);
}

const secret = randomBytes(32);
const pairs = {} as Record<'RS256' | 'ES256' | 'EdDSA', { publicKey: CryptoKey; privateKey: CryptoKey; jwk: JsonWebKey }>;
const keys = new Map<string, VerificationKey>();
const kidFor: Record<JwsAlg, string> = { HS256: 'hs-1', RS256: 'rsa-1', ES256: 'ec-1', EdDSA: 'ed-1' };

beforeAll(async () => {
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    const pair = await generateKeyPair(alg, { extractable: true });
    pairs[alg] = { ...pair, jwk: (await exportJWK(pair.publicKey)) as JsonWebKey };
    keys.set(kidFor[alg], createVerificationKey(kidFor[alg], alg, { jwk: pairs[alg].jwk }));
  }
  keys.set(kidFor.HS256, createVerificationKey(kidFor.HS256, 'HS256', { secret }));
});

async function validToken(alg: JwsAlg): Promise<string> {
  const jwt = new SignJWT(CLAIMS).setProtectedHeader({ alg, kid: kidFor[alg] });
  return alg === 'HS256' ? jwt.sign(secret) : jwt.sign(pairs[alg].privateKey);
}

describe('valid tokens', () => {
  it('supports exactly HS256, RS256, ES256 and EdDSA', () => {
    expect([...SUPPORTED_ALGS]).toEqual(['HS256', 'RS256', 'ES256', 'EdDSA']);
  });

  it.each(['HS256', 'RS256', 'ES256', 'EdDSA'] as const)('%s: verifies, and one flipped signature bit fails', async (alg) => {
    const token = await validToken(alg);
    expect(decide(token, keys)).toBe('ok');
    expect(decide(flipSignatureBit(token), keys)).toBe('bad_signature');
  });

  it('a key never accepts a token signed for another alg, even with its own kid', async () => {
    const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'ES256', kid: kidFor.RS256 }).sign(pairs.ES256.privateKey);
    expect(decide(token, keys)).toBe('alg_not_allowed');
    const parsed = parseCompactJws(token);
    expect(keys.get(kidFor.RS256)!.verify(parsed.signingInput, parsed.signature)).toBe(false);
  });

  it('verify never throws on hostile arguments', () => {
    for (const key of keys.values()) {
      expect(key.verify('a.b', Buffer.alloc(0))).toBe(false);
      expect(key.verify(undefined as unknown as string, null as unknown as Buffer)).toBe(false);
    }
  });
});

describe('key confusion: HS256 token carrying the RSA key kid, HMAC keyed with the public key', () => {
  let variants: [string, string][] = [];
  beforeAll(async () => {
    const spki = await exportSPKI(pairs.RS256.publicKey);
    const pkcs1 = createPublicKey(spki).export({ type: 'pkcs1', format: 'pem' }).toString();
    variants = [
      ['SPKI PEM', spki],
      ['SPKI PEM with a leading newline', `\n${spki}`],
      ['PKCS#1 PEM', pkcs1],
      ['JWK JSON string', JSON.stringify(pairs.RS256.jwk)],
    ];
  });

  it('is alg_not_allowed for the caller and false from the RSA key, for every encoding of the public key', async () => {
    expect(variants).toHaveLength(4);
    const viaJose = await new SignJWT(CLAIMS)
      .setProtectedHeader({ alg: 'HS256', kid: kidFor.RS256 })
      .sign(new TextEncoder().encode(variants[0]![1]));
    for (const token of [viaJose, ...variants.map(([, pub]) => hmacForge({ alg: 'HS256', kid: kidFor.RS256 }, pub))]) {
      expect(decide(token, keys)).toBe('alg_not_allowed');
      const parsed = parseCompactJws(token);
      expect(keys.get(kidFor.RS256)!.verify(parsed.signingInput, parsed.signature)).toBe(false);
    }
  });

  it('even relabelled RS256, the HMAC bytes are not an RSA signature', () => {
    for (const [, pub] of variants) {
      expect(decide(hmacForge({ alg: 'RS256', kid: kidFor.RS256 }, pub), keys)).toBe('bad_signature');
    }
  });
});

describe('forged signatures', () => {
  it('ES256 with 64 zero bytes (psychic signature) is bad_signature', () => {
    const token = `${b64({ alg: 'ES256', kid: kidFor.ES256 })}.${b64(CLAIMS)}.${b64(Buffer.alloc(64))}`;
    expect(decide(token, keys)).toBe('bad_signature');
  });

  it('ES256 with only r or only s zeroed is bad_signature', async () => {
    const token = await validToken('ES256');
    const sig = Buffer.from(token.split('.')[2]!, 'base64url');
    expect(decide(withSignature(token, Buffer.concat([Buffer.alloc(32), sig.subarray(32)])), keys)).toBe('bad_signature');
    expect(decide(withSignature(token, Buffer.concat([sig.subarray(0, 32), Buffer.alloc(32)])), keys)).toBe('bad_signature');
  });

  it('ES256 with a DER-encoded signature (not JOSE r||s) is bad_signature', async () => {
    const token = await validToken('ES256');
    const signingInput = token.slice(0, token.lastIndexOf('.'));
    const pkcs8 = createPrivateKey(await exportPKCS8(pairs.ES256.privateKey));
    const der = sign('sha256', Buffer.from(signingInput), { key: pkcs8, dsaEncoding: 'der' });
    expect(decide(withSignature(token, der), keys)).toBe('bad_signature');
  });

  it('RS256 with an empty third segment is bad_signature', () => {
    expect(decide(`${b64({ alg: 'RS256', kid: kidFor.RS256 })}.${b64(CLAIMS)}.`, keys)).toBe('bad_signature');
  });

  it.each(['HS256', 'RS256', 'ES256', 'EdDSA'] as const)('%s with a 1-byte signature is bad_signature', (alg) => {
    expect(decide(`${b64({ alg, kid: kidFor[alg] })}.${b64(CLAIMS)}.AA`, keys)).toBe('bad_signature');
  });

  it('a 64-byte EdDSA signature of zeros is bad_signature', () => {
    expect(decide(`${b64({ alg: 'EdDSA', kid: kidFor.EdDSA })}.${b64(CLAIMS)}.${b64(Buffer.alloc(64))}`, keys)).toBe('bad_signature');
  });

  it('path-traversal and SQL kids are plain strings that match nothing', async () => {
    for (const kid of ['../../../../dev/null', "' UNION SELECT 'x"]) {
      const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'HS256', kid }).sign(secret);
      expect(decide(token, keys)).toBe('unknown_kid');
    }
  });
});

describe('createVerificationKey refuses unsafe or mismatched material', () => {
  const jwkOf = (k: { export(o: { format: 'jwk' }): JsonWebKey }): JsonWebKey => k.export({ format: 'jwk' });

  it('refuses an empty HS256 secret', () => {
    expect(() => createVerificationKey('k', 'HS256', { secret: new Uint8Array(0) })).toThrow(
      new TypeError('a guard configured with an empty key refuses to start'),
    );
  });

  it('refuses an ES256 key built from a P-384 JWK', async () => {
    const { publicKey } = await generateKeyPair('ES384');
    const jwk = (await exportJWK(publicKey)) as JsonWebKey;
    expect(jwk.crv).toBe('P-384');
    expect(() => createVerificationKey('k', 'ES256', { jwk })).toThrow(TypeError);
  });

  it('refuses an RSA key below 2048 bits', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => createVerificationKey('k', 'RS256', { jwk: jwkOf(publicKey) })).toThrow(TypeError);
  });

  it('refuses material that does not match the alg', () => {
    const ec = jwkOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const x25519 = jwkOf(generateKeyPairSync('x25519').publicKey);
    const ed448 = jwkOf(generateKeyPairSync('ed448').publicKey);
    expect(() => createVerificationKey('k', 'HS256', { jwk: pairs.RS256.jwk })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'HS256', { jwk: { kty: 'oct', k: b64(secret) } })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'RS256', { secret })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'RS256', { jwk: ec })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'ES256', { jwk: pairs.RS256.jwk })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'EdDSA', { jwk: x25519 })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'EdDSA', { jwk: ed448 })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'RS256', { jwk: { ...pairs.RS256.jwk, alg: 'RS512' } })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'RS256', { jwk: { ...pairs.RS256.jwk, use: 'enc' } })).toThrow(TypeError);
    expect(() => createVerificationKey('k', 'HS512' as JwsAlg, { secret })).toThrow(TypeError);
    expect(() => createVerificationKey('', 'HS256', { secret })).toThrow(TypeError);
  });

  it('copies the secret, so mutating the caller buffer later changes nothing', async () => {
    const mine = randomBytes(32);
    const key = createVerificationKey('k', 'HS256', { secret: mine });
    const token = await new SignJWT(CLAIMS).setProtectedHeader({ alg: 'HS256', kid: 'k' }).sign(Buffer.from(mine));
    mine.fill(0);
    expect(decide(token, new Map([['k', key]]))).toBe('ok');
  });

  it('accepts a private JWK but keeps only its public half', async () => {
    const priv = (await exportJWK(pairs.ES256.privateKey)) as JsonWebKey;
    const key = createVerificationKey(kidFor.ES256, 'ES256', { jwk: priv });
    expect(decide(await validToken('ES256'), new Map([[kidFor.ES256, key]]))).toBe('ok');
  });
});
