/**
 * One pinned (kid, alg, key) triple. Built once at configuration time so the per-request path is
 * a length check plus a single node:crypto call. A key verifies exactly one alg; comparing the
 * token's header alg to `key.alg` is the caller's job and is what defeats alg-confusion.
 */
import {
  createHmac,
  createPublicKey,
  timingSafeEqual,
  verify as cryptoVerify,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

export type JwsAlg = 'HS256' | 'RS256' | 'ES256' | 'EdDSA';
export const SUPPORTED_ALGS: readonly JwsAlg[] = Object.freeze(['HS256', 'RS256', 'ES256', 'EdDSA'] as const);

export interface VerificationKey {
  readonly kid: string;
  readonly alg: JwsAlg;
  verify(signingInput: string, signature: Buffer): boolean;
}

type KeyMaterial = { secret: Uint8Array } | { jwk: JsonWebKey };

const MIN_RSA_BITS = 2048;

function secretOf(alg: JwsAlg, material: KeyMaterial): Uint8Array {
  if (!('secret' in material) || 'jwk' in material || !(material.secret instanceof Uint8Array)) {
    throw new TypeError(`${alg} needs a shared secret, not a JWK`);
  }
  if (material.secret.length < 1) {
    throw new TypeError('a guard configured with an empty key refuses to start');
  }
  return material.secret;
}

function publicKeyOf(alg: JwsAlg, material: KeyMaterial, kty: string, crv?: string): KeyObject {
  if (!('jwk' in material) || 'secret' in material || typeof material.jwk !== 'object' || material.jwk === null) {
    throw new TypeError(`${alg} needs a public JWK, not a shared secret`);
  }
  const jwk = material.jwk;
  if (jwk.kty !== kty) throw new TypeError(`${alg} needs a JWK with kty ${kty}, got ${String(jwk.kty)}`);
  if (crv !== undefined && jwk.crv !== crv) throw new TypeError(`${alg} needs curve ${crv}, got ${String(jwk.crv)}`);
  // A JWK that declares its own alg or use is a statement by the key owner; honour it.
  if (jwk.alg !== undefined && jwk.alg !== alg) throw new TypeError(`JWK is for ${String(jwk.alg)}, not ${alg}`);
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new TypeError(`JWK use is ${String(jwk.use)}, not sig`);
  // Drop private members so a private JWK handed over by mistake is never kept in memory here.
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...pub } = jwk;
  return createPublicKey({ key: pub, format: 'jwk' });
}

function allZero(buf: Buffer, start: number, end: number): boolean {
  let acc = 0;
  for (let i = start; i < end; i++) acc |= buf[i]!;
  return acc === 0;
}

function makeVerifier(alg: JwsAlg, material: KeyMaterial): (input: string, sig: Buffer) => boolean {
  switch (alg) {
    case 'HS256': {
      // A private copy, so later mutation of the caller's buffer cannot change the key. A raw
      // Buffer, not a KeyObject: createHmac is about 1 µs faster with it on every request.
      const key = Buffer.from(secretOf(alg, material));
      return (input, sig) =>
        sig.length === 32 && timingSafeEqual(createHmac('sha256', key).update(input, 'utf8').digest(), sig);
    }
    case 'RS256': {
      const key = publicKeyOf(alg, material, 'RSA');
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) throw new TypeError(`RSA modulus of ${bits} bits is below ${MIN_RSA_BITS}`);
      const sigLen = Math.ceil(bits / 8);
      return (input, sig) => sig.length === sigLen && cryptoVerify('sha256', Buffer.from(input, 'utf8'), key, sig);
    }
    case 'ES256': {
      const key = { key: publicKeyOf(alg, material, 'EC', 'P-256'), dsaEncoding: 'ieee-p1363' as const };
      // r = 0 or s = 0 is never a valid ECDSA signature; rejecting it up front keeps us safe from
      // any verifier that mishandles it (CVE-2022-21449, "psychic signatures").
      return (input, sig) =>
        sig.length === 64 &&
        !allZero(sig, 0, 32) &&
        !allZero(sig, 32, 64) &&
        cryptoVerify('sha256', Buffer.from(input, 'utf8'), key, sig);
    }
    case 'EdDSA': {
      const key = publicKeyOf(alg, material, 'OKP', 'Ed25519');
      return (input, sig) => sig.length === 64 && cryptoVerify(null, Buffer.from(input, 'utf8'), key, sig);
    }
    default:
      throw new TypeError(`unsupported alg ${String(alg)}`);
  }
}

export function createVerificationKey(kid: string, alg: JwsAlg, material: KeyMaterial): VerificationKey {
  if (typeof kid !== 'string' || kid.length === 0) throw new TypeError('kid must be a non-empty string');
  if (!SUPPORTED_ALGS.includes(alg)) throw new TypeError(`unsupported alg ${String(alg)}`);
  if (typeof material !== 'object' || material === null) throw new TypeError('key material is required');
  const check = makeVerifier(alg, material);
  return Object.freeze({
    kid,
    alg,
    verify(signingInput: string, signature: Buffer): boolean {
      // Never throw on attacker input: a malformed signature is just a failed verification.
      if (typeof signingInput !== 'string' || !Buffer.isBuffer(signature)) return false;
      try {
        return check(signingInput, signature);
      } catch {
        return false;
      }
    },
  });
}
