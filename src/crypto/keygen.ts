import { generateKeyPairSync, randomBytes, type JsonWebKey } from 'node:crypto';
import type { KeyAlg } from '../store/hot/hot-store.js';

/** Fresh key material for an algorithm. The private part is returned as bytes to be sealed. */
export interface GeneratedKey {
  alg: KeyAlg;
  /** HS: the raw secret; asymmetric: the private JWK as UTF-8 JSON. */
  privateMaterial: Buffer;
  publicJwk: JsonWebKey | undefined;
}

/** 32 bytes: the HMAC-SHA-256 output size, the minimum RFC 7518 §3.2 allows. */
export const HS256_SECRET_BYTES = 32;

export function generateKeyMaterial(alg: KeyAlg): GeneratedKey {
  if (alg === 'HS256') return { alg, privateMaterial: randomBytes(HS256_SECRET_BYTES), publicJwk: undefined };
  const pair =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const publicJwk = pair.publicKey.export({ format: 'jwk' });
  const privateJwk = pair.privateKey.export({ format: 'jwk' });
  return { alg, privateMaterial: Buffer.from(JSON.stringify(privateJwk)), publicJwk };
}

/** A readable, sortable, unguessable kid: `<alg>-<yyyymmdd>-<random>`. */
export function newKid(alg: KeyAlg, now = new Date()): string {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '');
  return `${alg.toLowerCase()}-${day}-${randomBytes(4).toString('hex')}`;
}
