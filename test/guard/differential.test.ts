/**
 * Differential test: the guard against jose on the same pinned keys, over valid tokens of all
 * four algs and many mutations of them. jose is the reference before incident policy applies,
 * so the guard's state here has no policy: no watermarks, revocations, cutover or fph claims.
 *
 * Agreement means: guard.authorize(token, {}).decision === 'allow' exactly when jose's jwtVerify
 * (kid resolved exactly, its pinned alg the only one allowed, exp required, 30 s tolerance, clock
 * frozen at T) succeeds. Where the guard is deliberately stricter than jose (see STRICTER below),
 * that is not filtered out: each such token is recognised by an independent check in this file,
 * must be denied by the guard with the stated reason, and is counted and printed.
 */
import { createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { beforeAll, afterAll, expect, it } from '@jest/globals';
import { SignJWT, decodeProtectedHeader, exportSPKI, jwtVerify } from 'jose';
import type { Guard, Reason } from '../../src/guard/index.js';
import { publishedKeys, type Alg, type TestKey } from '../helpers/keys.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { guardFor } from '../helpers/state.js';

// ---------------------------------------------------------------------------------------------
// Randomness: seeded (JWTIR_DIFF_SEED=<seed>) so the same claims and mutations are chosen again;
// the keys are generated per run, so a disagreement is also printed with its token.
// ---------------------------------------------------------------------------------------------

const SEED = Number(process.env.JWTIR_DIFF_SEED ?? 0x5eed1e55);
let rngState = SEED >>> 0;
/** mulberry32 */
function rand(): number {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const chance = (p: number) => rand() < p;
const word = (n = int(1, 12)) => Array.from({ length: n }, () => pick('abcdefghijklmnopqrstuvwxyz0123456789-_.'.split(''))).join('');

// ---------------------------------------------------------------------------------------------
// Token building
// ---------------------------------------------------------------------------------------------

const T = 1_760_000_000;
const TOL = 30;
const DAY = 86_400;
const ALGS: readonly Alg[] = ['HS256', 'RS256', 'ES256', 'EdDSA'];
const B64URL_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const b64 = (v: unknown): string =>
  (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))).toString('base64url');
const unb64 = (seg: string): Buffer => Buffer.from(seg, 'base64url');
const segments = (token: string) => token.split('.');

type Signer = (signingInput: string) => Uint8Array;
const hmac =
  (key: string | Uint8Array): Signer =>
  (input) =>
    createHmac('sha256', key).update(input).digest();
const asym =
  (alg: Exclude<Alg, 'HS256'>, privateKey: KeyObject): Signer =>
  (input) =>
    alg === 'RS256'
      ? cryptoSign('sha256', Buffer.from(input), privateKey)
      : alg === 'ES256'
        ? cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : cryptoSign(null, Buffer.from(input), privateKey);
const signerOf = (k: TestKey): Signer => (k.alg === 'HS256' ? hmac(k.secret!) : asym(k.alg, k.privateKey!));

/** Signs already-encoded header and payload segments (so they can be spelled any way). */
const signSegments = (h: string, p: string, signer: Signer) => `${h}.${p}.${b64(signer(`${h}.${p}`))}`;
/** Signs a header and payload given as objects or as JSON text taken verbatim. */
const signRaw = (header: object | string, payload: object | string, signer: Signer) => signSegments(b64(header), b64(payload), signer);

const headerOf = (token: string) => JSON.parse(unb64(segments(token)[0]!).toString()) as Record<string, unknown>;
const payloadOf = (token: string) => JSON.parse(unb64(segments(token)[1]!).toString()) as Record<string, unknown>;

