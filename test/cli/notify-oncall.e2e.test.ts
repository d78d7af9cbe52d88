import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ExitCode } from '../../src/errors.js';
import { runCli, runOk, type CliResult } from '../helpers/cli.js';
import { expectFailure, notifySnapshot } from '../helpers/notify.js';
import { Receiver } from '../helpers/receiver.js';
import { backendCases, describeBackend } from '../helpers/services.js';
import { withState } from '../helpers/state.js';

/**
 * `jwtir notify oncall` against a real HTTP server standing in for a Slack incoming webhook: the
 * exact body, retries, Retry-After, giving up at the deadline (step failed, exit 7, recorded) and
 * `notify retry`; and the webhook URL, a secret, never shows anywhere.
 */
const TOKEN = 'xoxbSECRETwebhookTOKEN0123456789';
const PATH = `/services/T0AAAAAAA/B0BBBBBBB/${TOKEN}`;

type SendRow = { status: string; attempts: number; last_status: number | null; last_error: string | null; target: string; channel: string };
const sendsOf = (env: Record<string, string>, runId: number) =>
  withState(env, (b) => b.db.query<SendRow>('SELECT status, attempts, last_status, last_error, target, channel FROM notify_sends WHERE run_id = $1', [runId]));

for (const c of backendCases('notify_oncall', ['postgres+redis', 'embedded'])) {
  describeBackend(c, 'jwtir notify oncall: the on-call webhook', () => {
    let hook: Receiver;
    let env: Record<string, string>;
    let generateRun: number;
    /** Every CLI result of this suite, searched at the end for the webhook's secret. */
    const seen: CliResult[] = [];
    /** Runs whose records hold errors and hints: the likeliest place for a URL to leak. */
    const failedRuns: number[] = [];
    const cli = async (args: string[], expectCode = 0, extra: Record<string, string | undefined> = {}) => {
      const res = expectCode === 0 ? await runOk(args, { env: { ...env, ...extra } }) : await runCli(args, { env: { ...env, ...extra } });
      seen.push(res);
      if (expectCode !== 0 && res.code !== expectCode) throw new Error(`exit ${res.code ?? res.signal}, expected ${expectCode}\n${res.stdout}\n${res.stderr}`);
      return res;
    };
    const oncall = (args: string[], expectCode = 0) => cli(['notify', 'oncall', '--yes', '--json', ...args], expectCode);

    beforeAll(async () => {
      hook = await Receiver.start();
      env = { ...c.env, JWTIR_ONCALL_WEBHOOK_URL: hook.url(PATH) };
      await cli(['init', '--json']);
      generateRun = (await cli(['keys', 'generate', '--alg', 'ES256', '--yes', '--json'])).json.runId;
    });
    afterAll(async () => {
      await hook.close();
    });

    it('posts the exact Slack-compatible JSON once, escaping &, < and >', async () => {
      const n = hook.requests.length;
      const res = await oncall(['--message', 'Leaked key <legacy> & rotation: *started*']);
      expect(res.json).toMatchObject({ runbook: 'notify-oncall', status: 'done', steps: [{ step: 'post', state: 'done', outputs: { sent: 1, target: `127.0.0.1:${hook.port}` } }] });
      const got = hook.requests.slice(n);
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ method: 'POST', path: PATH, headers: expect.objectContaining({ 'content-type': 'application/json' }) });
      expect(JSON.parse(got[0]!.body)).toEqual({
        text: 'Leaked key &lt;legacy&gt; &amp; rotation: *started*',
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text: 'Leaked key &lt;legacy&gt; &amp; rotation: *started*' } },
          { type: 'context', elements: [{ type: 'mrkdwn', text: `sent by jwtir run ${res.json.runId} (test@jwtir)` }] },
        ],
      });
      expect(await sendsOf(env, res.json.runId)).toEqual([{ channel: 'webhook', target: `127.0.0.1:${hook.port}`, status: 'sent', attempts: 1, last_status: 200, last_error: null }]);
    });

    it('retries after two 503s and delivers on the third attempt, the same body each time', async () => {
      const n = hook.requests.length;
      hook.script([{ status: 503 }, { status: 503, body: 'over capacity' }]);
      const res = await oncall(['--message', 'retry me']);
      expect(res.json.status).toBe('done');
      const got = hook.requests.slice(n);
      expect(got).toHaveLength(3);
      expect(new Set(got.map((r) => r.body)).size).toBe(1);
      expect(await sendsOf(env, res.json.runId)).toMatchObject([{ status: 'sent', attempts: 3, last_status: 200 }]);
    });

    it('honours Retry-After on a 429', async () => {
      const n = hook.requests.length;
      hook.script([{ status: 429, headers: { 'retry-after': '1' }, body: 'rate_limited' }]);
      const res = await oncall(['--message', 'slow down']);
      expect(res.json.status).toBe('done');
      const [first, second] = hook.requests.slice(n);
      // A lower bound (not a timing benchmark): the backoff alone would retry after 250 ms.
      expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
      expect(await sendsOf(env, res.json.runId)).toMatchObject([{ status: 'sent', attempts: 2 }]);
    });

    it('gives up at the deadline: the step fails with exit 7, the send is recorded failed, and notify retry delivers it once the webhook recovers', async () => {
      hook.script([], { status: 503, body: 'down' });
      const failed = await oncall(['--message', 'deadline test', '--deadline', '1500ms', '--attempts', '20'], ExitCode.runFailed);
      const err = expectFailure(failed, ExitCode.runFailed, 'ERR_NOTIFY_SEND_FAILED');
      const runId = Number(/run (\d+) stopped/.exec(err.message)![1]);
      failedRuns.push(runId);
      expect(err.message).toMatch(new RegExp(`^run ${runId} stopped at step "post": 1 of 1 on-call message\\(s\\) not delivered: 127\\.0\\.0\\.1:${hook.port}: gave up after \\d+ attempt\\(s\\) in [\\d.]+s: HTTP 503: down$`));
      expect(err.hint).toContain('jwtir notify retry');
      const [row] = await sendsOf(env, runId);
      expect(row).toMatchObject({ status: 'failed', last_status: 503 });
      expect(row!.attempts).toBeGreaterThanOrEqual(2);
      const listed = await cli(['notify', 'list', '--status', 'failed', '--json']);
      expect(listed.json.sends).toEqual([expect.objectContaining({ runId, runStatus: 'failed', status: 'failed', channel: 'webhook' })]);
      // The failed run keeps its lock: a second message waits until this one is retried or rolled back.
      expectFailure(await oncall(['--message', 'meanwhile'], ExitCode.conflict), ExitCode.conflict, 'ERR_LOCK_HELD');

      hook.script([]);
      const dry = await cli(['notify', 'retry', '--dry-run', '--json']);
      expect(dry.json).toEqual({ dryRun: true, runs: [{ runId, runbook: 'notify-oncall', status: 'failed', unsent: 1 }] });
      const n = hook.requests.length;
      const retried = await cli(['notify', 'retry', '--yes', '--json']);
      expect(retried.json.retried).toEqual([expect.objectContaining({ runId, status: 'done' })]);
      expect(hook.requests.slice(n).map((r) => JSON.parse(r.body).text)).toEqual(['deadline test']);
      expect(await sendsOf(env, runId)).toMatchObject([{ status: 'sent', last_status: 200, last_error: null }]);
      const again = await cli(['notify', 'retry', '--yes', '--json']);
      expect(again.json).toEqual({ runs: [], retried: [] });
      expect(hook.requests.length).toBe(n + 1);
    });

    it('posts a summary of a run: its steps and the commands to inspect and undo it', async () => {
      const n = hook.requests.length;
      await oncall(['--from-run', String(generateRun)]);
      const text = JSON.parse(hook.requests[n]!.body).text as string;
      expect(text.split('\n').slice(0, 3)).toEqual([
        `*jwtir run ${generateRun} (keys-generate): done*`,
        expect.stringMatching(/^started by test@jwtir at \S+Z, finished at \S+Z$/),
        expect.stringMatching(/^• generate \(key\.generate\): done \{"alg":"ES256","kid":"es256-\d{8}-[0-9a-f]{8}"\}$/),
      ]);
      expect(text).toContain('• publish (key.publish): skipped');
      expect(text).toContain(`details: \`jwtir runs show ${generateRun}\``);
      expect(text).toContain(`undo: \`jwtir runs rollback ${generateRun}\``);
    });

    it('rolling back a run whose message failed sends nothing and records why it was not sent', async () => {
      const closed = await Receiver.start();
      const url = closed.url(PATH);
      await closed.close();
      const failed = await cli(['notify', 'oncall', '--message', 'into the void', '--attempts', '2', '--yes', '--json'], ExitCode.runFailed, { JWTIR_ONCALL_WEBHOOK_URL: url });
      const err = expectFailure(failed, ExitCode.runFailed, 'ERR_NOTIFY_SEND_FAILED');
      expect(err.message).toContain('network error ECONNREFUSED');
      const runId = Number(/run (\d+) stopped/.exec(err.message)![1]);
      failedRuns.push(runId);
      const n = hook.requests.length;
      const rolled = await cli(['runs', 'rollback', String(runId), '--yes', '--json']);
      expect(rolled.json.status).toBe('rolled_back');
      expect(hook.requests.length).toBe(n);
      const [row] = await sendsOf(env, runId);
      expect(row!.status).toBe('failed');
      expect(row!.last_error).toMatch(new RegExp(`network error ECONNREFUSED; not sent: run ${runId} was rolled back before delivery$`));
      // Nothing left to retry: a rolled-back run sends nothing more, and says so when asked.
      expect((await cli(['notify', 'retry', '--yes', '--json'])).json).toEqual({ runs: [], retried: [] });
      const asked = expectFailure(await cli(['notify', 'retry', '--run', String(runId), '--json'], ExitCode.conflict), ExitCode.conflict, 'ERR_INVALID_STATE');
      expect(asked.message).toBe(`run ${runId} is rolled back, so its 1 unsent message(s) stay as they are`);
    });

    describe('bad input is refused with nothing changed', () => {
      it('no webhook, a malformed one, contradicting flags, an unknown run, bad limits', async () => {
        const before = await notifySnapshot(env);
        const none = expectFailure(await cli(['notify', 'oncall', '--message', 'x', '--yes', '--json'], ExitCode.usage, { JWTIR_ONCALL_WEBHOOK_URL: undefined }), ExitCode.usage, 'ERR_NOTIFY_NOT_CONFIGURED');
        expect(none.hint).toContain('JWTIR_ONCALL_WEBHOOK_URL');
        const malformed = await cli(['notify', 'oncall', '--message', 'x', '--yes', '--json'], ExitCode.usage, { JWTIR_ONCALL_WEBHOOK_URL: `hooks.slack.com${PATH}` });
        expectFailure(malformed, ExitCode.usage, 'ERR_CONFIG_INVALID');
        // Refused before a run exists: fetch would fail on it only once the run had started (exit 7, lock kept).
        const credentials = await cli(['notify', 'oncall', '--message', 'x', '--yes', '--json'], ExitCode.usage, { JWTIR_ONCALL_WEBHOOK_URL: `http://ops:pw@127.0.0.1:${hook.port}${PATH}` });
        expect(expectFailure(credentials, ExitCode.usage, 'ERR_CONFIG_INVALID').message).toContain('holds credentials');
        expect(expectFailure(await oncall(['--message', 'x', '--from-run', '1'], ExitCode.usage), ExitCode.usage, 'ERR_USAGE').message).toBe('give exactly one of --message <text> or --from-run <id>');
        expect(expectFailure(await oncall([], ExitCode.usage), ExitCode.usage, 'ERR_USAGE').message).toBe('give exactly one of --message <text> or --from-run <id>');
        expectFailure(await oncall(['--from-run', '9999'], ExitCode.usage), ExitCode.usage, 'ERR_RUN_UNKNOWN');
        expect(expectFailure(await oncall(['--message', 'x', '--attempts', '0'], ExitCode.usage), ExitCode.usage, 'ERR_USAGE').message).toBe('--attempts must be between 1 and 20, got 0');
        expect(expectFailure(await oncall(['--message', 'x', '--deadline', '0s'], ExitCode.usage), ExitCode.usage, 'ERR_USAGE').message).toBe('--deadline must be longer than 0s');
        expectFailure(await oncall(['--message', 'x', '--deadline', '2 hours'], ExitCode.usage), ExitCode.usage, 'ERR_DURATION_INVALID');
        expect(expectFailure(await oncall(['--message', ''], ExitCode.usage), ExitCode.usage, 'ERR_USAGE').message).toBe('--message is empty');
        expect(await notifySnapshot(env)).toEqual(before);
      });
    });

    it('a receiver that echoes the path in its 404 does not put the secret into the error (checked everywhere below)', async () => {
      hook.reply = (r) => ({ status: 404, body: `Cannot POST ${r.path}` });
      const err = expectFailure(await oncall(['--message', 'echo'], ExitCode.runFailed), ExitCode.runFailed, 'ERR_NOTIFY_SEND_FAILED');
      expect(err.message).toMatch(/: HTTP 404: Cannot POST …$/);
      const runId = Number(/run (\d+) stopped/.exec(err.message)![1]);
      failedRuns.push(runId);
      expect((await sendsOf(env, runId))[0]!.last_error).toBe('HTTP 404: Cannot POST …');
      hook.script([]);
      await cli(['runs', 'rollback', String(runId), '--yes', '--json']);
    });

    it('the webhook URL appears nowhere: not in any output, the audit trail, runs show, the run records or the sends', async () => {
      const runs = (await cli(['runs', 'list', '--json'])).json.runs as Array<{ id: number }>;
      expect(failedRuns).toHaveLength(3);
      for (const id of failedRuns) {
        await cli(['runs', 'show', String(id)]);
        await cli(['runs', 'show', String(id), '--json']);
      }
      await cli(['notify', 'list', '--json']);
      await cli(['audit', 'trail', '--json']);
      const stored = await withState(env, async (b) =>
        JSON.stringify([
          await b.db.query('SELECT body FROM audit'),
          await b.db.query('SELECT params, error FROM runs'),
          await b.db.query('SELECT inputs, outputs, error FROM run_steps'),
          await b.db.query('SELECT * FROM notify_sends'),
        ]),
      );
      expect(runs.length).toBeGreaterThan(5);
      for (const text of [stored, ...seen.map((r) => r.stdout + r.stderr)]) {
        expect(text).not.toContain(TOKEN);
        expect(text).not.toContain('B0BBBBBBB');
      }
    });
  });
}
