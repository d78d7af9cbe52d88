import { formatDuration, parseDuration } from '../../config/duration.js';
import path from 'node:path';
import { InvalidStateError, UsageError } from '../../errors.js';
import { assertExportDir } from '../../keys/export-dir.js';
import { assertAlg } from '../../runbook/actions/keys.js';
import { findActiveKey, getKey } from '../../state/keys.js';
import { longestLifetimeMs } from '../../state/ledger.js';
import { currentPolicy } from '../../state/policy.js';
import type { CommandContext } from '../context.js';
import { runRunbook } from '../run-runbook.js';

export interface RotateOptions {
  staged?: boolean;
  from?: string;
  alg?: string;
  compromised?: boolean;
  grace?: string;
  publishWait?: string;
  privilegedRoles?: string;
  exportTo?: string;
  activateCmd?: string;
  activateTimeout?: string;
  dryRun?: boolean;
}

/**
 * `jwtir rotate --staged`: resolves the defaults that depend on the current state (which key,
 * which algorithm, how long a grace) into explicit parameters, so the run records exactly what
 * it will do and a resume does the same.
 */
export async function rotate(ctx: CommandContext, o: RotateOptions): Promise<void> {
  if (!o.staged) {
    throw new UsageError('rotate runs in stages only: pass --staged', {
      hint: 'an all-at-once rotation would log out every user; --grace 0s and --publish-wait 0s shorten the stages if you truly need that',
    });
  }
  // Parse every flag before touching state: a typo must fail with nothing opened or changed.
  const grace = o.grace === undefined ? undefined : parseDuration(o.grace, '--grace');
  const publishWait = o.publishWait === undefined ? undefined : parseDuration(o.publishWait, '--publish-wait', 24 * 3600 * 1000);
  if (o.alg) assertAlg(o.alg);
  const activateTimeout = o.activateTimeout === undefined ? undefined : parseDuration(o.activateTimeout, '--activate-timeout', 24 * 3600 * 1000);
  if (activateTimeout !== undefined && activateTimeout < 1000) throw new UsageError(`--activate-timeout "${o.activateTimeout}" is shorter than a second`);
  if (activateTimeout !== undefined && !o.exportTo && !o.activateCmd) {
    throw new UsageError('--activate-timeout is how long the hand-off to the issuer may take: add --export-to and/or --activate-cmd');
  }
  if (o.exportTo) assertExportDir(o.exportTo);
  const db = (await ctx.backends()).db;
  const from = o.from ? await getKey(db, o.from) : await findActiveKey(db);
  if (!from) {
    throw new InvalidStateError('there is no active signing key to rotate away from', {
      hint: 'import the secret the service signs with first: `jwtir keys import --kid <kid> --alg HS256 --secret-env JWT_SECRET`',
    });
  }
  if (from.state !== 'active') throw new InvalidStateError(`key ${from.kid} is ${from.state}; only the active key can be rotated away from`);
  const graceMs = grace ?? (await defaultGrace(ctx, from.kid));
  await runRunbook(
    ctx,
    'rotate',
    {
      from: from.kid,
      alg: o.alg ?? from.alg,
      grace: graceMs,
      publishWait,
      privilegedRoles: o.privilegedRoles,
      compromised: o.compromised === true,
      exportTo: o.exportTo ? path.resolve(o.exportTo) : undefined,
      activateCmd: o.activateCmd,
      activateTimeout,
      handOff: Boolean(o.exportTo || o.activateCmd),
    },
    { dryRun: o.dryRun, confirmPlan: true },
  );
}

/** The longest token lifetime the ledger has seen for the key, plus the clock tolerance. */
async function defaultGrace(ctx: CommandContext, kid: string): Promise<number> {
  const db = (await ctx.backends()).db;
  const lifetime = await longestLifetimeMs(db, kid);
  if (lifetime <= 0) {
    throw new UsageError(`cannot choose a grace period: the session ledger has no tokens signed by ${kid}`, {
      hint: 'pass --grace with the longest lifetime of the tokens it signed (for example --grace 1h)',
    });
  }
  const tolerance = (await currentPolicy(db)).doc.clockToleranceSec * 1000;
  const grace = lifetime + tolerance;
  ctx.out.info(ctx.out.color.dim(`grace: ${formatDuration(grace)} (longest token lifetime seen ${formatDuration(lifetime)} + clock tolerance)`));
  return grace;
}
