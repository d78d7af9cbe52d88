import { parseDuration } from '../../config/duration.js';
import { EntryInvalidError, InvalidDurationError, NotBlacklistedError, UsageError } from '../../errors.js';
import { countKinds, entrySet, KIND_NAMES, listBlacklist, MAX_VALUE_BYTES, notBlacklisted, valueProblem, valuesOf, type BlacklistEntry, type BlacklistKind } from '../../state/blacklist.js';
import { holdInputSet, saveInputSet, type InputSet } from '../../state/input-sets.js';
import { printable, refuseControlChars } from '../../lib/printable.js';
import { assertKnownUsers } from '../../state/users.js';
import type { CommandContext } from '../context.js';
import { readFindingsFile } from '../findings.js';
import { parseIntStrict } from '../parse.js';
import { table } from '../render.js';
import { runRunbook } from '../run-runbook.js';

export interface SelectorOptions {
  jti?: string[];
  session?: string[];
  user?: string[];
  device?: string[];
  fromFile?: string;
  dryRun?: boolean;
}

export interface AddOptions extends SelectorOptions {
  ttl?: string;
  reason?: string;
  allowUnknown?: boolean;
}

const FLAGS: Array<[keyof SelectorOptions, BlacklistKind]> = [
  ['jti', 'jti'],
  ['session', 'sid'],
  ['user', 'user'],
  ['device', 'fph'],
];

/**
 * `jwtir blacklist add`: read → check (every flag and every line of the file, then the users
 * against the ledger) → store the entry set → plan → run `blacklist-add`.
 */
export async function add(ctx: CommandContext, o: AddOptions): Promise<void> {
  const set = readSelection(o);
  const ttlMs = o.ttl === undefined ? null : parseTtl(o.ttl);
  if (o.reason !== undefined && (o.reason === '' || Buffer.byteLength(o.reason) > MAX_VALUE_BYTES)) {
    throw new UsageError(`--reason must be 1 to ${MAX_VALUE_BYTES} bytes`);
  }
  if (o.reason !== undefined) refuseControlChars(o.reason, '--reason');
  const db = (await ctx.backends()).db;
  const users = valuesOf(set.items, 'user');
  if (!o.allowUnknown) {
    await assertKnownUsers(db, users, 'check the spelling; a forged subject may be unknown: pass --allow-unknown to blacklist it anyway. Nothing was changed');
  }
  const counts = countKinds(set.items);
  if (ttlMs !== null && counts.user > 0) {
    ctx.out.warn('--ttl applies to jti, session and device entries; a user watermark lasts until the tokens it ends would have expired');
  }
  await start(ctx, 'blacklist-add', set, o.dryRun === true, { ttl: ttlMs, reason: o.reason });
}

/** `jwtir blacklist remove`: refuses values that are not blacklisted, else runs `blacklist-remove`. */
export async function remove(ctx: CommandContext, o: SelectorOptions): Promise<void> {
  const set = readSelection(o);
  const missing = await notBlacklisted((await ctx.backends()).db, set.items);
  if (missing.length) {
    throw new NotBlacklistedError(`not blacklisted: ${sample(missing.map((e) => `${KIND_NAMES[e.kind]} ${e.value}`))}`, {
      hint: 'see what is with `jwtir blacklist list`; remove only those. Nothing was changed',
    });
  }
  await start(ctx, 'blacklist-remove', set, o.dryRun === true, {});
}

export async function list(ctx: CommandContext, o: { kind?: string; limit?: string }): Promise<void> {
  const kind = o.kind === undefined ? undefined : (Object.entries(KIND_NAMES).find(([, name]) => name === o.kind)?.[0] as BlacklistKind | undefined);
  const limit = o.limit === undefined ? 100 : parseIntStrict(o.limit, '--limit');
  // 0 would list nothing and print "the blacklist is empty" while entries are live.
  if (limit < 1) throw new UsageError(`--limit must be at least 1, got ${limit}`, { hint: 'give how many entries to show, for example --limit 1000' });
  const { total, entries } = await listBlacklist((await ctx.backends()).db, { ...(kind ? { kind } : {}), limit });
  ctx.out.result({ total, entries }, () => {
    if (entries.length === 0) return o.kind ? `no ${o.kind} is blacklisted` : 'the blacklist is empty';
    // Entries stored before their text was checked are shown escaped all the same.
    const rows = entries.map((e) => [
      e.kind,
      e.kind === 'device' ? `${e.value.slice(0, 12)}…` : printable(e.value),
      e.expiresAt?.toISOString() ?? null,
      e.expiryRule,
      e.reason === null ? null : printable(e.reason),
      e.runId,
    ]);
    const more = total > entries.length ? ctx.out.color.dim(`\n${entries.length} of ${total} shown (newest first); --limit shows more`) : '';
    return table(['KIND', 'VALUE', 'EXPIRES', 'BY', 'REASON', 'RUN'], rows) + more;
  });
}

/** Every entry the flags and the file name, checked all at once, as one canonical set. */
function readSelection(o: SelectorOptions): InputSet<BlacklistEntry> {
  const entries: BlacklistEntry[] = [];
  const problems: string[] = [];
  for (const [flag, kind] of FLAGS) {
    for (const value of (o[flag] as string[] | undefined) ?? []) {
      const problem = valueProblem(kind, value);
      if (problem) problems.push(`--${flag}: ${problem}`);
      else entries.push({ kind, value });
    }
  }
  if (problems.length) throw new EntryInvalidError(problems.join('; '), { hint: 'fix the values given; nothing was changed' });
  if (o.fromFile !== undefined) entries.push(...readFindingsFile(o.fromFile));
  if (entries.length === 0) {
    throw new UsageError('nothing selected: give --jti, --session, --user, --device or --from-file', { hint: 'run with --help for examples' });
  }
  const flagged = FLAGS.some(([flag]) => ((o[flag] as string[] | undefined) ?? []).length > 0);
  const source = o.fromFile === undefined ? 'flags' : flagged ? `${o.fromFile} and flags` : o.fromFile;
  return entrySet(entries, source);
}

function parseTtl(text: string): number {
  const ms = parseDuration(text, '--ttl');
  if (ms < 1000) throw new InvalidDurationError(`--ttl "${text}" is shorter than a second`, { hint: 'give how long the entries should last, for example 1h or 7d' });
  return ms;
}

/**
 * Holds the set for the plan; a real run also stores it first, so a resume in another process
 * finds it. A stored set no run names is inert (nothing reads it), so a declined plan leaves
 * nothing that acts.
 */
async function start(ctx: CommandContext, runbook: string, set: InputSet<BlacklistEntry>, dryRun: boolean, extra: Record<string, unknown>): Promise<void> {
  holdInputSet(set);
  if (!dryRun) {
    ctx.requireInteractiveOrYes();
    await saveInputSet((await ctx.backends()).db, set);
  }
  const n = countKinds(set.items);
  await runRunbook(
    ctx,
    runbook,
    { set: set.hash, source: set.source, jtis: n.jti, sessions: n.sid, devices: n.fph, revocations: n.jti + n.sid + n.fph, users: n.user, ...extra },
    { dryRun, confirmPlan: true },
  );
}

/** The first few of a list, with how many more: messages stay readable for 100,000 values. */
function sample(values: string[], max = 20): string {
  const shown = values.slice(0, max).join(', ');
  return values.length > max ? `${shown} … and ${values.length - max} more` : shown;
}
