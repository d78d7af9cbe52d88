import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BUILTIN_RUNBOOK_DIR, loadRunbook } from '../../src/runbook/load.js';
import { resolveSettings, type RawNotifySettings } from '../../src/config/settings.js';
import { oncallWebhook, parseReceiverItem, receiverItem, setIssuer, setReceivers } from '../../src/notify/config.js';
import { DEFAULT_RETRY, parseRetryAfter, postWithRetries, type RetryPolicy } from '../../src/notify/http.js';
import { judgeSetResponse } from '../../src/notify/set.js';
import { escapeMrkdwn, slackBody } from '../../src/notify/slack.js';
import { affectedByStepsSql } from '../../src/notify/subjects.js';
import { Receiver } from '../helpers/receiver.js';

/** Delivery policy and configuration parsing, against a real HTTP server on 127.0.0.1. */
const fast: RetryPolicy = { ...DEFAULT_RETRY, backoffMs: 20, attemptTimeoutMs: 2000, deadlineMs: 10_000 };
const message = { headers: { 'content-type': 'application/json' }, body: '{"text":"hi"}' };
const raw = (over: Partial<RawNotifySettings>): RawNotifySettings => ({ oncallWebhookUrl: undefined, setReceivers: undefined, setIssuer: undefined, ...over });

describe('postWithRetries', () => {
  let server: Receiver;
  beforeAll(async () => {
    server = await Receiver.start();
  });
  afterAll(async () => {
    await server.close();
  });
  const before = () => server.requests.length;

  it('retries 5xx and 429 and delivers the same body each time; 2xx ends it', async () => {
    const n = before();
    server.script([{ status: 503 }, { status: 502, body: 'bad gateway' }, { status: 429 }, { status: 204 }]);
    const res = await postWithRetries(new URL(server.url('/hook')), message, fast);
    expect(res).toEqual({ ok: true, attempts: 4, status: 204, error: null });
    const seen = server.requests.slice(n);
    expect(seen.map((r) => r.body)).toEqual(Array(4).fill('{"text":"hi"}'));
    expect(seen.every((r) => r.method === 'POST' && r.headers['content-type'] === 'application/json')).toBe(true);
  });

  it('does not retry a 4xx other than 408 and 429, and does not follow redirects', async () => {
    for (const status of [400, 403, 404, 302]) {
      const n = before();
      server.script([{ status, body: 'no such hook', headers: status === 302 ? { location: 'http://127.0.0.1:1/elsewhere' } : {} }]);
      const res = await postWithRetries(new URL(server.url('/hook')), message, fast);
      expect(res).toEqual({ ok: false, attempts: 1, status, error: `HTTP ${status}: no such hook` });
      expect(server.requests.length - n).toBe(1);
    }
  });

  it('waits as long as Retry-After says (never less), and gives up early when that is past the deadline', async () => {
    const n = before();
    server.script([{ status: 429, headers: { 'retry-after': '1' } }]);
    const res = await postWithRetries(new URL(server.url('/hook')), message, fast);
    expect(res.ok).toBe(true);
    const [first, second] = server.requests.slice(n);
    // A lower bound, not a timing benchmark: the backoff alone would have waited 20 ms.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);

    const m = before();
    server.script([{ status: 503, headers: { 'retry-after': '120' } }]);
    const late = await postWithRetries(new URL(server.url('/hook')), message, { ...fast, deadlineMs: 3000 });
    expect(late.ok).toBe(false);
    expect(late.attempts).toBe(1);
    expect(late.error).toMatch(/^gave up after 1 attempt\(s\) in [\d.]+s: HTTP 503 \(asked to retry after 120s, past the deadline\)$/);
    expect(server.requests.length - m).toBe(1);
  });

  it('stops at the attempt limit and at the deadline; a hanging server times out per attempt', async () => {
    server.script([], { status: 500 });
    const limited = await postWithRetries(new URL(server.url('/hook')), message, { ...fast, attempts: 3 });
    expect(limited).toMatchObject({ ok: false, attempts: 3, status: 500 });
    expect(limited.error).toMatch(/^gave up after 3 attempt\(s\) in [\d.]+s: HTTP 500$/);

    server.script([], 'hang');
    const hung = await postWithRetries(new URL(server.url('/hook')), message, { ...fast, attempts: 10, attemptTimeoutMs: 300, deadlineMs: 1000 });
    expect(hung.ok).toBe(false);
    expect(hung.status).toBeNull();
    expect(hung.attempts).toBeGreaterThanOrEqual(2);
    expect(hung.attempts).toBeLessThan(10);
    expect(hung.error).toContain('no answer within the attempt timeout');
  });

  it('reports network errors without the URL, whose path may hold the webhook credential', async () => {
    server.script([], 'drop');
    const url = new URL(server.url('/services/T000/B000/SECRETPATHTOKEN'));
    const dropped = await postWithRetries(url, message, { ...fast, attempts: 2 });
    expect(dropped.ok).toBe(false);
    expect(dropped.error).not.toContain('SECRETPATHTOKEN');
    const refused = await postWithRetries(new URL(`http://127.0.0.1:${await closedPort()}/services/T000/B000/SECRETPATHTOKEN`), message, { ...fast, attempts: 2 });
    expect(refused.error).toMatch(/network error ECONNREFUSED$/);
    expect(refused.error).not.toContain('SECRETPATHTOKEN');
  });

  it("keeps the webhook's credential out of errors built from a receiver's answer that echoes the request", async () => {
    const url = new URL(server.url('/services/T000/B000/SECRETPATHTOKEN?key=QUERYSECRET99'));
    const echoes: Array<(r: { path: string }) => string> = [
      (r) => `Cannot POST ${r.path}`,
      (r) => `<pre>Cannot POST ${decodeURIComponent(r.path).toLowerCase()}</pre>`,
      (r) => JSON.stringify({ error: 'no such hook', url: `http://127.0.0.1${r.path}`.replaceAll('/', '\\/') }),
      // A long body whose cut would fall inside the secret.
      (r) => `${'x'.repeat(190)}${r.path}`,
    ];
    for (const echo of echoes) {
      server.reply = (r) => ({ status: 404, body: echo(r) });
      const res = await postWithRetries(url, message, fast);
      expect(res).toMatchObject({ ok: false, attempts: 1, status: 404 });
      for (const secret of ['SECRETPATHTOKEN', 'SECRETPATH', 'secretpath', 'QUERYSECRET', 'querysecret']) expect(res.error).not.toContain(secret);
      expect(res.error!.length).toBeLessThanOrEqual(400);
    }
    server.reply = () => ({ status: 404, body: 'Cannot POST /services/T000/B000/SECRETPATHTOKEN?key=QUERYSECRET99\u001b[2J\u0007' });
    expect((await postWithRetries(url, message, fast)).error).toBe('HTTP 404: Cannot POST …\\u001b[2J\\u0007');
    server.reply = (r) => ({ status: 400, body: JSON.stringify({ err: 'invalid_request', description: `unknown endpoint ${r.path}` }) });
    expect((await postWithRetries(url, message, fast, judgeSetResponse)).error).toBe('the receiver rejected the SET: invalid_request (unknown endpoint …)');
    server.script([]);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });
});

