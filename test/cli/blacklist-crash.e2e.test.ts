import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import type { LedgerSession } from '../../src/state/ledger.js';
import { runCli, runOk } from '../helpers/cli.js';
import { describeBackend, freshCase, type BackendCase } from '../helpers/services.js';
import { seedLedger, withState } from '../helpers/state.js';

/**
 * Kills `blacklist add` and `blacklist remove` with SIGKILL at every step's `before` and `after`
 * failpoint, resumes the run, and compares revocations, watermarks, the hot store and the audit
 * trail with an uninterrupted run's; and rolls a killed run back to where it started.
 */
const NOW = Math.floor(Date.now() / 1000);
const ledger: LedgerSession[] = Array.from({ length: 30 }, (_, i) => ({
  sid: `s-${i}`,
  sub: `user-${i}`,
  kid: 'legacy',
  roles: ['customer'],
  fph: null,
  issuedAt: new Date((NOW - 600) * 1000),
  expiresAt: new Date((NOW + 3000 + i) * 1000),
  source: 'import',
}));
// Every kind, every step: jtis and devices with exp, sessions the ledger knows, users.
const findings = [
  ...Array.from({ length: 50 }, (_, i) => ({ jti: `j-${i}`, exp: NOW + 1800 + i })),
  ...ledger.slice(0, 20).map((s) => ({ session: s.sid })),
  ...Array.from({ length: 5 }, (_, i) => ({ fph: String(i).repeat(64), exp: NOW + 900 })),
  ...ledger.slice(20, 25).map((s) => ({ sub: s.sub, reason: 'phished' })),
];
const FILE = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-crash-findings-')), 'findings.ndjson');
writeFileSync(FILE, findings.map((f) => JSON.stringify(f)).join('\n'));
const ADD = ['blacklist', 'add', '--from-file', FILE, '--yes', '--json'];
const REMOVE = ['blacklist', 'remove', '--from-file', FILE, '--yes', '--json'];

const base = freshCase('postgres+redis', 'bl_crash');

describeBackend(base, 'blacklist runs killed at any point', () => {
  let afterAdd: FinalState;
  let afterRemove: FinalState;

  async function fresh(): Promise<BackendCase> {
    const c = freshCase('postgres+redis', 'bl_crash');
    await seedLedger(c.env, ledger);
    return c;
  }

  async function killed(env: Record<string, string>, args: string[], failpoint: string): Promise<number> {
    const res = await runCli(args, { env: { ...env, JWTIR_FAILPOINT: failpoint } });
    expect(res.signal).toBe('SIGKILL');
    const runs = await runOk(['runs', 'list', '--json'], { env });
    const run = runs.json.runs[0];
    expect(run).toMatchObject({ runbook: args[1] === 'add' ? 'blacklist-add' : 'blacklist-remove', status: 'running' });
    // The crashed run keeps its lock: no other blacklist run can start until it is resumed or rolled back.
    const other = await runCli(['blacklist', 'add', '--jti', 'other', '--yes', '--json'], { env });
    expect(other.json.error.code).toBe('ERR_LOCK_HELD');
    return run.id;
  }

  beforeAll(async () => {
    const c = await fresh();
    expect((await runOk(ADD, { env: c.env })).json.status).toBe('done');
    afterAdd = await finalState(c.env);
    expect(afterAdd.revocations.filter((r) => !r.lifted)).toHaveLength(75);
    expect(afterAdd.watermarks).toHaveLength(5);
    expect((await runOk(REMOVE, { env: c.env })).json.status).toBe('done');
    afterRemove = await finalState(c.env);
    expect(afterRemove.revocations.filter((r) => !r.lifted)).toHaveLength(0);
    expect(afterRemove.hot.revocations).toEqual([]);
  });

  describe('blacklist add', () => {
    for (const step of ['revoke', 'users']) {
      for (const point of ['before', 'after'] as const) {
        it(`killed at ${step}:${point}, then resumed`, async () => {
          const { env } = await fresh();
          const runId = await killed(env, ADD, `${step}:${point}`);
          expect((await runOk(['runs', 'resume', String(runId), '--yes', '--json'], { env })).json.status).toBe('done');
          expect(await finalState(env)).toEqual(afterAdd);
        });
      }
    }

    it('killed at revoke:after, then rolled back: nothing stays blacklisted', async () => {
      const { env } = await fresh();
      const runId = await killed(env, ADD, 'revoke:after');
      expect((await runOk(['runs', 'rollback', String(runId), '--yes', '--json'], { env })).json.status).toBe('rolled_back');
      const state = await finalState(env);
      expect(state.revocations.every((r) => r.lifted)).toBe(true);
      expect(state.hot).toEqual({ revocations: [], watermarks: [] });
      expect((await runOk(['blacklist', 'list', '--json'], { env })).json.total).toBe(0);
    });
  });

  describe('blacklist remove', () => {
    for (const step of ['lift', 'clear-users']) {
      for (const point of ['before', 'after'] as const) {
        it(`killed at ${step}:${point}, then resumed`, async () => {
          const { env } = await fresh();
          await runOk(ADD, { env });
          const runId = await killed(env, REMOVE, `${step}:${point}`);
          expect((await runOk(['runs', 'resume', String(runId), '--yes', '--json'], { env })).json.status).toBe('done');
          expect(await finalState(env)).toEqual(afterRemove);
        });
      }
    }

    it('killed at clear-users:after, then rolled back: every entry of the add applies again', async () => {
      const { env } = await fresh();
      await runOk(ADD, { env });
      const runId = await killed(env, REMOVE, 'clear-users:after');
      expect((await runOk(['runs', 'rollback', String(runId), '--yes', '--json'], { env })).json.status).toBe('rolled_back');
      const state = await finalState(env);
      expect(state.hot).toEqual(afterAdd.hot);
      expect((await runOk(['blacklist', 'list', '--limit', '1000', '--json'], { env })).json.total).toBe(80);
    });
  });
});

