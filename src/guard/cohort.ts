/**
 * A user's stable cohort, 0..99: FNV-1a (32-bit) over the UTF-8 bytes of `sub`, modulo 100.
 * Stable across processes, releases and languages (documented so a service can compute it too),
 * and cheap enough to run on every request.
 */
export function cohortOf(sub: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < sub.length; i++) {
    const c = sub.charCodeAt(i);
    // An ASCII character is its own UTF-8 byte; anything else takes the byte-exact path.
    if (c > 0x7f) return cohortOfBytes(sub);
    hash = Math.imul(hash ^ c, 0x01000193) >>> 0;
  }
  return hash % 100;
}

function cohortOfBytes(sub: string): number {
  let hash = 0x811c9dc5;
  const bytes = Buffer.from(sub, 'utf8');
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193) >>> 0;
  return hash % 100;
}
