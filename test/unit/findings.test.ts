import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { parseFindings, readFindingsFile } from '../../src/cli/findings.js';
import { FindingsInvalidError } from '../../src/errors.js';
import { revocationExpiries, userExpiry } from '../../src/state/blacklist-expiry.js';
import { entrySet } from '../../src/state/blacklist.js';
import { canonicalJson } from '../../src/state/canonical-json.js';
import { inputSetOf } from '../../src/state/input-sets.js';

const FPH = 'ab'.repeat(32);
const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-findings-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('findings files', () => {
  it('reads NDJSON with every selector and its aliases, skipping blank lines and # comments', () => {
    const text = [
      '# scan of 2026-12-01',
      '{"jti":"j1","exp":1900000000,"reason":"seen in logs"}',
      '',
      '{"sid":"s1"}',
      '{"session":"s2"}',
      '{"sub":"alice"}',
      '{"user":"bob"}',
      `{"fph":"${FPH}"}`,
      `{"device":"${'cd'.repeat(32)}"}`,
    ].join('\r\n');
    expect(parseFindings(text)).toEqual({
      problems: [],
      entries: [
        { kind: 'jti', value: 'j1', exp: 1900000000, reason: 'seen in logs' },
        { kind: 'sid', value: 's1' },
        { kind: 'sid', value: 's2' },
        { kind: 'user', value: 'alice' },
        { kind: 'user', value: 'bob' },
        { kind: 'fph', value: FPH },
        { kind: 'fph', value: 'cd'.repeat(32) },
      ],
    });
  });

  it('decodes a jsonwebtoken-minted token without verifying it: its jti and exp, else its sid; never the token itself', () => {
    const withJti = jwt.sign({ sub: 'u', sid: 's9' }, 'not-the-real-secret', { jwtid: 'j-from-token', expiresIn: 600 });
    const withSid = jwt.sign({ sub: 'u', sid: 's9' }, 'x', { expiresIn: 600 });
    const exp = (jwt.decode(withJti) as { exp: number }).exp;
    const { entries, problems } = parseFindings(`{"token":"${withJti}","reason":"pastebin"}\n{"token":"${withSid}"}\n`);
    expect(problems).toEqual([]);
    // The sid of a token covers the session's later tokens too, so the token's exp does not bound it.
    expect(entries).toEqual([
      { kind: 'jti', value: 'j-from-token', exp, reason: 'pastebin' },
      { kind: 'sid', value: 's9' },
    ]);
    expect(JSON.stringify(entries)).not.toContain(withJti.split('.')[2]);
  });

  it('reports every bad line with its line number, and never repeats a token', () => {
    const noClaims = jwt.sign({ sub: 'u' }, 'x');
    const text = [
      '{"jti":"ok"}',
      '{"jti":',
      '["jti"]',
      '{"jit":"typo"}',
      '{}',
      '{"jti":"a","sid":"b"}',
      '{"fph":"ABCDEF"}',
      `{"fph":"${FPH.toUpperCase()}"}`,
      '{"jti":"x","exp":"tomorrow"}',
      `{"token":"${noClaims}"}`,
      '{"token":"a.b"}',
      `{"jti":"${'x'.repeat(1025)}"}`,
      '{"sub":""}',
      '{"jti":"ok2","reason":7}',
    ].join('\n');
    const { entries, problems } = parseFindings(text);
    expect(entries.map((e) => e.value)).toEqual(['ok']);
    expect(problems.map((p) => p.split(':')[0])).toEqual(['line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8', 'line 9', 'line 10', 'line 11', 'line 12', 'line 13', 'line 14']);
    expect(problems[0]).toMatch(/^line 2: not valid JSON/);
    expect(problems[2]).toBe('line 4: unknown field "jit" (allowed: jti, sid|session, sub|user, fph|device or token, plus optional exp and reason)');
    expect(problems[4]).toBe('line 6: give exactly one of jti, sid, sub, fph or token, not jti and sid');
    expect(problems[5]).toContain('is not a lower-case hex SHA-256');
    expect(problems[6]).toContain('is not a lower-case hex SHA-256');
    expect(problems[7]).toContain('exp must be a NumericDate');
    expect(problems[8]).toBe('line 10: the token has neither a jti nor a sid claim: blacklist its user ({"sub": …}) instead');
    expect(problems[9]).toBe('line 11: token is not a compact JWT (header.payload.signature)');
    expect(problems[10]).toBe('line 12: jti is longer than 1024 bytes');
    expect(problems.join('\n')).not.toContain(noClaims);
  });

  it('reads a JSON array, and gives the line of each bad element', () => {
    const good = parseFindings(`[{"jti":"a"}, {"sid":"b","exp":1900000000.5}]`);
    expect(good).toEqual({ problems: [], entries: [{ kind: 'jti', value: 'a' }, { kind: 'sid', value: 'b', exp: 1900000001 }] });
    const bad = parseFindings(['[', '  {"jti": "a"},', '  {"jti": 5},', '  {"jti": "c"},', '  "d"', ']'].join('\n'));
    expect(bad.entries.map((e) => e.value)).toEqual(['a', 'c']);
    expect(bad.problems).toEqual(['line 3: element 2: jti must be a non-empty string', 'line 5: element 4: an entry must be a JSON object with one of jti, sid|session, sub|user, fph|device or token, plus optional exp and reason']);
    expect(parseFindings('[\n{"jti":"a"},\n{"jti":"b",}\n]').problems).toEqual([expect.stringMatching(/^line 3: not valid JSON/)]);
    expect(parseFindings('{"jti":"a"}').problems).toEqual([]);
  });

  it('shows input in its messages escaped, so a line of terminal escapes cannot drive the terminal; refuses control characters in reasons', () => {
    const { problems } = parseFindings(['\u001b[2J\u001b]0;pwned\u0007', '{"jti":"a","reason":"ok\\u001b[31m red"}', '{"jti":"b","reason":"bell\\u0007"}', '{"jti":"c","\\u001bx":1}', '{"jti":"d","exp":"\\u009b1m"}'].join('\n'));
    expect(problems).toEqual([
      "line 1: not valid JSON (Unexpected token '\\u001b')",
      'line 2: reason contains control characters (a terminal would act on them when it is listed)',
      'line 3: reason contains control characters (a terminal would act on them when it is listed)',
      'line 4: unknown field "\\u001bx" (allowed: jti, sid|session, sub|user, fph|device or token, plus optional exp and reason)',
      'line 5: exp must be a NumericDate (seconds since 1970), got "\\u009b1m"',
    ]);
    expect(problems.join('\n')).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  it('refuses a token pasted into any field but "token", without repeating it, and a member given twice', () => {
    const token = jwt.sign({ sub: 'u', jti: 'j' }, 'x');
    const jwe = 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXZpdml2aXZpdg.Y2lwaGVydGV4dA.dGFndGFndGFndGFn';
    const lines = [`{"jti":"${token}"}`, `{"sub":"${token}"}`, `{"sid":"${jwe}"}`, `{"fph":"${token}"}`, `{"jti":"a","reason":"${token}"}`, `{"user":"Bearer ${token}"}`, `{"token":"${token}"}`];
    const { entries, problems } = parseFindings(lines.join('\n'));
    expect(problems).toEqual([1, 2, 3, 4, 5, 6].map((n) => `line ${n}: this looks like a token; put it in "token"`));
    expect(entries).toEqual([{ kind: 'jti', value: 'j' }]);

    const twice = parseFindings(['{"jti":"a","jti":"b"}', '{"sub":"u","reason":"x","reason":"y"}', '{"jti":"c","j\\u0074i":"d"}', '{"jti":"ok","note":{"a":1,"a":2}}'].join('\n'));
    expect(twice.problems.slice(0, 3)).toEqual([
      'line 1: the member "jti" is given twice (JSON keeps only the last; give each once)',
      'line 2: the member "reason" is given twice (JSON keeps only the last; give each once)',
      'line 3: the member "jti" is given twice (JSON keeps only the last; give each once)',
    ]);
    expect(twice.problems[3]).toContain('unknown field "note"');
    const array = parseFindings('[\n  {"jti": "a"},\n  "x",\n  {"jti": "b", "jti": "c"}\n]');
    expect(array.problems).toEqual([expect.stringMatching(/^line 3: element 2: an entry must be/), 'line 4: element 3: the member "jti" is given twice (JSON keeps only the last; give each once)']);
  });

  it('refuses a missing, an empty or a bad file with one error naming the file', () => {
    const refuse = (p: string) => {
      try {
        readFindingsFile(p);
      } catch (error) {
        expect(error).toBeInstanceOf(FindingsInvalidError);
        return (error as FindingsInvalidError).message;
      }
      throw new Error('accepted');
    };
    expect(refuse(path.join(dir, 'nope.ndjson'))).toContain('nope.ndjson: no such file');
    expect(refuse(file('empty.ndjson', '# nothing here\n\n'))).toContain('has no entries');
    expect(refuse(file('bad.ndjson', '{"jti":1}\n{"jti":"ok"}\n{"x":1}\n'))).toMatch(/has 2 bad entries:\n {2}line 1: .*\n {2}line 3: /);
    expect(readFindingsFile(file('ok.ndjson', '{"jti":"a"}\n'))).toEqual([{ kind: 'jti', value: 'a' }]);
  });
});

describe('entry sets and expiries', () => {
  it('the same findings in another order or repeated give the same set and hash', () => {
    const a = entrySet([{ kind: 'jti', value: 'b' }, { kind: 'user', value: 'u' }, { kind: 'jti', value: 'a', exp: 5 }], 'x');
    const b = entrySet([{ kind: 'jti', value: 'a', exp: 3 }, { kind: 'user', value: 'u' }, { kind: 'jti', value: 'a', exp: 5 }, { kind: 'jti', value: 'b' }], 'y');
    expect(b.hash).toBe(a.hash);
    // The fast serialisation the hash uses is the RFC 8785 one.
    expect(JSON.stringify(a.items)).toBe(canonicalJson(a.items));
    expect(inputSetOf('blacklist', a.items, null).hash).toBe(a.hash);
    expect(b.items).toEqual([{ kind: 'jti', value: 'a', exp: 5 }, { kind: 'jti', value: 'b' }, { kind: 'user', value: 'u' }]);
    // A duplicate without exp removes the bound: nothing says when that token expires.
    expect(entrySet([{ kind: 'sid', value: 's', exp: 5 }, { kind: 'sid', value: 's' }], null).items).toEqual([{ kind: 'sid', value: 's' }]);
  });

  it('exp + tolerance, capped by now + max lifetime + tolerance; --ttl overrides; users always get the bound', async () => {
    const policy = { clockToleranceSec: 30, maxLifetimeSec: 3600 };
    const noDb = { query: async () => [], exec: async () => {} };
    const startSec = 1_000_000;
    const entries = [
      { kind: 'jti' as const, value: 'a', exp: startSec + 60 },
      { kind: 'jti' as const, value: 'b', exp: startSec + 999_999 },
      { kind: 'fph' as const, value: FPH },
    ];
    const got = await revocationExpiries(noDb, entries, { startSec, policy, ttlMs: null });
    expect(got.map((e) => [e.expiresAt.getTime() / 1000, e.rule])).toEqual([
      [startSec + 90, 'token-exp'],
      [startSec + 3630, 'token-exp'],
      [startSec + 3630, 'max-lifetime'],
    ]);
    const ttl = await revocationExpiries(noDb, entries, { startSec, policy, ttlMs: 120_000 });
    expect(ttl.map((e) => [e.expiresAt.getTime() / 1000, e.rule])).toEqual(entries.map(() => [startSec + 120, 'ttl']));
    expect(userExpiry({ startSec, policy, ttlMs: 120_000 })).toEqual({ expiresAt: new Date((startSec + 3630) * 1000), rule: 'max-lifetime' });
  });
});