interface FinalState {
  revocations: Array<{ lifted: boolean } & Record<string, unknown>>;
  watermarks: Array<Record<string, unknown>>;
  hot: { revocations: Array<[string, string, number]>; watermarks: Array<[string, number]> };
  audit: string[];
  auditIntact: boolean;
  steps: string[];
}

/**
 * Everything a blacklist run changes. Times that depend on when the step ran (a watermark's
 * not-before and expiry) are given relative to the step's recorded start, which a resume keeps.
 */
async function finalState(env: Record<string, string>): Promise<FinalState> {
  const trail = await runOk(['audit', 'trail', '--json'], { env });
  return withState(env, async (b) => {
    const revocations = await b.db.query<{ lifted: boolean }>(
      `SELECT kind, value, extract(epoch FROM expires_at)::bigint AS expires, expiry_rule, reason, run_id, step, lifted_at IS NOT NULL AS lifted, lifted_by
       FROM revocations ORDER BY kind, value, run_id`,
    );
    const watermarks = await b.db.query(
      `SELECT w.subject, w.reason, w.expiry_rule, w.run_id, w.step, w.cleared_at IS NOT NULL AS cleared, w.cleared_by,
              extract(epoch FROM w.not_before - date_trunc('second', s.started_at))::int AS not_before,
              extract(epoch FROM w.expires_at - date_trunc('second', s.started_at))::int AS expires
       FROM watermarks w JOIN run_steps s ON s.run_id = w.run_id AND s.step = w.step ORDER BY w.subject`,
    );
    const [start] = await b.db.query<{ s: number }>(
      `SELECT extract(epoch FROM date_trunc('second', started_at))::bigint AS s FROM run_steps WHERE step = 'users' AND started_at IS NOT NULL LIMIT 1`,
    );
    const snapshot = await b.hot.snapshot();
    const hotRevocations = Object.entries(snapshot.revocations).flatMap(([kind, m]) => [...m].map(([v, until]) => [kind, v, until] as [string, string, number]));
    const auditRows = await b.db.query<{ body: { action: string; step: string | null; phase: string | null } }>('SELECT body FROM audit ORDER BY seq');
    const steps = await b.db.query<{ run_id: number; step: string; state: string }>('SELECT run_id, step, state FROM run_steps ORDER BY run_id, idx');
    return {
      revocations,
      watermarks,
      hot: {
        revocations: hotRevocations.sort(),
        watermarks: [...snapshot.watermarks.user].map(([s, nb]) => [s, nb - Number(start?.s ?? 0)] as [string, number]).sort(),
      },
      // A resume adds its own `run.resume` row; every step's rows must appear exactly once, in order.
      audit: auditRows.map((r) => r.body).filter((a) => a.action !== 'run.resume').map((a) => `${a.action}|${a.step ?? ''}|${a.phase ?? ''}`),
      auditIntact: trail.json.intact,
      steps: steps.map((s) => `${s.run_id}:${s.step}:${s.state}`),
    };
  });
}
