/**
 * Hostile tokens against a real guard on real state: every token here is built with real
 * builders (jose, node:crypto) and the guard's exact decision and reasons are asserted.
 * The clock is frozen at T so every boundary is exact.
 */
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type JsonWebKey, type KeyObject } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { CompactEncrypt, SignJWT, exportJWK, exportSPKI, type JWTPayload } from 'jose';
import { seal } from '../../src/crypto/envelope.js';
import { createVerificationKey } from '../../src/guard/verification-key.js';
import { type Guard, type GuardEvent, type GuardOptions, type RequestContext, type Verdict } from '../../src/guard/index.js';
import type { PublishedKey } from '../../src/store/hot/hot-store.js';
import type { Backends } from '../../src/store/open.js';
import { runCli } from '../helpers/cli.js';
import { publishedKeys, type Alg, type TestKey } from '../helpers/keys.js';
import { backendCases, describeBackend, freshCase } from '../helpers/services.js';
import { guardFor, openState, withState } from '../helpers/state.js';

// ---------------------------------------------------------------------------------------------
// Token building
// ---------------------------------------------------------------------------------------------

/** The frozen clock, epoch seconds. */
const T = 1_760_000_000;
const TOL = 30;

/** base64url of bytes, of a string taken verbatim (hand-spelled JSON), or of JSON.stringify(value). */
const b64 = (v: unknown): string =>
  (v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))).toString('base64url');

type Signer = (signingInput: string) => Uint8Array;