/** Random claims valid at T: exp in the future, sometimes nbf and iat, all within the default 30-day lifetime. */
function randomClaims(): Record<string, unknown> {
  const c: Record<string, unknown> = { sub: chance(0.9) ? `user-${word()}` : undefined };
  if (chance(0.7)) c.iat = T - int(0, 7 * DAY);
  if (chance(0.1)) c.iat = T + int(0, TOL); // a little clock skew
  if (chance(0.3)) c.nbf = T - int(-TOL, DAY);
  c.exp = chance(0.05) ? T - int(0, TOL - 1) : T + int(1, 7 * DAY); // some expired within the tolerance
  if (chance(0.05)) c.exp = (c.exp as number) + 0.5;
  if (chance(0.5)) c.jti = word(16);
  if (chance(0.4)) c.sid = `s-${word(10)}`;
  if (chance(0.3)) c.iss = `https://${word(6)}.example`;
  if (chance(0.3)) c.aud = chance(0.5) ? word() : [word(), word()];
  if (chance(0.5)) c.roles = Array.from({ length: int(0, 3) }, () => pick(['admin', 'staff', 'customer', 'ü-ñ-☃', '']));
  if (chance(0.2)) c.meta = { n: int(-1e6, 1e6), f: rand(), b: chance(0.5), z: null, nested: { s: word() } };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}

/** A valid token through jose's SignJWT (the reference builder), with the published key. */
function validToken(k: TestKey): Promise<string> {
  const header: Record<string, unknown> = { alg: k.alg, kid: k.kid };
  if (chance(0.5)) header.typ = 'JWT';
  const jwt = new SignJWT(randomClaims()).setProtectedHeader(header as { alg: string });
  return k.alg === 'HS256' ? jwt.sign(k.secret!) : jwt.sign(k.privateKey!);
}

/** Flips one random bit of the decoded bytes of segment i and re-encodes it canonically. */
function flipBit(token: string, i: number): string {
  const s = segments(token);
  const bytes = unb64(s[i]!);
  if (bytes.length === 0) return token;
  bytes[int(0, bytes.length - 1)] ^= 1 << int(0, 7);
  s[i] = b64(bytes);
  return s.join('.');
}

/** Replaces one character of segment i with another base64url character (may only touch unused trailing bits). */
function flipChar(token: string, i: number): string {
  const s = segments(token);
  const seg = s[i]!;
  if (seg.length === 0) return token;
  const at = chance(0.5) ? seg.length - 1 : int(0, seg.length - 1);
  let ch = pick(B64URL_CHARS.split(''));
  while (ch === seg[at]) ch = pick(B64URL_CHARS.split(''));
  s[i] = seg.slice(0, at) + ch + seg.slice(at + 1);
  return s.join('.');
}

/** The smallest change to the last character that keeps the decoded bytes: sets unused low bits. */
function nonCanonicalTail(seg: string): string | undefined {
  const rem = seg.length % 4;
  if (rem === 0) return undefined;
  const unused = rem === 2 ? 4 : 2; // bits of the last character that carry no data
  const idx = B64URL_CHARS.indexOf(seg.at(-1)!);
  return seg.slice(0, -1) + B64URL_CHARS[idx | (1 << int(0, unused - 1))];
}

const paddingOf = (seg: string) => '='.repeat((4 - (seg.length % 4)) % 4);

// ---------------------------------------------------------------------------------------------
// What the guard deliberately does more strictly than jose (an independent check per token)
// ---------------------------------------------------------------------------------------------

interface Stricter {
  /** Why the guard is right to deny what jose accepts. */
  why: string;
  /** The guard's reason for it. */
  reason: Reason;
  applies: (token: string) => boolean;
}

const isCanonicalB64url = (seg: string) => /^[A-Za-z0-9_-]*$/.test(seg) && unb64(seg).toString('base64url') === seg;
/** Counts the member names of the outermost object: strings at depth 1 followed by a colon. */
function topLevelNameCount(text: string): number {
  let depth = 0;
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && /^\s*:/.test(text.slice(j + 1, j + 40))) count++;
      i = j;
    } else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
  }
  return count;
}

