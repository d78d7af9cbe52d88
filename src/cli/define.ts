import { Command } from 'commander';
import { withContext, type CommandContext, type CommonOptions } from './context.js';

/**
 * The pieces every command definition uses: the shared option group, the exit-code help text,
 * and the adapter that loads a command's module only when it runs (so `jwtir --help` starts
 * fast and loads no database driver or crypto).
 */
export const EXIT_CODES = `
Exit codes:
  0    success
  1    internal error (a bug: please report it)
  2    bad input: a flag, argument, file or runbook is wrong; nothing was changed
  3    conflict: a lock is held, or the state does not allow this (resume or roll back first)
  4    a backend (Postgres, Redis, the embedded database) is unreachable
  5    refused for safety: missing or wrong KEK, weak secret, unsafe file mode
  6    integrity: the audit trail is broken, or could not be written (so nothing was done)
  7    a runbook step failed; the run is stopped and can be resumed or rolled back
  130  aborted: a confirmation was declined`;

/** Options shared by every command (node-pg-migrate style option group). */
function withCommon(cmd: Command): Command {
  return cmd
    .optionsGroup('Common options:')
    .option('--json', 'machine-readable output on stdout (human output stays on stderr)')
    .option('--no-color', 'no colors (NO_COLOR is honoured too)')
    .option('--database-url <url>', 'Postgres URL without a password (default: DATABASE_URL, else the embedded database)')
    .option('--redis-url <url>', 'Redis URL without a password (default: REDIS_URL, else tables in the database)')
    .option('--state-dir <dir>', 'directory of the embedded database (default: JWTIR_STATE_DIR or ./.jwtir)')
    .option('--schema <name>', 'Postgres schema (default: JWTIR_SCHEMA or jwtir)')
    .option('--config <file>', 'config file (default: JWTIR_CONFIG or ./jwtir.config.json)')
    .optionsGroup('Options:');
}

type Handler = (...args: unknown[]) => Promise<void>;

/** Adapts a lazily imported command function to commander: the last two args are (opts, cmd). */
export function action<A extends unknown[]>(load: () => Promise<(ctx: CommandContext, ...rest: A) => Promise<void>>): Handler {
  return async (...args: unknown[]) => {
    const cmd = args.at(-1) as Command;
    const opts = cmd.optsWithGlobals() as CommonOptions;
    const positional = args.slice(0, -2);
    const fn = await load();
    await withContext(opts, (ctx) => fn(ctx, ...([...positional, opts] as unknown as A)));
  };
}

/** A (sub)command with the common options, help after errors, and examples with the exit codes. */
export function command(parent: Command, name: string, description: string, examples: string[] = []): Command {
  const c = withCommon(parent.command(name).description(description));
  c.exitOverride().showHelpAfterError('(run with --help for usage)');
  if (examples.length) c.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n${EXIT_CODES}`);
  return c;
}