/** A compact JWS from a header and payload (objects, or JSON text spelled by hand) and a signer. */
function jws(header: object | string, payload: object | string, signer: Signer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${b64(signer(input))}`;
}

/** HMAC-SHA256 keyed with anything an attacker might pick (a PEM, a JWK's JSON, '' ...). */
const hmac =
  (key: string | Uint8Array): Signer =>
  (input) =>
    createHmac('sha256', key).update(input).digest();

/** The JOSE signature of the given alg with a private key (ES256 as r||s, as RFC 7518 wants). */
const asym =
  (alg: Exclude<Alg, 'HS256'>, privateKey: KeyObject): Signer =>
  (input) =>
    alg === 'RS256'
      ? cryptoSign('sha256', Buffer.from(input), privateKey)
      : alg === 'ES256'
        ? cryptoSign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : cryptoSign(null, Buffer.from(input), privateKey);

/** The legitimate signer of a published key. */
const signerOf = (k: TestKey): Signer => (k.alg === 'HS256' ? hmac(k.secret!) : asym(k.alg, k.privateKey!));

/** The token with its signature segment replaced by `seg` (already encoded, may be empty). */
const withSigSegment = (token: string, seg: string): string => `${token.slice(0, token.lastIndexOf('.'))}.${seg}`;

/** A correctly signed token through jose's SignJWT with the published key of `k`. */
function signJwt(k: TestKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: k.alg, kid: k.kid, ...header });
  return k.alg === 'HS256' ? jwt.sign(k.secret!) : jwt.sign(k.privateKey!);
}

const sha256hex = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A claims set valid at T: issued a minute ago, expires in ten minutes. */
const fresh = (extra: Record<string, unknown> = {}) => ({ sub: 'user-1', iat: T - 60, exp: T + 600, ...extra });

/** What a verdict says, reduced to what these tests pin. */
const decided = (v: Verdict) => ({ decision: v.decision, reasons: v.reasons });
const DENY = (...reasons: string[]) => ({ decision: 'deny', reasons });
const ALLOW = { decision: 'allow', reasons: [] };

/**
 * Runs `fn` with globalThis.fetch replaced by a recording spy and net.Socket#connect wrapped,
 * waits a little for anything asynchronous it may have started, restores both, and reports.
 */
async function withoutNetwork<R>(fn: () => R): Promise<{ result: R; fetches: unknown[][]; connects: unknown[][] }> {
  const fetches: unknown[][] = [];
  const connects: unknown[][] = [];
  const realFetch = globalThis.fetch;
  const realConnect = net.Socket.prototype.connect;
  globalThis.fetch = (async (...args: unknown[]) => {
    fetches.push(args);
    throw new Error('network disabled in this test');
  }) as typeof fetch;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    connects.push(args);
    return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof realConnect;
  try {
    const result = fn();
    await new Promise((r) => setTimeout(r, 100));
    return { result, fetches, connects };
  } finally {
    globalThis.fetch = realFetch;
    net.Socket.prototype.connect = realConnect;
  }
}

/** A published-key row as the hot store carries it, for entries the CLI would never write. */
function rawPublishedKey(kid: string, alg: Alg, material: { publicJwk?: JsonWebKey; sealedSecret?: string }): PublishedKey {
  return { kid, alg, state: 'active', kidless: false, verifyUntil: null, compromised: false, compromisedAt: null, activatedAt: T * 1000, retiredAt: null, ...material };
}

// ---------------------------------------------------------------------------------------------

for (const c of backendCases('hostile', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'the guard against hostile tokens', () => {
    let keys: Record<Alg, TestKey>;
    let guard: Guard;
    // The embedded database is held by one process: there the guard and the test share one opening.
    let shared: Backends | undefined;
    const events: GuardEvent[] = [];
    const alerts = () => events.flatMap((e) => (e.type === 'alert' ? [e.alert] : []));
    // No polling or flushing in the background (the network checks below count every new socket),
    // and a long staleness window so the un-polled replica still counts as current.
    const quiet: GuardOptions = { now: () => T * 1000, pollIntervalMs: 600_000, staleAfterMs: 600_000, flushIntervalMs: 600_000 };
    const openGuard = (extra: GuardOptions = {}) => guardFor(c.env, { ...quiet, ...(shared ? { backends: shared } : {}), ...extra });
    const change = (fn: (b: Backends) => Promise<void>) => (shared ? fn(shared) : withState(c.env, fn));
    const authorize = (token: string, ctx: RequestContext = {}) => decided(guard.authorize(token, ctx));
    // A second, separate state for key entries the CLI would never write (planted straight into
    // the hot store), so they never reach this suite's guard. Each test replaces its key set.
    const planted = freshCase(c.name, 'hostile_planted');

    beforeAll(async () => {
      keys = await publishedKeys(c.env);
      // Only now, with every CLI call done, may this process hold the embedded database.
      if (c.name === 'embedded') shared = await openState(c.env);
      guard = await openGuard({ onEvent: (e) => events.push(e) });
    });
    afterAll(async () => {
      await guard?.close();
      await shared?.close();
    });

    it('accepts a legitimate token of every alg (the baseline the rejections below differ from)', async () => {
      for (const k of Object.values(keys)) expect(authorize(await signJwt(k, fresh()))).toEqual(ALLOW);
    });

    // --- alg none ------------------------------------------------------------------------------

    it.each(['none', 'None', 'NONE', 'nOnE'])('rejects alg %s with an empty signature', (alg) => {
      const token = `${b64({ alg, kid: keys.HS256.kid, typ: 'JWT' })}.${b64(fresh())}.`;
      expect(authorize(token)).toEqual(DENY('alg_none'));
      // Also without a kid (the classic form) and with no key configured for kid-less tokens.
      expect(authorize(`${b64({ alg })}.${b64(fresh())}.`)).toEqual(DENY('alg_none'));
    });

    it('a guard configured with an empty key refuses to start (and the CLI refuses to import one)', async () => {
      expect(() => createVerificationKey('empty', 'HS256', { secret: new Uint8Array(0) })).toThrow(/empty key refuses to start/);
      const imported = await runCli(['keys', 'import', '--kid', 'empty', '--alg', 'HS256', '--secret-env', 'EMPTY_SECRET'], {
        env: { ...planted.env, EMPTY_SECRET: '' },
      });
      expect(imported.code).not.toBe(0);
      expect(imported.stderr).toMatch(/secret is empty/);
      // Planted behind the CLI's back, straight into the hot store the guard loads.
      const kek = Buffer.from(planted.env.JWTIR_KEK!, 'base64');
      await withState(planted.env, (b) => b.hot.publishKeys([rawPublishedKey('empty', 'HS256', { sealedSecret: seal(kek, new Uint8Array(0), 'empty') })]));
      await expect(guardFor(planted.env, quiet)).rejects.toThrow(/empty key refuses to start/);
    });

    // --- key confusion -------------------------------------------------------------------------

    it('rejects HS256 tokens carrying the RSA kid, HMAC-keyed with every spelling of the RSA public key', async () => {
      const rsa = keys.RS256;
      const spki = await exportSPKI(rsa.publicKey!);
      const pkcs1 = rsa.publicKey!.export({ type: 'pkcs1', format: 'pem' }).toString();
      const spellings: Record<string, string> = {
        'SPKI PEM': spki,
        'SPKI PEM with a leading newline': `\n${spki}`,
        'PKCS#1 PEM': pkcs1,
        'JWK JSON': JSON.stringify(rsa.publicJwk),
      };
      for (const [name, pub] of Object.entries(spellings)) {
        const token = jws({ alg: 'HS256', kid: rsa.kid, typ: 'JWT' }, fresh(), hmac(pub));
        expect([name, authorize(token)]).toEqual([name, DENY('alg_mismatch')]);
        // Relabelled RS256 the HMAC bytes are not an RSA signature either.
        expect([name, authorize(jws({ alg: 'RS256', kid: rsa.kid }, fresh(), hmac(pub)))]).toEqual([name, DENY('bad_signature')]);
      }
    });

    it('rejects an HS256 token HMAC-keyed with the JSON of an RSA public JWK that has no alg', async () => {
      const { alg: _alg, ...noAlg } = keys.RS256.publicJwk as JsonWebKey & { alg?: string };
      expect(noAlg).not.toHaveProperty('alg');
      // The entry that carries this JWK verifies RS256 only; as an HS256 entry it cannot be built.
      expect(() => createVerificationKey('rsa-no-alg', 'HS256', { jwk: noAlg } as never)).toThrow(/needs a shared secret/);
      expect(createVerificationKey('rsa-no-alg', 'RS256', { jwk: noAlg }).alg).toBe('RS256');
      const token = jws({ alg: 'HS256', kid: keys.RS256.kid }, fresh(), hmac(JSON.stringify(noAlg)));
      expect(authorize(token)).toEqual(DENY('alg_mismatch'));
    });

    it('an ES256 entry carrying a P-384 key is refused: by createVerificationKey and by a guard loading it', async () => {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const p384 = publicKey.export({ format: 'jwk' }) as JsonWebKey;
      expect(() => createVerificationKey('p384', 'ES256', { jwk: p384 })).toThrow(/needs curve P-256, got P-384/);
      await withState(planted.env, (b) => b.hot.publishKeys([rawPublishedKey('p384', 'ES256', { publicJwk: p384 })]));
      await expect(guardFor(planted.env, quiet)).rejects.toThrow(/needs curve P-256, got P-384/);
    });

    // --- degenerate signatures -----------------------------------------------------------------

    it('rejects ES256 with 64 zero bytes as its signature', () => {
      const token = jws({ alg: 'ES256', kid: keys.ES256.kid }, fresh(), () => new Uint8Array(64));
      expect(authorize(token)).toEqual(DENY('bad_signature'));
    });

    it('rejects RS256 with an empty third segment', async () => {
      const token = withSigSegment(await signJwt(keys.RS256, fresh()), '');
      expect(token.endsWith('.')).toBe(true);
      expect(authorize(token)).toEqual(DENY('bad_signature'));
    });

    it('rejects a 1-byte signature for every alg', async () => {
      for (const k of Object.values(keys)) {
        const token = withSigSegment(await signJwt(k, fresh()), b64(new Uint8Array([0x01])));
        expect([k.alg, authorize(token)]).toEqual([k.alg, DENY('bad_signature')]);
      }
    });

    // --- keys named or shipped by the token ----------------------------------------------------

    it('ignores a header jwk carrying the attacker key with a matching kid', async () => {
      const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = { ...(await exportJWK(attacker.publicKey)), kid: keys.RS256.kid, alg: 'RS256', use: 'sig' };
      const token = jws({ alg: 'RS256', kid: keys.RS256.kid, jwk }, fresh(), asym('RS256', attacker.privateKey));
      const { result, fetches, connects } = await withoutNetwork(() => authorize(token));
      expect(result).toEqual(DENY('header_key_forbidden'));
      expect(fetches).toEqual([]);
      expect(connects).toEqual([]);
    });

    it.each([
      ['jku', 'https://attacker.example/jwks'],
      ['x5u', 'https://attacker.example/jwks'],
      ['jku', 'http://169.254.169.254/latest/meta-data/'],
      ['x5u', 'http://169.254.169.254/latest/meta-data/'],
    ])('rejects %s = %s without any outbound request', async (member, url) => {
      const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const token = jws({ alg: 'ES256', kid: keys.ES256.kid, [member]: url }, fresh(), asym('ES256', attacker.privateKey));
      const { result, fetches, connects } = await withoutNetwork(() => authorize(token));
      expect(result).toEqual(DENY('header_key_forbidden'));
      expect(fetches).toEqual([]);
      expect(connects).toEqual([]);
    });

    // --- hostile kids --------------------------------------------------------------------------

    it("rejects kid '../../../../dev/null' signed with an empty secret", () => {
      expect(authorize(jws({ alg: 'HS256', kid: '../../../../dev/null' }, fresh(), hmac('')))).toEqual(DENY('kid_unknown'));
    });

    it("rejects kid \"x' UNION SELECT 'secret\" signed with 'secret'", () => {
      expect(authorize(jws({ alg: 'HS256', kid: "x' UNION SELECT 'secret" }, fresh(), hmac('secret')))).toEqual(DENY('kid_unknown'));
    });

    it('rejects a kid with a NUL byte, even when the rest is a real kid and the signature is real', () => {
      for (const kid of [`${keys.HS256.kid}\u0000`, `\u0000${keys.HS256.kid}`, `${keys.HS256.kid.slice(0, 4)}\u0000${keys.HS256.kid.slice(4)}`]) {
        expect(authorize(jws({ alg: 'HS256', kid }, fresh(), signerOf(keys.HS256)))).toEqual(DENY('kid_invalid'));
      }
    });

    it('rejects a 10 KB kid: too_large under the default 8 KB cap, kid_invalid under a larger cap', async () => {
      const kid = `${keys.HS256.kid}${'A'.repeat(10 * 1024)}`;
      const token = jws({ alg: 'HS256', kid }, fresh(), signerOf(keys.HS256));
      expect(authorize(token)).toEqual(DENY('too_large'));
      const roomy = await openGuard({ maxTokenBytes: 64 * 1024 });
      try {
        expect(decided(roomy.authorize(token))).toEqual(DENY('kid_invalid'));
      } finally {
        await roomy.close();
      }
    });

    // --- weak secrets --------------------------------------------------------------------------

    it.each([
      ['an empty secret', ''],
      ["the short secret 'secret'", 'secret'],
    ])('rejects a token with the HS256 kid signed with %s', (_name, secret) => {
      expect(authorize(jws({ alg: 'HS256', kid: keys.HS256.kid, typ: 'JWT' }, fresh(), hmac(secret)))).toEqual(DENY('bad_signature'));
    });

    // --- crit ----------------------------------------------------------------------------------

    it.each([
      ['an unknown name', { crit: ['x-unknown'], 'x-unknown': true }],
      ['[]', { crit: [] }],
      ['"x"', { crit: 'x' }],
      ['[null]', { crit: [null] }],
    ])('rejects crit with %s, correctly signed', (_name, extra) => {
      const token = jws({ alg: 'HS256', kid: keys.HS256.kid, ...extra }, fresh(), signerOf(keys.HS256));
      expect(authorize(token)).toEqual(DENY('crit_unsupported'));
    });

    // --- time boundaries (now = T, tolerance 30 s) ---------------------------------------------

    it('nbf: T+30 is accepted, T+31 is not_yet_valid', async () => {
      expect(authorize(await signJwt(keys.ES256, fresh({ nbf: T + TOL })))).toEqual(ALLOW);
      expect(authorize(await signJwt(keys.ES256, fresh({ nbf: T + TOL + 1 })))).toEqual(DENY('not_yet_valid'));
    });

    it('exp: T-29 is accepted, T-30 is expired', async () => {
      expect(authorize(await signJwt(keys.EdDSA, fresh({ iat: T - 600, exp: T - TOL + 1 })))).toEqual(ALLOW);
      expect(authorize(await signJwt(keys.EdDSA, fresh({ iat: T - 600, exp: T - TOL })))).toEqual(DENY('expired'));
    });

    it('iat: T+600 is iat_in_future', async () => {
      expect(authorize(await signJwt(keys.RS256, fresh({ iat: T + 600, exp: T + 1200 })))).toEqual(DENY('iat_in_future'));
    });

    // --- exp -----------------------------------------------------------------------------------

    it('rejects a token without exp (exp_missing)', async () => {
      expect(authorize(await signJwt(keys.HS256, { sub: 'user-1', iat: T - 60 }))).toEqual(DENY('exp_missing'));
    });

    it('rejects exp - iat of 10 years (lifetime_too_long)', async () => {
      const tenYears = 10 * 365 * 24 * 3600;
      expect(authorize(await signJwt(keys.HS256, { sub: 'user-1', iat: T - 60, exp: T - 60 + tenYears }))).toEqual(DENY('lifetime_too_long'));
    });

    it('rejects exp in the year 9999999 (claims_invalid)', async () => {
      // Seconds from 1970 to the year 9,999,999 (Gregorian years of 365.2425 days): far past any NumericDate bound.
      const exp = Math.floor((9_999_999 - 1970) * 365.2425 * 86_400);
      expect(exp).toBeGreaterThan(3e14);
      expect(authorize(await signJwt(keys.HS256, { sub: 'user-1', iat: T - 60, exp }))).toEqual(DENY('claims_invalid'));
    });

    // --- user watermark ------------------------------------------------------------------------

    it('a user watermark W: iat W-1 is revoked_user, W+1 allowed, no iat is iat_missing', async () => {
      const W = T - 3600;
      await change((b) => b.hot.putWatermarks('user', [['wm-user', W]]));
      await guard.sync();
      const base = { sub: 'wm-user', exp: T + 600 };
      expect(authorize(await signJwt(keys.HS256, { ...base, iat: W - 1 }))).toEqual(DENY('revoked_user'));
      expect(authorize(await signJwt(keys.HS256, { ...base, iat: W + 1 }))).toEqual(ALLOW);
      expect(authorize(await signJwt(keys.HS256, base))).toEqual(DENY('iat_missing'));
      // The watermark is per user: another user's token without iat is untouched.
      expect(authorize(await signJwt(keys.HS256, { sub: 'other-user', exp: T + 600 }))).toEqual(ALLOW);
    });

    // --- size and shape ------------------------------------------------------------------------

    it('rejects a 1 MB header (too_large)', () => {
      const header = { alg: 'HS256', kid: keys.HS256.kid, pad: 'x'.repeat(1024 * 1024) };
      expect(authorize(jws(header, fresh(), signerOf(keys.HS256)))).toEqual(DENY('too_large'));
    });

    it('rejects a 5-segment JWE encrypted to the published RSA public key (not_jws)', async () => {
      const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(fresh())))
        .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: keys.RS256.kid, cty: 'JWT' })
        .encrypt(keys.RS256.publicKey!);
      expect(jwe.split('.')).toHaveLength(5);
      expect(authorize(jwe)).toEqual(DENY('not_jws'));
    });

    it('rejects a PBES2 JWE with p2c 2147483647 quickly, without key derivation', () => {
      const header = { alg: 'PBES2-HS256+A128KW', enc: 'A128GCM', p2s: b64(randomBytes(16)), p2c: 2_147_483_647, kid: keys.HS256.kid };
      const seg = (n: number) => b64(randomBytes(n));
      // The JWE shape (five segments) and a JWS-shaped three-segment token carrying the same header.
      const fiveSegments = [b64(header), seg(24), seg(12), seg(64), seg(16)].join('.');
      const threeSegments = [b64(header), b64(fresh()), seg(32)].join('.');
      for (const token of [fiveSegments, threeSegments]) {
        const t0 = performance.now();
        const verdict = authorize(token);
        const ms = performance.now() - t0;
        expect(verdict).toEqual(DENY('not_jws'));
        expect(ms).toBeLessThan(50);
      }
    });

    // --- device binding ------------------------------------------------------------------------

    it('fph binding: matching allowed, missing/different/raw-in-claim denied, a mismatch alerts', async () => {
      const raw = 'device-7f3a: Mozilla/5.0 (X11; Linux x86_64) 1920x1080 UTC+2';
      const fph = sha256hex(raw);
      const bound = await signJwt(keys.ES256, fresh({ sub: 'fp-user', jti: 'fp-jti-1', fph }));
      const before = alerts().length;

      expect(authorize(bound, { fingerprint: fph })).toEqual(ALLOW);
      expect(authorize(bound, {})).toEqual(DENY('fingerprint_missing'));
      expect(alerts().length).toBe(before);

      const other = sha256hex('another device');
      expect(authorize(bound, { fingerprint: other })).toEqual(DENY('fingerprint_mismatch'));
      expect(alerts().slice(before)).toEqual([expect.objectContaining({ kind: 'fingerprint_mismatch', sub: 'fp-user', jti: 'fp-jti-1', kid: keys.ES256.kid, fph: other })]);

      // The issuer put the raw fingerprint in the claim; the service hands the guard its hash.
      const rawInClaim = await signJwt(keys.ES256, fresh({ sub: 'fp-user', jti: 'fp-jti-2', fph: raw }));
      expect(authorize(rawInClaim, { fingerprint: fph })).toEqual(DENY('fingerprint_mismatch'));
      expect(alerts().slice(before)).toHaveLength(2);
      expect(alerts().at(-1)).toMatchObject({ kind: 'fingerprint_mismatch', jti: 'fp-jti-2' });
    });

    // --- duplicate JSON member names -----------------------------------------------------------
    // RFC 7515 §4 / RFC 7519 §4 allow either rejecting duplicates or keeping the lexically last
    // member. The guard keeps the last one (JSON.parse); what is pinned here is that it does so
    // consistently and that no ordering smuggles alg none past it. Whether it should reject
    // duplicates outright is the open finding below.

    /** Builds the header and payload JSON by hand, so a member can be spelled twice. */
    const handSpelled = (header: string, payload: string, signer: Signer = signerOf(keys.HS256)) => jws(header, payload, signer);
    const hsKid = () => JSON.stringify(keys.HS256.kid);

    // Their meaning differs between a last-member parser and a first-member one (e.g. cJSON's
    // GetObjectItem) that a service behind the gateway may use, so the guard refuses them.
    it('rejects correctly signed tokens with duplicate header or payload members', () => {
      const dupes: Array<[string, string]> = [
        [`{"alg":"none","kid":${hsKid()},"alg":"HS256"}`, JSON.stringify(fresh())],
        [`{"alg":"HS256","kid":"no-such-kid","kid":${hsKid()}}`, JSON.stringify(fresh())],
        [`{"alg":"HS256","kid":${hsKid()}}`, `{"sub":"u","iat":${T - 60},"exp":${T - 1000},"exp":${T + 600}}`],
        [`{"alg":"HS256","kid":${hsKid()}}`, `{"sub":"alice","sub":"admin","iat":${T - 60},"exp":${T + 600}}`],
      ];
      for (const [header, payload] of dupes) expect([header, payload, guard.authorize(handSpelled(header, payload)).decision]).toEqual([header, payload, 'deny']);
    });
  });
}