const tryJson = (seg: string): Record<string, unknown> | undefined => {
  try {
    const v = JSON.parse(unb64(seg).toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
};

const STRICTER: Record<string, Stricter> = {
  'non-canonical base64url': {
    why: 'RFC 7515 §2/§7.1: segments are unpadded base64url with no whitespace or other characters; the guard also refuses non-zero unused bits so one token has one spelling. jose decodes with atob, which strips whitespace, accepts padding and ignores unused bits',
    reason: 'malformed',
    applies: (token) => segments(token).length === 3 && !segments(token).every(isCanonicalB64url),
  },
  'BOM before the JSON': {
    why: 'RFC 8259 §8.1: a JWS is not JSON text with a BOM; jose\'s TextDecoder silently drops a leading BOM',
    reason: 'malformed',
    applies: (token) => segments(token).slice(0, 2).some((seg) => unb64(seg).subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]))),
  },
  'crit or b64 in the header': {
    why: 'the guard implements no JWS extensions (DESIGN step 2: unknown crit rejected); jose understands crit ["b64"] and ignores b64 without crit',
    reason: 'crit_unsupported',
    applies: (token) => {
      const h = tryJson(segments(token)[0] ?? '');
      return h !== undefined && (Object.hasOwn(h, 'crit') || (Object.hasOwn(h, 'b64') && h.b64 !== true));
    },
  },
  'a key named or shipped by the header': {
    why: 'DESIGN step 2: header jwk/jku/x5u/x5c never used; the guard refuses them outright, jose (given a key) ignores them',
    reason: 'header_key_forbidden',
    applies: (token) => {
      const h = tryJson(segments(token)[0] ?? '');
      return h !== undefined && ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'].some((k) => Object.hasOwn(h, k));
    },
  },
  'a registered claim of the wrong type': {
    why: 'RFC 7519 §4.1: sub, iss, jti are strings, aud a string or strings, exp/nbf/iat numbers (the guard types sid and fph too); jose checks only the NumericDates unless asked for a value',
    reason: 'claims_invalid',
    applies: (token) => {
      const c = tryJson(segments(token)[1] ?? '');
      const str = (v: unknown) => v === undefined || typeof v === 'string';
      return c !== undefined && !(str(c.sub) && str(c.iss) && str(c.jti) && str(c.sid) && str(c.fph) && (str(c.aud) || (Array.isArray(c.aud) && c.aud.every((a) => typeof a === 'string'))));
    },
  },
  'duplicate member names': {
    why: 'RFC 7515 §4 / RFC 7519 §4: a parser must reject duplicate names or keep the last; jose keeps the last, a first-member parser behind the gateway would read another token, so the guard rejects them',
    reason: 'malformed',
    applies: (token) =>
      segments(token)
        .slice(0, 2)
        .some((seg) => {
          const text = unb64(seg).toString('utf8');
          const parsed = (() => {
            try {
              return JSON.parse(text) as unknown;
            } catch {
              return undefined;
            }
          })();
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return false;
          // An independent count: member names at depth 1 of the (valid) JSON text; more than the
          // parsed object's keys means some name appeared twice.
          return topLevelNameCount(text) > Object.keys(parsed).length;
        }),
  },
  'a NumericDate that is infinite, negative or past 9,007,199,254': {
    why: 'JSON 1e400 parses to Infinity, which jose compares like a number (exp Infinity never expires, nbf -Infinity is always valid); the guard bounds NumericDates so arithmetic on them stays exact',
    reason: 'claims_invalid',
    applies: (token) => {
      const c = tryJson(segments(token)[1] ?? '');
      return c !== undefined && ['exp', 'nbf', 'iat'].some((k) => typeof c[k] === 'number' && !((c[k] as number) >= 0 && (c[k] as number) <= 9_007_199_254));
    },
  },
};

/** The reasons the guard may give for a token jose accepts; empty when the two must agree. */
const stricterFor = (token: string) => Object.entries(STRICTER).filter(([, s]) => s.applies(token));

// ---------------------------------------------------------------------------------------------

const [c] = backendCases('differential', ['postgres+redis']);

