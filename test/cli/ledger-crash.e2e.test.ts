import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, expect, it } from '@jest/globals';
import { verifyAuditChain } from '../../src/state/audit.js';
import type { LedgerSession } from '../../src/state/ledger.js';
import { runCli, runOk } from '../helpers/cli.js';
import { describeBackend, freshCase } from '../helpers/services.js';
import { seedLedger, withState } from '../helpers/state.js';

/**
 * Kills `ledger import` with SIGKILL before and after its merge takes effect, resumes the run,
 * and compares the ledger, the guards' reference ledger, the source's mark and the audit trail
 * with an uninterrupted import's. Rolls an import back (also killed halfway) to the ledger it found.
 */
const secret = randomBytes(32).toString('hex');
const NOW = Math.floor(Date.now() / 1000);
// 300 sessions in the file; the first 50 are in the ledger already (the guard's issuer recorded them).
const fileSessions = Array.from({ length: 300 }, (_, i) => ({ sid: `s-${i}`, sub: `user-${i % 120}`, issued_at: NOW - 600 + i, expires_at: NOW + 3000 + i, roles: i % 50 === 0 ? ['admin'] : ['customer'] }));
const known: LedgerSession[] = fileSessions.slice(0, 50).map((s) => ({ sid: s.sid, sub: s.sub, kid: 'legacy', roles: s.roles, fph: null, issuedAt: new Date(s.issued_at * 1000), expiresAt: new Date(s.expires_at * 1000) }));
const FILE = path.join(mkdtempSync(path.join(os.tmpdir(), 'jwtir-ledger-crash-')), 'sessions.ndjson');
writeFileSync(FILE, fileSessions.map((s) => JSON.stringify(s)).join('\n') + '\n');
const IMPORT = ['ledger', 'import', '--from-file', FILE, '--kid', 'legacy', '--yes', '--json'];

describeBackend(freshCase('postgres+redis', 'ledger_crash'), 'ledger import killed at any point', () => {
  let pristine: FinalState;
  let imported: FinalState;

  /** A state with the compromised legacy key and the 50 sessions the guard recorded. */
  async function fresh(): Promise<Record<string, string>> {
    const { env } = freshCase('postgres+redis', 'ledger_crash');
    await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
    await seedLedger(env, known);
    await withState(env, (b) => b.db.query(`UPDATE keys SET compromised = true, compromised_at = now() WHERE kid = 'legacy'`));
    return env;
  }

  async function killedRun(env: Record<string, string>, args: string[], failpoint: string): Promise<number> {
    const res = await runCli(args, { env: { ...env, JWTIR_FAILPOINT: failpoint } });
    expect(res.signal).toBe('SIGKILL');
    return withState(env, async (b) => Number((await b.db.query<{ id: number }>(`SELECT id FROM runs WHERE runbook = 'ledger-import' ORDER BY id DESC LIMIT 1`))[0]!.id));
  }

  beforeAll(async () => {
    const env = await fresh();
    pristine = await finalState(env);
    const res = await runOk(IMPORT, { env });
    expect(res.json.steps[0].outputs).toMatchObject({ read: 300, new: 250, known: 50, pushed: 250 });
    imported = await finalState(env);
    expect(imported.sessions).toBe(300);
    expect(imported.hotSids).toBe(250);
  });

  for (const point of ['before', 'after'] as const) {
    it(`killed at import:${point}, the run holds its lock; resumed, it ends where an uninterrupted import does`, async () => {
      const env = await fresh();
      const runId = await killedRun(env, IMPORT, `import:${point}`);
      const second = await runCli(IMPORT, { env });
      expect(second.code).toBe(3);
      expect(second.json.error.code).toBe('ERR_LOCK_HELD');
      const resumed = await runOk(['runs', 'resume', String(runId), '--yes', '--json'], { env });
      expect(resumed.json.steps[0].outputs).toMatchObject({ read: 300, new: 250, known: 50, pushed: 250 });
      expect(await finalState(env)).toEqual(imported);
    });
  }

  it('a rollback, killed at its undo and run again, removes what the import added and moves the mark back', async () => {
    const env = await fresh();
    const run = await runOk(IMPORT, { env });
    await runCli(['runs', 'rollback', String(run.json.runId), '--yes', '--json'], { env: { ...env, JWTIR_FAILPOINT: 'import:undo' } });
    const rolled = await runOk(['runs', 'rollback', String(run.json.runId), '--yes', '--json'], { env });
    expect(rolled.json.status).toBe('rolled_back');
    const after = await finalState(env);
    expect({ ledger: after.ledger, sessions: after.sessions, staged: after.staged }).toEqual({ ledger: pristine.ledger, sessions: 50, staged: 0 });
    expect(after.marks).toEqual([null]);
    // With the mark moved back, the next import reads the file whole and adds the sessions again.
    expect((await runOk(IMPORT, { env })).json.steps[0].outputs).toMatchObject({ read: 300, new: 250, known: 50 });
  });
});

