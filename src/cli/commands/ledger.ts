import { hasPassword } from '../../config/settings.js';
import { LedgerSourceError, LockHeldError, SecretInArgvError, UsageError } from '../../errors.js';
import { FIELDS, resolveMapping } from '../../ledger/fields.js';
import { describeMark, stageImport } from '../../ledger/import.js';
import type { Source } from '../../ledger/source.js';
import { discardImport, importHasRun } from '../../ledger/store.js';
import { getKey, listKeys, type KeyRecord } from '../../state/keys.js';
import { activeRuns } from '../../state/runs.js';
import type { Db } from '../../store/db.js';
import type { CommandContext } from '../context.js';
import { runRunbook } from '../run-runbook.js';

export interface ImportOptions {
  kid?: string;
  fromSql?: string;
  sourceUrl?: string;
  sourceUrlEnv?: string;
  fromFile?: string;
  format?: string;
  fromRedis?: string;
  sourceRedisUrl?: string;
  sourceRedisUrlEnv?: string;
  map?: string[];
  mapping?: string;
  full?: boolean;
  dryRun?: boolean;
}

/** Progress lines without a known total, at most this often (CI logs get one line each). */
const PROGRESS_EVERY_MS = 1000;

/**
 * `jwtir ledger import`: flags → source and mapping (no I/O) → key → read, check and stage the
 * whole source → plan → run `ledger-import`, which merges the staged rows. A bad row, a declined
 * plan or a held lock leaves no staged rows behind.
 */
export async function importLedger(ctx: CommandContext, o: ImportOptions): Promise<void> {
  const source = await sourceOf(o);
  const mapping = resolveMapping(source.kind, { ...(o.map ? { map: o.map } : {}), ...(o.mapping !== undefined ? { mappingFile: o.mapping } : {}) });
  const dryRun = o.dryRun === true;
  // Asked before reading: a source of a million rows should not be read only to be refused.
  if (!dryRun) ctx.requireInteractiveOrYes();
  const { db } = await ctx.backends();
  const kid = await keyFor(db, o.kid);
  if (!dryRun) await assertNotLocked(db);

  const staged = await stageImport(db, source, kid, mapping, { full: o.full === true, dryRun, progress: progressReporter(ctx, source) });
  const n = (x: number) => x.toLocaleString('en-US');
  ctx.out.succeed(`read ${n(staged.rows)} sessions from ${source.description}: ${n(staged.fresh)} new, ${n(staged.known)} already in the ledger`);
  if (staged.restarted) ctx.out.warn(`the file changed before the mark of the last import (${describeMark(staged.markBefore)}), so it was read whole again`);
  const params = {
    kid,
    source: source.kind,
    description: source.description,
    sourceId: staged.sourceId,
    mapping: FIELDS.map((f) => `${f}=${mapping.mapping[f] ?? ''}`).join(','),
    readFrom: describeMark(staged.markBefore),
    readTo: describeMark(staged.markAfter),
    staged: staged.importId ?? 'dry-run',
    rows: staged.rows,
    newSessions: staged.fresh,
    newUsers: staged.freshUsers,
  };
  try {
    await runRunbook(ctx, 'ledger-import', params, { dryRun, confirmPlan: true });
  } catch (error) {
    // Staged rows no run names would only wait for the hourly prune: remove them now.
    if (staged.importId && !(await importHasRun(db, staged.importId).catch(() => true))) await discardImport(db, staged.importId).catch(() => {});
    throw error;
  }
}

/** The source the flags name: exactly one, with its connection URL from a flag (no password) or a variable. */
async function sourceOf(o: ImportOptions): Promise<Source> {
  const given = [o.fromSql !== undefined && '--from-sql', o.fromFile !== undefined && '--from-file', o.fromRedis !== undefined && '--from-redis'].filter(Boolean);
  if (given.length !== 1) {
    throw new UsageError(given.length ? `give one source, not ${given.join(' and ')}` : 'give a source: --from-sql, --from-file or --from-redis', {
      hint: 'run `jwtir ledger import --help` for examples',
    });
  }
  const misplaced = (flags: Array<[string, unknown]>, owner: string) => {
    const wrong = flags.filter(([, v]) => v !== undefined).map(([f]) => f);
    if (wrong.length) throw new UsageError(`${wrong.join(', ')} ${wrong.length > 1 ? 'go' : 'goes'} with ${owner} only`);
  };
  if (o.fromSql === undefined) misplaced([['--source-url', o.sourceUrl], ['--source-url-env', o.sourceUrlEnv]], '--from-sql');
  if (o.fromRedis === undefined) misplaced([['--source-redis-url', o.sourceRedisUrl], ['--source-redis-url-env', o.sourceRedisUrlEnv]], '--from-redis');
  if (o.fromFile === undefined) misplaced([['--format', o.format]], '--from-file');
  if (o.fromSql !== undefined) {
    const { sqlSource } = await import('../../ledger/sources/sql.js');
    return sqlSource(o.fromSql, urlOf('--source-url', o.sourceUrl, o.sourceUrlEnv, 'the service\'s Postgres, e.g. postgres://reader@db:5432/app (the password in PGPASSWORD)'));
  }
  if (o.fromRedis !== undefined) {
    const { redisSource } = await import('../../ledger/sources/redis.js');
    return redisSource(o.fromRedis, urlOf('--source-redis-url', o.sourceRedisUrl, o.sourceRedisUrlEnv, 'the session store, e.g. redis://sessions:6379/0'));
  }
  const { fileFormat, fileSource } = await import('../../ledger/sources/file.js');
  return fileSource(o.fromFile!, fileFormat(o.fromFile!, o.format));
}

