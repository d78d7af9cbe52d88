import { createHmac, createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { KeyAlg } from '../store/hot/hot-store.js';

/** A signing key ready for use: HS secret bytes, or an asymmetric private KeyObject. */
export type SigningKey = { kid: string; alg: 'HS256'; secret: Buffer } | { kid: string; alg: Exclude<KeyAlg, 'HS256'>; key: KeyObject };

export function signingKeyFrom(kid: string, alg: KeyAlg, material: Buffer): SigningKey {
  if (alg === 'HS256') return { kid, alg, secret: material };
  const jwk = JSON.parse(material.toString('utf8'));
  return { kid, alg, key: createPrivateKey({ key: jwk, format: 'jwk' }) };
}

/** Produces a compact JWS with the key's kid and pinned alg. */
export function signJwt(key: SigningKey, payload: Record<string, unknown>): string {
  const header = Buffer.from(JSON.stringify({ alg: key.alg, typ: 'JWT', kid: key.kid })).toString('base64url');
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const input = `${header}.${body}`;
  let signature: Buffer;
  if (key.alg === 'HS256') signature = createHmac('sha256', key.secret).update(input).digest();
  else if (key.alg === 'RS256') signature = cryptoSign('sha256', Buffer.from(input), key.key);
  else if (key.alg === 'ES256') signature = cryptoSign('sha256', Buffer.from(input), { key: key.key, dsaEncoding: 'ieee-p1363' });
  else signature = cryptoSign(null, Buffer.from(input), key.key);
  return `${input}.${signature.toString('base64url')}`;
}
