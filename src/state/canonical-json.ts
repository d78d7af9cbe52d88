import { createRequire } from 'node:module';

// `canonicalize` (RFC 8785 JSON Canonicalization Scheme) ships CommonJS with an ESM-style
// `export default` typing, which NodeNext resolution cannot call; require() gets the function.
const serialize = createRequire(import.meta.url)('canonicalize') as (input: unknown) => string | undefined;

/** RFC 8785 canonical JSON: the exact bytes the audit trail hashes, reproducible by any verifier. */
export function canonicalJson(value: unknown): string {
  const out = serialize(value);
  if (out === undefined) throw new TypeError('value cannot be canonicalized as JSON');
  return out;
}
