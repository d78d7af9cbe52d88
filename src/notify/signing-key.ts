import { open as unseal } from '../crypto/envelope.js';
import type { Kek } from '../crypto/kek.js';
import { InvalidStateError, SetKeyRefusedError } from '../errors.js';
import { signingKeyFrom } from '../guard/sign.js';
import { findActiveKey, getKey, listKeys, type KeyRecord } from '../state/keys.js';
import type { Queryable } from '../store/db.js';
import type { SetSigningKey } from './set.js';

/** Key states whose public key is in the published JWKS (see jwksOf), so receivers can verify. */
const VERIFIABLE = new Set(['staged', 'active', 'retiring']);

/**
 * The key SETs are signed with: `kid`, or the active key. It must be asymmetric (a SET signed with
 * a shared secret proves nothing: whoever holds the secret, the attacker included, could forge
 * it), published (receivers verify against the JWKS) and still hold its private material.
 */
export async function setSigningKey(db: Queryable, kid: string | null): Promise<KeyRecord> {
  const key = kid ? await getKey(db, kid) : await findActiveKey(db);
  if (!key) {
    throw new InvalidStateError('there is no active signing key to sign SETs with', {
      hint: 'generate and publish an asymmetric key (`jwtir keys generate --alg ES256 --publish`) and pass --kid <kid>',
    });
  }
  if (key.alg === 'HS256') {
    const usable = (await listKeys(db)).filter((k) => k.alg !== 'HS256' && k.publishedAt && VERIFIABLE.has(k.state) && k.privateEnc).map((k) => k.kid);
    throw new SetKeyRefusedError(
      `${kid ? 'key' : 'the active key'} ${key.kid} is HS256: a SET signed with a shared secret proves nothing to a receiver (anyone holding the secret, an attacker included, could forge one)`,
      {
        hint: usable.length
          ? `pass --kid with a published asymmetric key (${usable.join(', ')}), or rotate to one: \`jwtir rotate --staged --alg ES256\``
          : 'rotate to an asymmetric key (`jwtir rotate --staged --alg ES256`), or publish one just for SETs (`jwtir keys generate --alg ES256 --publish`) and pass --kid <kid>',
      },
    );
  }
  if (!key.publishedAt || !VERIFIABLE.has(key.state)) {
    throw new InvalidStateError(`key ${key.kid} is ${key.publishedAt ? key.state : 'not published'}, so receivers could not verify SETs it signs`, {
      hint: `publish it first (\`jwtir keys publish\`), or choose a published key with --kid (see \`jwtir keys list\`)`,
    });
  }
  if (!key.privateEnc) throw new InvalidStateError(`key ${key.kid} has no private material left to sign with`, { hint: 'choose another key with --kid' });
  return key;
}

/** The private key, unsealed with the KEK, ready for jose. */
export async function loadSetSigningKey(db: Queryable, kek: Kek, kid: string): Promise<SetSigningKey> {
  const record = await setSigningKey(db, kid);
  return signingKeyFrom(record.kid, record.alg, unseal(kek.key, record.privateEnc!, record.kid)) as SetSigningKey;
}