describeBackend(c!, 'the guard agrees with jose', () => {
  let keys: Record<Alg, TestKey>;
  let guard: Guard;
  /** kid → its pinned alg and verification key, the same keys the guard loaded. */
  let pinned: Map<string, { alg: Alg; key: Uint8Array | KeyObject }>;
  const currentDate = new Date(T * 1000);

  beforeAll(async () => {
    keys = await publishedKeys(c!.env);
    pinned = new Map(Object.values(keys).map((k) => [k.kid, { alg: k.alg, key: k.alg === 'HS256' ? k.secret! : k.publicKey! }]));
    guard = await guardFor(c!.env, { now: () => T * 1000, pollIntervalMs: 600_000, staleAfterMs: 600_000, flushIntervalMs: 600_000 });
  });
  afterAll(async () => {
    await guard?.close();
  });

  /** jose's verdict: the header kid resolved exactly against the same pinned keys, its alg the only one allowed. */
  async function joseAccepts(token: string): Promise<boolean> {
    try {
      const { kid } = decodeProtectedHeader(token);
      const entry = typeof kid === 'string' ? pinned.get(kid) : undefined;
      if (!entry) return false; // unknown (or no) kid: nothing to verify with
      await jwtVerify(token, entry.key, { algorithms: [entry.alg], requiredClaims: ['exp'], clockTolerance: TOL, currentDate });
      return true;
    } catch {
      return false;
    }
  }

  it('on at least 10,000 valid and mutated tokens of all four algs', async () => {
    const spkiPem = await exportSPKI(keys.RS256.publicKey!);
    const attackerRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kinds = new Map<string, string[]>();
    const add = (kind: string, token: string) => {
      if (!kinds.has(kind)) kinds.set(kind, []);
      kinds.get(kind)!.push(token);
    };

    const PER_ALG = 250;
    for (const alg of ALGS) {
      const k = keys[alg];
      const sign = signerOf(k);
      const others = ALGS.filter((a) => a !== alg).map((a) => keys[a]);
      for (let n = 0; n < PER_ALG; n++) {
        const token = await validToken(k);
        add('valid', token);
        const [h, p, s] = segments(token) as [string, string, string];
        const header = headerOf(token);
        const claims = payloadOf(token);
        const resign = (hdr: object | string, pl: object | string) => signRaw(hdr, pl, sign);

        // Bit and character flips in each segment.
        for (const i of [0, 1, 2]) add(`bit flip in segment ${i}`, flipBit(token, i));
        add(`char flip in segment ${int(0, 2)}`, flipChar(token, int(0, 2)));

        // Header alg swaps (signature kept), and alg-confusion forgeries (re-signed).
        add('alg swap', signSegments(b64({ ...header, alg: pick(['HS256', 'RS256', 'ES256', 'EdDSA', 'HS384', 'HS512', 'RS512', 'PS256', 'ES384', 'Ed25519', 'none', 'hs256'].filter((a) => a !== alg)) }), p, () => unb64(s)));
        if (alg === 'HS256') add('alg confusion: RS256 forged with an attacker key', signRaw({ ...header, alg: 'RS256' }, claims, asym('RS256', attackerRsa.privateKey)));
        else add('alg confusion: HS256 keyed with the public key', signRaw({ ...header, alg: 'HS256' }, claims, hmac(pick([spkiPem, JSON.stringify(k.publicJwk), `\n${spkiPem}`]))));
        if (chance(0.2)) add('alg none', `${b64({ ...header, alg: pick(['none', 'None', 'NONE']) })}.${p}.`);

        // kid swaps: another published kid with the signature kept, or its alg but our key; unknown and removed kids.
        const other = pick(others);
        add('kid swap (signature kept)', signSegments(b64({ ...header, kid: other.kid }), p, () => unb64(s)));
        add('kid swap (re-signed with the wrong key)', resign({ ...header, alg: other.alg, kid: other.kid }, claims));
        add('unknown kid (re-signed)', resign({ ...header, kid: pick([k.kid.toUpperCase(), `${k.kid} `, ` ${k.kid}`, k.kid.slice(0, -1), `${k.kid}\u200b`]) }, claims));
        if (chance(0.3)) {
          const { kid: _kid, ...noKid } = header;
          add('kid removed (re-signed)', resign(noKid, claims));
        }

        // Claims: exp removed, exp in the past, nbf in the future beyond the tolerance; and the boundaries.
        const { exp: _exp, ...noExp } = claims;
        add('exp removed (re-signed)', resign(header, noExp));
        add('exp in the past (re-signed)', resign(header, { ...claims, exp: T - TOL - int(0, 30 * DAY) }));
        add('nbf beyond the tolerance (re-signed)', resign(header, { ...claims, nbf: T + TOL + int(1, DAY) }));
        if (chance(0.25)) add('exp at the boundary (re-signed)', resign(header, { ...claims, exp: T - TOL + int(0, 1) }));
        if (chance(0.25)) add('nbf at the boundary (re-signed)', resign(header, { ...claims, nbf: T + TOL + int(0, 1) }));

        // Truncation, appended padding, whitespace, swapped segments.
        const cut = int(0, 2);
        const cutSegs = [h, p, s];
        cutSegs[cut] = cutSegs[cut]!.slice(0, int(0, cutSegs[cut]!.length - 1));
        add(`truncated segment ${cut}`, cutSegs.join('.'));
        if (chance(0.3)) add('truncated token', token.slice(0, int(1, token.length - 1)));
        add('appended =', `${token}=`);
        add('signature padded with =', `${h}.${p}.${s}${paddingOf(s) || '===='}`);
        const ws = pick([' ', '\n', '\t', '\r\n']);
        const wsAt = int(0, s.length);
        add('whitespace in the signature', `${h}.${p}.${s.slice(0, wsAt)}${ws}${s.slice(wsAt)}`);
        if (chance(0.3)) add('whitespace around the token', pick([` ${token}`, `${token}\n`, `\t${token} `]));
        add('swapped segments', pick([`${p}.${h}.${s}`, `${h}.${s}.${p}`, `${s}.${p}.${h}`]));
        if (chance(0.2)) add('extra segment', pick([`${token}.`, `${token}.${s}`, `${h}.${p}..${s}`, `${h}..${p}.${s}`]));

        // Re-signed re-encodings: reordered and re-spaced JSON (same meaning), padded or non-canonical segments, a BOM.
        const reordered = Object.fromEntries(Object.entries(claims).reverse());
        add('reordered payload JSON (re-signed)', resign(header, reordered));
        if (chance(0.3)) add('re-spaced JSON (re-signed)', resign(JSON.stringify(header, null, 1), JSON.stringify(claims, null, 2)));
        if (chance(0.3)) add('escaped member names (re-signed)', resign(JSON.stringify(header).replace('"alg"', '"\\u0061lg"'), JSON.stringify(claims).replace('"exp"', '"\\u0065xp"')));
        const i = int(0, 1);
        const seg = [h, p][i]!;
        const tail = nonCanonicalTail(seg);
        if (tail) add(`non-canonical tail bits in segment ${i} (re-signed)`, i === 0 ? signSegments(tail, p, sign) : signSegments(h, tail, sign));
        if (paddingOf(seg)) add(`padded segment ${i} (re-signed)`, i === 0 ? signSegments(h + paddingOf(h), p, sign) : signSegments(h, p + paddingOf(p), sign));
        if (chance(0.2)) add('BOM before the header JSON (re-signed)', signSegments(b64(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(header))])), p, sign));

        // Header members jose treats per its own rules (re-signed with the right key).
        if (chance(0.2)) add('crit / b64 (re-signed)', resign({ ...header, ...pick([{ crit: ['b64'], b64: true }, { b64: false }, { b64: true }, { crit: ['exp'], exp: 1 }, { crit: [] }]) }, claims));
        // Claims whose JSON is unusual: wrong types, infinite or out-of-range NumericDates, duplicate
        // members, __proto__, invalid UTF-8 (all re-signed with the right key).
        if (chance(0.3)) add('claim of the wrong type (re-signed)', resign(header, { ...claims, ...pick([{ sub: 42 }, { iss: 7 }, { aud: [1] }, { jti: { id: 'x' } }, { sid: ['s'] }, { exp: String(claims.exp) }, { iat: true }]) }));
        if (chance(0.2)) {
          const [claim, value] = pick([['exp', '1e400'], ['nbf', '-1e400'], ['iat', '1e400'], ['exp', '1e15'], ['iat', '-1'], ['nbf', '-5']] as const);
          add('NumericDate out of range (re-signed)', resign(header, JSON.stringify({ ...claims, [claim]: 0 }).replace(`"${claim}":0`, `"${claim}":${value}`)));
        }
        if (chance(0.2)) {
          const body = JSON.stringify(claims).slice(1);
          add('duplicate members (re-signed)', pick([
            resign(`{"alg":"none",${JSON.stringify(header).slice(1)}`, claims),
            resign(`{"kid":"no-such-kid",${JSON.stringify(header).slice(1)}`, claims),
            resign(header, `{"exp":${T - DAY},${body}`),
            resign(header, `{"sub":"admin",${body}`),
          ]));
        }
        if (chance(0.1)) add('__proto__ smuggling (re-signed)', resign(header, `{"__proto__":{"exp":${T + DAY}},${JSON.stringify(noExp).slice(1)}`.replace(',}', '}')));
        if (chance(0.1)) add('invalid UTF-8 in the payload (re-signed)', signSegments(h, b64(Buffer.concat([Buffer.from('{"sub":"'), Buffer.from([0xc3, 0x28]), Buffer.from(`","exp":${T + DAY}}`)])), sign));
        if (chance(0.1)) add('header jwk / jku (re-signed)', resign({ ...header, ...pick([{ jku: 'https://attacker.example/jwks' }, { x5u: 'https://attacker.example/x5u' }, { jwk: { kty: 'oct', k: 'AA' } }]) }, claims));
      }
    }

    // Judge every token both ways.
    const all = [...kinds.entries()].flatMap(([kind, tokens]) => tokens.map((token) => ({ kind, token })));
    const disagreements: Array<{ kind: string; token: string; guard: string; jose: boolean }> = [];
    const stricterSeen = new Map<string, number>();
    const perKind = new Map<string, { n: number; allowed: number }>();
    let agreed = 0;
    // authorizeAsync (signatures on the thread pool) must answer exactly as authorize does. The
    // sync call sees each token first, so the async one verifies it again rather than from cache.
    const asyncDiffers: string[] = [];
    for (const { kind, token } of all) {
      const verdict = guard.authorize(token, {});
      const pooled = await guard.authorizeAsync(token, {});
      if (pooled.decision !== verdict.decision || pooled.reasons.join() !== verdict.reasons.join()) asyncDiffers.push(`[${kind}] ${verdict.reasons} vs ${pooled.reasons}`);
      const guardAllows = verdict.decision === 'allow';
      const jose = await joseAccepts(token);
      const stricter = jose ? stricterFor(token) : [];
      const expected = jose && stricter.length === 0;
      const ok = guardAllows === expected && (stricter.length === 0 || stricter.some(([, s]) => verdict.reasons[0] === s.reason));
      if (ok) agreed++;
      else disagreements.push({ kind, token, guard: `${verdict.decision} ${verdict.reasons.join(',')}`, jose });
      for (const [name] of stricter) stricterSeen.set(name, (stricterSeen.get(name) ?? 0) + 1);
      const row = perKind.get(kind) ?? { n: 0, allowed: 0 };
      row.n++;
      if (guardAllows) row.allowed++;
      perKind.set(kind, row);
    }

    const valid = kinds.get('valid')!.length;
    console.log(
      [
        `differential (seed ${SEED}): ${all.length} tokens, ${valid} valid, ${all.length - valid} mutated; agreement ${agreed}/${all.length}; disagreements ${disagreements.length}`,
        ...[...perKind.entries()].sort().map(([kind, r]) => `  ${kind.padEnd(52)} ${String(r.n).padStart(5)} tokens, ${String(r.allowed).padStart(5)} allowed`),
        'jose accepted, the guard denied by design:',
        ...[...stricterSeen.entries()].map(([name, n]) => `  ${name.padEnd(52)} ${String(n).padStart(5)}  (${STRICTER[name]!.reason}: ${STRICTER[name]!.why})`),
        ...disagreements.slice(0, 20).map((d) => `  DISAGREE [${d.kind}] guard=${d.guard} jose=${d.jose ? 'accept' : 'reject'} ${d.token.slice(0, 200)}`),
      ].join('\n'),
    );

    expect(valid).toBeGreaterThanOrEqual(1000);
    expect(all.length).toBeGreaterThanOrEqual(10_000);
    // Every valid token is accepted by both (a sanity check on the generator itself).
    expect(perKind.get('valid')).toEqual({ n: valid, allowed: valid });
    expect(disagreements).toEqual([]);
    expect(asyncDiffers).toEqual([]);
  });
});
