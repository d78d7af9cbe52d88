/**
 * The serve config, the path rules and the answers' header encoding: pure functions, no services.
 * What a user depends on: a mistake in the config is refused with every problem and where it is;
 * a request is classified the strict way wherever the gateway and the service could disagree.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { ServeConfigInvalidError } from '../../src/errors.js';
import { headerValue } from '../../src/serve/answer.js';
import { loadServeConfig, parseServeConfig } from '../../src/serve/config.js';
import { Classifier, normalisePath, type Rule } from '../../src/serve/rules.js';
import { ROOT } from '../helpers/cli.js';

const problemsOf = (raw: unknown): string[] => {
  try {
    parseServeConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ServeConfigInvalidError);
    expect((error as ServeConfigInvalidError).code).toBe('ERR_SERVE_CONFIG_INVALID');
    return ((error as ServeConfigInvalidError).details as { problems: string[] }).problems;
  }
  throw new Error('the config was accepted');
};

describe('serve config', () => {
  it('the shipped example is valid, and an empty config means the Authorization header, no rules, reads', () => {
    const example = loadServeConfig(path.join(ROOT, 'examples', 'serve.yaml'));
    expect(example.token).toEqual({ authorization: true, cookie: '__Secure-access' });
    expect(example.fingerprintHeader).toBe('x-device-fingerprint');
    expect(example.rules[0]).toEqual({ method: 'POST', path: '/transfers/*', operation: 'critical' });
    expect(parseServeConfig({})).toMatchObject({
      token: { authorization: true, cookie: undefined },
      fingerprintHeader: undefined,
      identityHeaders: { subject: 'X-Auth-Subject', session: 'X-Auth-Session', kid: 'X-Auth-Kid', decision: 'X-Auth-Decision' },
      envoy: { pathPrefix: '/auth/envoy' },
      defaultOperation: 'read',
      rules: [],
    });
  });

  it('reports every invalid rule at once, by index and field', () => {
    const problems = problemsOf({
      rules: [
        { method: 'POTS', path: '/transfers/*', operation: 'critical' },
        { method: 'POST', path: 'transfers/*', operation: 'critical' },
        { method: 'GET', path: '/accounts/*', operation: 'write' },
        { method: 'PUT', path: '/users/**email', operation: 'critical' },
        { method: 'GET', path: '/search?q=*', operation: 'read' },
        { method: [], path: '/a', operation: 'read' },
        { method: 'GET', path: '/a', operation: 'read', comment: 'typo field' },
        { method: 'GET', operation: 'read' },
      ],
    });
    expect(problems).toEqual([
      expect.stringMatching(/^rules\[0\]\.method: "POTS" is not an HTTP method; use one of GET, HEAD, POST/),
      'rules[1].path: "transfers/*" must start with "/" (or be "**" for every path)',
      'rules[2].operation: must be "read" or "critical", not "write"',
      'rules[3].path: "/users/**email": "**" must be a whole segment, like /api/** (use * inside a segment)',
      'rules[4].path: "/search?q=*" contains "?" or "#": rules match the path only, without the query string',
      expect.stringMatching(/^rules\[5\]\.method: /),
      expect.stringMatching(/^rules\[6\]: .*comment/),
      expect.stringMatching(/^rules\[7\]\.path: must be a path glob/),
    ]);
  });

  it('refuses other mistakes with where they are: token source, header names, the Envoy prefix, the challenge', () => {
    const problems = problemsOf({
      token: { authorization: false },
      fingerprintHeader: 'X Device',
      identityHeaders: { subject: 'Authorization', session: 'X-Auth-Kid' },
      envoy: { pathPrefix: '/auth' },
      challenge: { stepUpAcr: 'mfa"', stepUpMaxAge: '5 minutes' },
      rules: { method: 'GET' },
      defaultOperation: 'write',
      listen: '0.0.0.0:80',
    });
    const text = problems.join('\n');
    expect(text).toContain('token: reads no token: keep authorization: true or name a cookie');
    expect(text).toContain('fingerprintHeader: must be an HTTP header name');
    expect(text).toContain('identityHeaders.subject: is a header with its own meaning');
    expect(text).toContain('identityHeaders: the four identity headers need four different names');
    expect(text).toContain('envoy.pathPrefix: must not overlap /auth/nginx');
    expect(text).toContain('rules: must be a list of { method, path, operation }');
    expect(text).toContain('defaultOperation: must be "read" or "critical"');
    expect(text).toMatch(/\(top level\): .*listen/);
    // The challenge is checked once the shape is valid.
    expect(problemsOf({ challenge: { stepUpAcr: 'mfa"' } })).toEqual([expect.stringMatching(/^challenge: stepUpAcr must be/)]);
    expect(problemsOf({ challenge: { stepUpMaxAge: '5 minutes' } })).toEqual([expect.stringMatching(/^challenge: challenge.stepUpMaxAge "5 minutes" is not a duration/)]);
    expect(problemsOf({ token: { cookie: 'a;b' } })).toEqual([expect.stringMatching(/^token\.cookie: cookie name must be an RFC 6265 token/)]);
  });

  it('reads YAML and JSON files, and names the file when it is missing or not parseable', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-serve-config-'));
    writeFileSync(path.join(dir, 'ok.json'), JSON.stringify({ rules: [{ method: '*', path: '**', operation: 'critical' }] }));
    expect(loadServeConfig(path.join(dir, 'ok.json')).rules).toEqual([{ method: '*', path: '**', operation: 'critical' }]);
    writeFileSync(path.join(dir, 'broken.yaml'), 'rules:\n  - { method: GET, path: /a\n');
    expect(() => loadServeConfig(path.join(dir, 'broken.yaml'))).toThrow(/broken\.yaml is not valid YAML/);
    writeFileSync(path.join(dir, 'twice.yaml'), 'defaultOperation: read\ndefaultOperation: critical\n');
    expect(() => loadServeConfig(path.join(dir, 'twice.yaml'))).toThrow(/not valid YAML: .*[Mm]ap keys must be unique/);
    expect(() => loadServeConfig(path.join(dir, 'nope.yaml'))).toThrow(/cannot read the serve config .*nope\.yaml: ENOENT/);
  });

  it('the Envoy and Traefik examples name the endpoint and the identity headers the server uses', () => {
    const defaults = parseServeConfig({});
    const envoy = JSON.stringify(parseYaml(readFileSync(path.join(ROOT, 'examples', 'envoy.yaml'), 'utf8')));
    expect(envoy).toContain(`"path_prefix":"${defaults.envoy.pathPrefix}"`);
    for (const h of Object.values(defaults.identityHeaders)) expect(envoy).toContain(`"exact":"${h.toLowerCase()}"`);
    const traefik = parseYaml(readFileSync(path.join(ROOT, 'examples', 'traefik.yml'), 'utf8'));
    const forward = traefik.http.middlewares.jwtir.forwardAuth;
    expect(forward.address).toMatch(/\/auth\/traefik$/);
    expect(forward.trustForwardHeader).toBe(false);
    expect(forward.authResponseHeaders).toEqual(Object.values(defaults.identityHeaders));
  });
});

describe('path rules', () => {
  const rules: Rule[] = [
    { method: 'GET', path: '/transfers/export', operation: 'read' },
    { method: 'POST', path: '/transfers/*', operation: 'critical' },
    { method: ['PUT', 'PATCH'], path: '/users/*/email', operation: 'critical' },
    { method: '*', path: '/payouts/**', operation: 'critical' },
    { method: 'GET', path: '/files/*.pdf', operation: 'critical' },
  ];
  const c = new Classifier(rules);

  it('the first matching rule wins; no match is the default', () => {
    expect(c.operation('POST', '/transfers/42')).toBe('critical');
    expect(c.operation('GET', '/transfers/42')).toBe('read');
    expect(c.operation('GET', '/transfers/export')).toBe('read');
    expect(c.operation('POST', '/transfers/42/confirm')).toBe('read');
    expect(c.operation('PATCH', '/users/alice/email')).toBe('critical');
    expect(c.operation('DELETE', '/users/alice/email')).toBe('read');
    expect(c.operation('GET', '/files/report.pdf')).toBe('critical');
    expect(c.operation('GET', '/files/report.txt')).toBe('read');
    expect(new Classifier(rules, 'critical').operation('GET', '/elsewhere')).toBe('critical');
  });

  it('** spans whole segments, including none; "**" alone is every path', () => {
    for (const p of ['/payouts', '/payouts/1', '/payouts/1/bank/iban']) expect(c.operation('GET', p)).toBe('critical');
    expect(c.operation('GET', '/payoutsx')).toBe('read');
    const all = new Classifier([{ method: 'DELETE', path: '**', operation: 'critical' }]);
    expect(all.operation('DELETE', '/')).toBe('critical');
    expect(all.operation('DELETE', '/a/b/c')).toBe('critical');
    expect(all.operation('GET', '/a')).toBe('read');
  });

  it('ignores the query string and the case of methods and paths', () => {
    expect(c.operation('post', '/Transfers/42?amount=100')).toBe('critical');
    expect(c.operation('POST', '/TRANSFERS/42#x')).toBe('critical');
  });

  it('judges a request critical when the path as sent or as normalised is critical', () => {
    // Each of these reaches the transfer handler of a typical service after its own decoding.
    for (const target of [
      '/transfers/%34%32',
      '/%74ransfers/42',
      '/accounts/../transfers/42',
      '/./transfers/42',
      '//transfers//42',
      '/transfers/42/',
      '/transfers/42;jsessionid=1',
      '/transfers%2F42',
      '\\transfers\\42',
      'https://bank.example/transfers/42?x=1',
    ]) {
      expect([target, c.operation('POST', target)]).toEqual([target, 'critical']);
    }
    // A read rule that matches only the sent spelling does not hide a critical normalised one.
    const tricky = new Classifier([
      { method: 'POST', path: '/public/**', operation: 'read' },
      { method: 'POST', path: '/transfers/*', operation: 'critical' },
    ]);
    expect(tricky.operation('POST', '/public/../transfers/42')).toBe('critical');
    expect(normalisePath('/a/./b/../c//d/;x=1/e;y/')).toBe('/a/c/d/e');
  });

  it('a check without the original method or URI (a misconfigured gateway) is critical', () => {
    expect(c.operation(undefined, '/accounts')).toBe('critical');
    expect(c.operation('GET', undefined)).toBe('critical');
    expect(c.operation('OPTIONS', '*')).toBe('critical');
  });
});

describe('identity header values', () => {
  it('pass printable ASCII through and percent-encode the rest, % included, so nothing splits a header', () => {
    expect(headerValue('alice@example.com')).toBe('alice@example.com');
    expect(headerValue('user 42')).toBe('user 42');
    expect(headerValue('x\r\nX-Auth-Subject: admin')).toBe('x%0D%0AX-Auth-Subject: admin');
    expect(headerValue('jürgen')).toBe('j%C3%BCrgen');
    expect(headerValue('100%')).toBe('100%25');
    expect(headerValue('\ud800')).toBe('%EF%BF%BD');
  });
});
