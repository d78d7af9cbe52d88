import { Option, type Command } from 'commander';
import { action, command } from '../define.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The selectors `add` and `remove` share; each flag may be given several times. */
function withSelectors(cmd: Command): Command {
  return cmd
    .option('--jti <id>', 'a token id (repeatable)', collect)
    .option('--session <sid>', 'a session id (repeatable)', collect)
    .option('--user <sub>', 'a user: every token issued to them before now (repeatable)', collect)
    .option('--device <fph>', 'a device fingerprint hash, lower-case hex SHA-256 (repeatable)', collect)
    .option('--from-file <path>', 'a findings file: NDJSON or a JSON array of {jti|sid|sub|fph|token, exp?, reason?}');
}

/** Defines the `blacklist` commands (see define.ts for the helpers). */
export function registerBlacklist(program: Command): void {
  const blacklist = program.command('blacklist').description('temporary denylist entries by jti, session, user or device (PLAYBOOK A6)');
  withSelectors(
    command(blacklist, 'add', 'deny tokens by jti, session, user or device until they would have expired (runbooks/blacklist-add.yaml)', [
      'jwtir blacklist add --jti 5f0c2a4e --session 3b1d9c77 --reason "leaked in ticket 4711" --yes',
      'jwtir blacklist add --device 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 --ttl 7d --yes',
      'jwtir blacklist add --user mallory@example.com --allow-unknown --yes',
      'jwtir blacklist add --from-file findings.ndjson --dry-run',
    ]),
  )
    .option('--ttl <duration>', 'how long jti, session and device entries last (default: until the tokens they cover would have expired)')
    .option('--reason <text>', 'why, recorded with every entry that gives none of its own')
    .option('--allow-unknown', 'blacklist users the session ledger does not know (a forged subject)')
    .option('--dry-run', 'print the plan with its blast radius and expiries, change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('../commands/blacklist.js')).add));
  withSelectors(
    command(blacklist, 'remove', 'accept blacklisted tokens again: the undo of add (runbooks/blacklist-remove.yaml)', [
      'jwtir blacklist remove --jti 5f0c2a4e --yes',
      'jwtir blacklist remove --user alice@example.com --dry-run',
      'jwtir runs rollback 42   # undo the remove: the entries apply again',
    ]),
  )
    .option('--dry-run', 'print the plan with its blast radius, change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('../commands/blacklist.js')).remove));
  command(blacklist, 'list', 'live entries (not lifted, not expired), newest first', [
    'jwtir blacklist list',
    'jwtir blacklist list --kind device --json | jq -r ".entries[].value"',
  ])
    .addOption(new Option('--kind <kind>', 'only this kind').choices(['jti', 'session', 'user', 'device']))
    .option('--limit <n>', 'at most this many', '100')
    .action(action(async () => (await import('../commands/blacklist.js')).list));
}
