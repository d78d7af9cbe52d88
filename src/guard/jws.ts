/**
 * Strict compact-JWS parsing for the guard's hot path. Everything here runs before any key is
 * looked up, so it must be cheap, synchronous (no fetching of keys named by the token) and must
 * reject anything a lenient library might interpret differently from the issuer.
 */
import { isAscii } from 'node:buffer';

export type RejectReason =
  | 'malformed'
  | 'too_large'
  | 'not_jws'
  | 'alg_none'
  | 'alg_not_allowed'
  | 'header_key_forbidden'
  | 'crit_unsupported'
  | 'kid_invalid'
  | 'bad_signature';

export class TokenRejected extends Error {
  readonly reason: RejectReason;
  constructor(reason: RejectReason, detail: string) {
    super(`${reason}: ${detail}`);
    this.name = 'TokenRejected';
    this.reason = reason;
  }
}

/** A compact JWS split and checked, with its signature still encoded (see decodeSignature). */
export interface SplitJws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  alg: string;
  kid: string | undefined;
  /** `header.payload`: checked base64url, so plain ASCII. */
  signingInput: string;
  /** The third segment as sent (non-empty, not yet checked). */
  signatureSegment: string;
}

export interface ParsedJws extends SplitJws {
  signature: Buffer;
}

export const DEFAULT_MAX_TOKEN_BYTES = 8192;

const B64URL = /^[A-Za-z0-9_-]*$/;
// A final character whose unused low bits are set decodes to the same bytes as the canonical one;
// allowing it would let one signature be spelled several ways (defeating per-token rate limits
// and replay caches keyed on the token string).
const CANONICAL_LAST_2 = 'AQgw';
const CANONICAL_LAST_3 = 'AEIMQUYcgkosw048';
// Header keys that ask the verifier to trust a key shipped or referenced by the token itself.
const FORBIDDEN_HEADER_KEYS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
// kid is a lookup key that also ends up in logs and alerts: no control, format (bidi) or lone
// surrogate characters, which legitimately issued kids never contain.
const KID_BAD_CHARS = /[\p{Cc}\p{Cf}\p{Cs}]/u;
const MAX_KID_CHARS = 256;
// fatal: invalid UTF-8 must not be silently replaced; ignoreBOM keeps a BOM so JSON.parse rejects it.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Headers repeat: every token of a key carries the same one. A checked header is remembered by its
// exact segment text, so the per-token work is the payload and the signature only.
const HEADER_CACHE_MAX = 256;
const headerCache = new Map<string, CheckedHeader>();

interface CheckedHeader {
  header: Record<string, unknown>;
  alg: string;
  kid: string | undefined;
}

/** True when `seg` is the one canonical unpadded base64url spelling of some bytes. */
export function isCanonicalBase64url(seg: string): boolean {
  const rem = seg.length % 4;
  if (rem === 1 || !B64URL.test(seg)) return false;
  if (rem === 0) return true;
  return (rem === 2 ? CANONICAL_LAST_2 : CANONICAL_LAST_3).includes(seg.charAt(seg.length - 1));
}

function decodeSegment(seg: string, name: string): Buffer {
  if (!isCanonicalBase64url(seg)) throw new TokenRejected('malformed', `${name} is not canonical unpadded base64url`);
  return Buffer.from(seg, 'base64url');
}

/** The signature bytes of a split token; throws `malformed` for a non-canonical segment. */
export function decodeSignature(signatureSegment: string): Buffer {
  return decodeSegment(signatureSegment, 'signature');
}