/**
 * A source URL from `--x` (refused with a password: arguments are visible to every user of the
 * machine) or from the variable `--x-env` names (which may hold one).
 */
function urlOf(flag: string, url: string | undefined, envVar: string | undefined, what: string): string {
  if (url !== undefined && envVar !== undefined) throw new UsageError(`give ${flag} or ${flag}-env, not both`);
  if (url !== undefined) {
    if (hasPassword(url)) {
      throw new SecretInArgvError(`${flag} contains a password, and arguments are visible to every user of this machine`, {
        hint: `put the URL in an environment variable and pass ${flag}-env <VAR>${flag === '--source-url' ? ', or give the password in PGPASSWORD' : ''}; nothing was changed`,
      });
    }
    return url;
  }
  if (envVar !== undefined) {
    const value = process.env[envVar];
    if (!value) throw new UsageError(`${flag}-env names ${envVar}, which is not set`, { hint: `export ${envVar}=<URL of ${what.split(',')[0]}>` });
    return value;
  }
  throw new LedgerSourceError(`say where to read from: ${flag} <url> or ${flag}-env <VAR>`, { hint: `the URL of ${what}` });
}

/**
 * The key the imported sessions' tokens were signed with: --kid, else the only kid-less key, else
 * the only compromised one, else the only active one.
 */
async function keyFor(db: Db, kid: string | undefined): Promise<string> {
  if (kid !== undefined) return (await getKey(db, kid)).kid;
  const keys = (await listKeys(db)).filter((k) => k.state !== 'destroyed');
  const rules: Array<[string, (k: KeyRecord) => boolean]> = [
    ['kid-less', (k) => k.kidless],
    ['compromised', (k) => k.compromised],
    ['active', (k) => k.state === 'active'],
  ];
  for (const [what, fits] of rules) {
    const found = keys.filter(fits);
    if (found.length === 1) return found[0]!.kid;
    if (found.length > 1) throw new UsageError(`more than one key is ${what} (${found.map((k) => k.kid).join(', ')})`, { hint: 'name the key these sessions were signed with: --kid <kid>' });
  }
  throw new UsageError(keys.length ? 'no key is kid-less, compromised or active, so there is no default --kid' : 'the key store is empty', {
    hint: keys.length ? `name the key these sessions were signed with: --kid <kid> (keys: ${keys.map((k) => k.kid).join(', ')})` : "import the service's key first: `jwtir keys import --help`",
  });
}

/** Refuses at once when another import run holds the lock, before reading a large source for nothing. */
async function assertNotLocked(db: Db): Promise<void> {
  const held = (await activeRuns(db)).find((r) => r.lock === 'ledger');
  if (!held) return;
  throw new LockHeldError(`the "ledger" lock is held by run ${held.id} (${held.runbook}, started by ${held.actor}, status ${held.status})`, {
    hint: `resume it with \`jwtir runs resume ${held.id}\` or roll it back with \`jwtir runs rollback ${held.id}\`, then import again`,
    details: { runId: held.id },
  });
}

/** A bar for files (bytes); for SQL and Redis, whose size is unknown, a count at most once a second. */
function progressReporter(ctx: CommandContext, source: Source) {
  let last = 0;
  let lastDone = -1;
  return (done: number, total: number | null, unit: 'rows' | 'bytes' | 'keys') => {
    const label = `reading ${source.description}`;
    if (done === lastDone) return;
    lastDone = done;
    if (total !== null) return ctx.out.progress(`${label} (${unit})`, { done, total });
    const now = Date.now();
    if (now - last < PROGRESS_EVERY_MS) return;
    last = now;
    ctx.out.progress(`${label}: ${done.toLocaleString('en-US')} ${unit}`);
  };
}