/** A port nobody listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const r = await Receiver.start();
  const port = r.port;
  await r.close();
  return port;
}

describe('RFC 8935 answers', () => {
  it('202 is delivered; a 400 with {"err","description"} is final with its reason; 5xx is retried', () => {
    expect(judgeSetResponse(202, '')).toEqual({ kind: 'ok' });
    expect(judgeSetResponse(400, '{"err":"invalid_key","description":"kid unknown"}')).toEqual({ kind: 'permanent', reason: 'the receiver rejected the SET: invalid_key (kid unknown)' });
    expect(judgeSetResponse(400, 'nope')).toEqual({ kind: 'permanent', reason: 'HTTP 400: nope' });
    expect(judgeSetResponse(503, '')).toEqual({ kind: 'retry', reason: 'HTTP 503' });
  });
});

describe('Slack body', () => {
  it('escapes &, < and > (no accidental <!channel> or links) and names the run and actor', () => {
    expect(escapeMrkdwn('<!channel> a & b > c')).toBe('&lt;!channel&gt; a &amp; b &gt; c');
    expect(slackBody('key *legacy* leaked <now>', { runId: 7, actor: 'ops@host' })).toEqual({
      text: 'key *legacy* leaked &lt;now&gt;',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: 'key *legacy* leaked &lt;now&gt;' } },
        { type: 'context', elements: [{ type: 'mrkdwn', text: 'sent by jwtir run 7 (ops@host)' }] },
      ],
    });
    const long = slackBody('x'.repeat(5000), { runId: 1, actor: 'a' });
    expect(long.text).toHaveLength(5000);
    expect((long.blocks[0]!.text as { text: string }).text).toHaveLength(3000);
  });
});

describe('notification settings', () => {
  it('a missing webhook says where to configure it; a malformed one is refused without being echoed', () => {
    expect(() => oncallWebhook(raw({}))).toThrow(expect.objectContaining({ code: 'ERR_NOTIFY_NOT_CONFIGURED' }));
    for (const bad of ['hooks.slack.com/services/T0/B0/SECRETXYZ', 'ftp://hooks.example/SECRETXYZ']) {
      let message = '';
      try {
        oncallWebhook(raw({ oncallWebhookUrl: bad }));
      } catch (error) {
        message = `${(error as Error).message} ${(error as { hint?: string }).hint}`;
        expect(error).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
      }
      expect(message).not.toBe('');
      expect(message).not.toContain('SECRETXYZ');
    }
    expect(oncallWebhook(raw({ oncallWebhookUrl: 'https://hooks.slack.com/services/T0/B0/X' })).host).toBe('hooks.slack.com');
  });

  it('a webhook with credentials, or on plain http:// to another machine, is refused without being echoed; http:// to loopback is taken', () => {
    const refusal = (url: string) => {
      try {
        oncallWebhook(raw({ oncallWebhookUrl: url }));
      } catch (error) {
        expect(error).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
        expect(`${(error as Error).message} ${(error as { hint?: string }).hint}`).not.toContain('SECRETXYZ');
        return (error as Error).message;
      }
      throw new Error(`${url} was accepted`);
    };
    expect(refusal('https://ops:SECRETXYZ@hooks.example/services/T0/B0/SECRETXYZ')).toContain('holds credentials (user:password@)');
    expect(refusal('https://ops@hooks.example/services/T0/B0/SECRETXYZ')).toContain('holds credentials');
    for (const url of ['http://hooks.example/services/SECRETXYZ', 'http://10.0.0.7/SECRETXYZ', 'http://127.0.0.2/SECRETXYZ', 'http://localhost.example/SECRETXYZ']) {
      expect(refusal(url)).toContain('must be https:// (plain http:// only to 127.0.0.1, ::1 or localhost)');
    }
    for (const url of ['http://127.0.0.1:8080/hook', 'http://[::1]:8080/hook', 'http://LOCALHOST/hook', 'https://hooks.example/hook']) {
      expect(oncallWebhook(raw({ oncallWebhookUrl: url })).href).toBe(new URL(url).href);
    }
    const receivers = (url: string) => () => setReceivers(raw({ setReceivers: { source: 'JWTIR_SET_RECEIVERS', value: [{ url, audience: 'rp' }] } }));
    expect(receivers('http://rp.example/push')).toThrow('JWTIR_SET_RECEIVERS[0].url must be https:// (plain http:// only to 127.0.0.1, ::1 or localhost)');
    expect(receivers('http://[::1]:9/push')()).toEqual([{ url: 'http://[::1]:9/push', audience: 'rp' }]);
  });

  it('receivers: every problem at once, credentials in URLs refused, duplicates refused', () => {
    const value = JSON.stringify([
      { url: 'https://rp.example/push', audience: 'https://rp.example/' },
      { url: 'https://u:pw@rp2.example/push', audience: 'rp2' },
      { url: 'not a url', audience: '' },
      { url: 'https://rp.example/push', audience: 'https://rp.example/' },
      { url: 'https://rp3.example/push', audience: 'rp3', token: 'x' },
      'oops',
    ]);
    let err: { code?: string; message: string } | undefined;
    try {
      setReceivers(raw({ setReceivers: { source: 'JWTIR_SET_RECEIVERS', value } }));
    } catch (error) {
      err = error as typeof err;
    }
    expect(err?.code).toBe('ERR_CONFIG_INVALID');
    expect(err?.message).toContain('has 6 problem(s)');
    expect(err?.message).toContain('JWTIR_SET_RECEIVERS[1].url holds credentials');
    expect(err?.message).not.toContain('u:pw');
    expect(err?.message).toContain('JWTIR_SET_RECEIVERS[2].url is not a URL');
    expect(err?.message).toContain('JWTIR_SET_RECEIVERS[2].audience must be a non-empty string');
    expect(err?.message).toContain('JWTIR_SET_RECEIVERS[3] repeats an earlier receiver');
    expect(err?.message).toContain('JWTIR_SET_RECEIVERS[4] has an unknown key "token"');
    expect(err?.message).toContain('JWTIR_SET_RECEIVERS[5] must be an object');
    expect(() => setReceivers(raw({ setReceivers: { source: 'JWTIR_SET_RECEIVERS', value: '[{' } }))).toThrow(/is not valid JSON/);
    expect(() => setReceivers(raw({ setReceivers: { source: 'setReceivers in the config file', value: [] } }))).toThrow(/non-empty JSON array/);
    expect(() => setReceivers(raw({}))).toThrow(expect.objectContaining({ code: 'ERR_NOTIFY_NOT_CONFIGURED' }));

    const ok = setReceivers(raw({ setReceivers: { source: 'file', value: [{ url: 'https://rp.example/push', audience: 'https://rp.example/' }] } }));
    expect(ok).toEqual([{ url: 'https://rp.example/push', audience: 'https://rp.example/' }]);
    expect(parseReceiverItem(receiverItem(ok[0]!))).toEqual(ok[0]);
    expect(() => setIssuer(raw({}))).toThrow(expect.objectContaining({ code: 'ERR_NOTIFY_NOT_CONFIGURED' }));
    expect(setIssuer(raw({ setIssuer: ' https://auth.example.com/ ' }))).toBe('https://auth.example.com/');
  });
});

describe('notification settings: environment over config file, checked only when used', () => {
  it('takes each from the strongest source, and a broken one does not stop other commands from resolving settings', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-notify-config-'));
    const receivers = [{ url: 'https://file.example/push', audience: 'file' }];
    writeFileSync(path.join(dir, 'jwtir.config.json'), JSON.stringify({ oncallWebhookUrl: 'https://hooks.example/file', setReceivers: receivers, setIssuer: 'https://file.example/' }));
    expect(resolveSettings({}, {}, dir).notify).toEqual({
      oncallWebhookUrl: 'https://hooks.example/file',
      setReceivers: { source: 'setReceivers in the config file', value: receivers },
      setIssuer: 'https://file.example/',
    });
    const env = { JWTIR_ONCALL_WEBHOOK_URL: 'https://hooks.example/env', JWTIR_SET_RECEIVERS: '{broken', JWTIR_SET_ISSUER: 'https://env.example/' };
    const settings = resolveSettings({}, env, dir);
    expect(settings.notify).toEqual({ oncallWebhookUrl: 'https://hooks.example/env', setReceivers: { source: 'JWTIR_SET_RECEIVERS', value: '{broken' }, setIssuer: 'https://env.example/' });
    expect(() => setReceivers(settings.notify)).toThrow(/JWTIR_SET_RECEIVERS is not valid JSON/);
  });
});

describe('affected sessions of several steps', () => {
  it('renumbers the run and step parameters of each copy in one pass', () => {
    const sql = affectedByStepsSql(2, 6, 8);
    expect(sql.match(/\$\d+/g)!.filter((p, i, all) => all.indexOf(p) === i).sort()).toEqual(['$6', '$8', '$9']);
    expect(sql).not.toMatch(/\$[12](?!\d)/);
  });
});

describe('the notify runbooks', () => {
  it('load, and a send step may not drop its undo: a sent message is declared unrecallable, not forgotten', () => {
    for (const name of ['notify-users', 'notify-oncall', 'notify-set']) expect(loadRunbook(path.join(BUILTIN_RUNBOOK_DIR, `${name}.yaml`)).doc.name).toBe(name);
    const text = readFileSync(path.join(BUILTIN_RUNBOOK_DIR, 'notify-oncall.yaml'), 'utf8');
    expect(text).toContain('undo: { none: a message that was sent cannot be recalled }');
    const broken = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-notify-')), 'notify-oncall.yaml');
    writeFileSync(broken, text.replace(/\n\s*undo: \{ none: [^\n]*/, ''));
    expect(() => loadRunbook(broken)).toThrow('action notify.oncall changes state, so the step must declare an undo');
  });
});