describeBackend(freshCase('postgres+redis', 'ledger_undo'), 'ledger import undo and other sources', () => {
  it('a rollback keeps the sessions another source read since; undoing that import then removes them', async () => {
    const { env } = freshCase('postgres+redis', 'ledger_undo');
    await runOk(['keys', 'import', '--kid', 'legacy', '--alg', 'HS256', '--secret-env', 'JWT_SECRET', '--json'], { env: { ...env, JWT_SECRET: secret } });
    // A second export that overlaps the first in 10 sessions and adds 5 of its own.
    const other = path.join(path.dirname(FILE), 'other.csv');
    writeFileSync(other, ['sid,sub,issued_at,expires_at', ...fileSessions.slice(0, 10).map((x) => `${x.sid},${x.sub},${x.issued_at},${x.expires_at}`), ...[1, 2, 3, 4, 5].map((i) => `o-${i},other-${i},${NOW - 60},${NOW + 600}`)].join('\n') + '\n');
    const first = await runOk(IMPORT, { env });
    const second = await runOk(['ledger', 'import', '--from-file', other, '--kid', 'legacy', '--yes', '--json'], { env });
    expect(second.json.steps[0].outputs).toMatchObject({ read: 15, new: 5, known: 10 });

    const undoFirst = await runOk(['runs', 'rollback', String(first.json.runId), '--yes', '--json'], { env });
    expect(undoFirst.json.steps[0].state).toBe('rolled_back');
    const sids = async () => withState(env, async (b) => (await b.db.query<{ sid: string }>('SELECT sid FROM sessions ORDER BY sid')).map((r) => r.sid));
    expect(await sids()).toEqual([...fileSessions.slice(0, 10).map((x) => x.sid), 'o-1', 'o-2', 'o-3', 'o-4', 'o-5'].sort());
    await runOk(['runs', 'rollback', String(second.json.runId), '--yes', '--json'], { env });
    expect(await sids()).toEqual([]);
    const undone = await withState(env, (b) => b.db.query<{ removed: number; kept: number }>('SELECT removed::int, kept::int FROM ledger_imports ORDER BY created_at'));
    expect(undone).toEqual([{ removed: 290, kept: 10 }, { removed: 15, kept: 0 }]);
  });
});

interface FinalState {
  sessions: number;
  ledger: string;
  marks: unknown[];
  staged: number;
  imports: string[];
  hotSids: number;
  hotHash: string;
  audit: string[];
  auditIntact: boolean;
}

async function finalState(env: Record<string, string>): Promise<FinalState> {
  return withState(env, async (b) => {
    const rows = await b.db.query<Record<string, unknown>>(
      `SELECT sid, sub, kid, roles, fph, issued_at, expires_at, source, cohort, import_run, import_seen_run FROM sessions ORDER BY sid`,
    );
    const marks = (await b.db.query<{ mark: unknown }>('SELECT mark FROM ledger_sources ORDER BY id')).map((r) => r.mark);
    const [staged] = await b.db.query<{ n: number }>('SELECT count(*)::int AS n FROM ledger_staging');
    const imports = await b.db.query<{ s: string }>(`SELECT concat_ws('|', rows, new_sessions, merged_at IS NOT NULL, undone_at IS NOT NULL, removed, kept) AS s FROM ledger_imports ORDER BY created_at`);
    const snap = await b.hot.snapshot();
    const sids = [...(snap.ledger.get('legacy')?.sids ?? [])].sort();
    const audit = await b.db.query<{ body: { action: string; step: string | null; phase: string | null } }>('SELECT body FROM audit ORDER BY seq');
    return {
      sessions: rows.length,
      ledger: createHash('sha256').update(JSON.stringify(rows)).digest('hex'),
      marks,
      staged: staged!.n,
      imports: imports.map((r) => r.s),
      hotSids: sids.length,
      hotHash: createHash('sha256').update(sids.join(',')).digest('hex'),
      // A resume adds its own `run.resume` row; every step's rows must appear exactly once, in order.
      audit: audit.map((r) => r.body).filter((x) => x.action !== 'run.resume').map((x) => `${x.action}|${x.step ?? ''}|${x.phase ?? ''}`),
      auditIntact: (await verifyAuditChain(b.db)).intact,
    };
  });
}
