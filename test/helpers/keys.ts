import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { open as unseal } from '../../src/crypto/envelope.js';
import { changePolicy, type PolicyDoc } from '../../src/state/policy.js';
import { runOk } from './cli.js';
import { withState } from './state.js';

export type Alg = 'HS256' | 'RS256' | 'ES256' | 'EdDSA';

export interface TestKey {
  kid: string;
  alg: Alg;
  /** HS256: the secret; otherwise the private key (for forging and signing test tokens). */
  secret?: Buffer;
  privateKey?: KeyObject;
  publicKey?: KeyObject;
  publicJwk?: JsonWebKey;
}

/**
 * Generates and publishes one key per algorithm through the real CLI, then reads the private
 * material back (unsealed with the test's KEK) so tests can sign tokens the guard must judge.
 */
export async function publishedKeys(env: Record<string, string>, algs: Alg[] = ['HS256', 'RS256', 'ES256', 'EdDSA']): Promise<Record<Alg, TestKey>> {
  await runOk(['init'], { env });
  for (const alg of algs) await runOk(['keys', 'generate', '--alg', alg, '--publish', '--yes'], { env });
  return withState(env, async (b) => {
    const rows = await b.db.query<{ kid: string; alg: Alg; private_enc: string; public_jwk: JsonWebKey | null }>(
      `SELECT kid, alg, private_enc, public_jwk FROM keys WHERE origin = 'generated' ORDER BY created_at`,
    );
    const kek = Buffer.from(env.JWTIR_KEK!, 'base64');
    const out = {} as Record<Alg, TestKey>;
    for (const r of rows) {
      const material = unseal(kek, r.private_enc, r.kid);
      out[r.alg] =
        r.alg === 'HS256'
          ? { kid: r.kid, alg: r.alg, secret: material }
          : {
              kid: r.kid,
              alg: r.alg,
              privateKey: createPrivateKey({ key: JSON.parse(material.toString()), format: 'jwk' }),
              publicKey: createPublicKey({ key: r.public_jwk!, format: 'jwk' }),
              publicJwk: r.public_jwk!,
            };
    }
    return out;
  });
}

/** Changes the incident policy through the same store API the CLI's runbooks use. */
export async function setPolicy(env: Record<string, string>, change: (doc: PolicyDoc) => PolicyDoc): Promise<number> {
  return withState(env, async (b) => (await changePolicy(b.db, b.hot, change, { actor: 'test' })).version);
}