function decodeJsonObject(seg: string, name: string): Record<string, unknown> {
  let value: unknown;
  let text: string;
  try {
    const bytes = decodeSegment(seg, name);
    // Almost every token is ASCII, which latin1 decodes exactly and fastest; anything else must be
    // strict UTF-8 (no silent U+FFFD replacement).
    text = isAscii(bytes) ? bytes.toString('latin1') : UTF8.decode(bytes);
    value = JSON.parse(text);
  } catch (err) {
    if (err instanceof TokenRejected) throw err;
    throw new TokenRejected('malformed', `${name} is not UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenRejected('malformed', `${name} is not a JSON object`);
  }
  // JSON.parse keeps the last of duplicate members; a service behind us may keep the first. A
  // token whose meaning depends on the parser ({"sub":"alice","sub":"admin"}) is refused.
  if (topLevelMembers(text) !== keyCount(value)) {
    throw new TokenRejected('malformed', `${name} has duplicate member names`);
  }
  return value as Record<string, unknown>;
}

/** Counts the members of a JSON object text's outermost object (the text is valid JSON). */
function topLevelMembers(text: string): number {
  let depth = 0;
  let members = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Jump to the closing quote: one that is not escaped (preceded by an even run of backslashes).
      let end = text.indexOf('"', i + 1);
      for (;;) {
        if (end < 0) return -1; // unterminated string: not JSON, so never equal to a key count
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x3a && depth === 1) members++;
  }
  return members;
}

/** Own enumerable keys, counted without building the array Object.keys would. */
function keyCount(value: object): number {
  let n = 0;
  for (const k in value) if (Object.hasOwn(value, k)) n++;
  return n;
}

function checkHeader(header: Record<string, unknown>): { alg: string; kid: string | undefined } {
  // A JWE (or a JWS-shaped token carrying enc) must never reach key derivation such as PBES2.
  if (Object.hasOwn(header, 'enc')) throw new TokenRejected('not_jws', 'header has enc');
  const alg = header['alg'];
  if (typeof alg !== 'string') throw new TokenRejected('malformed', 'header alg is not a string');
  if (alg.toLowerCase() === 'none') throw new TokenRejected('alg_none', 'unsecured JWS');
  for (const k of FORBIDDEN_HEADER_KEYS) {
    if (Object.hasOwn(header, k)) throw new TokenRejected('header_key_forbidden', `header has ${k}`);
  }
  // We implement no crit extensions, so any crit (even an empty or malformed one) is unsupported.
  if (Object.hasOwn(header, 'crit')) throw new TokenRejected('crit_unsupported', 'header has crit');
  if (Object.hasOwn(header, 'b64') && header['b64'] !== true) {
    throw new TokenRejected('crit_unsupported', 'unencoded payload (b64) is not supported');
  }
  if (!Object.hasOwn(header, 'kid')) return { alg, kid: undefined };
  const kid = header['kid'];
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_CHARS || KID_BAD_CHARS.test(kid)) {
    throw new TokenRejected('kid_invalid', 'kid must be a 1..256 character printable string');
  }
  return { alg, kid };
}

let lastHeader: { seg: string; checked: CheckedHeader } | undefined;

function headerOf(seg: string): CheckedHeader {
  // Most traffic carries one header (the active key's): compare with the last one before hashing.
  if (lastHeader !== undefined && lastHeader.seg === seg) return lastHeader.checked;
  const known = headerCache.get(seg);
  if (known !== undefined) {
    lastHeader = { seg, checked: known };
    return known;
  }
  const header = decodeJsonObject(seg, 'header');
  const checked = { header: Object.freeze(header), ...checkHeader(header) };
  // Only headers that passed are remembered, and only a bounded number of them: an attacker
  // sending endless distinct headers gets no memory, only a cleared cache.
  if (headerCache.size >= HEADER_CACHE_MAX) headerCache.clear();
  headerCache.set(seg, checked);
  return checked;
}

/**
 * Splits and checks a compact JWS: size, shape, header (cached by its exact text) and payload.
 * The signature stays encoded: an HMAC is compared in its encoded form, which spares decoding.
 */
export function splitCompactJws(token: string, maxBytes = DEFAULT_MAX_TOKEN_BYTES): SplitJws {
  if (typeof token !== 'string') throw new TokenRejected('malformed', 'token is not a string');
  // UTF-16 length never exceeds the UTF-8 byte length, and non-ASCII fails the alphabet check anyway.
  if (token.length > maxBytes) throw new TokenRejected('too_large', `token exceeds ${maxBytes} bytes`);
  const d1 = token.indexOf('.');
  const d2 = d1 < 0 ? -1 : token.indexOf('.', d1 + 1);
  if (d2 < 0 || token.indexOf('.', d2 + 1) >= 0) {
    throw new TokenRejected('not_jws', 'compact JWS has exactly three segments');
  }
  const { header, alg, kid } = headerOf(token.slice(0, d1));
  const payload = decodeJsonObject(token.slice(d1 + 1, d2), 'payload');
  if (d2 === token.length - 1) throw new TokenRejected('bad_signature', 'empty signature');
  return { header, payload, alg, kid, signingInput: token.slice(0, d2), signatureSegment: token.slice(d2 + 1) };
}

/** splitCompactJws plus the decoded signature. */
export function parseCompactJws(token: string, maxBytes = DEFAULT_MAX_TOKEN_BYTES): ParsedJws {
  const split = splitCompactJws(token, maxBytes);
  return { ...split, signature: decodeSignature(split.signatureSegment) };
}
