import type { Command } from 'commander';
import { action, command as cmd } from '../define.js';

/** Repeatable options collect into a list. */
const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Defines `logout` and `sessions` (PLAYBOOK E1, E2); see define.ts for the helpers. */
export function registerContainment(program: Command): void {
  cmd(program, 'logout', 'end selected sessions now (forced logout); their users log in again', [
    'jwtir logout --user alice --dry-run',
    'jwtir logout --role admin --kid legacy --yes',
    'jwtir logout --kid legacy --cohort 0-9 --yes',
    'jwtir logout --issued-before 2026-12-04T06:00:00Z --yes',
    'jwtir logout --device "$FPH" --yes',
    'jwtir logout --suspicious --since 1h --json --yes',
    "jwtir logout --role admin --notify --reason 'security incident: please sign in again' --yes",
  ])
    .optionsGroup('Selectors (at least one; all given must match):')
    .option('--user <sub>', 'this user (repeatable)', collect)
    .option('--role <role>', 'users with a live session holding this role (repeatable, or comma-separated)', collect)
    .option('--kid <kid>', 'tokens signed by this key')
    .option('--cohort <list>', 'users in these cohorts 0..99, e.g. 0-9,42')
    .option('--device <fph>', 'sessions on this device (fingerprint hash)')
    .option('--issued-before <time>', 'tokens issued before this time: ISO 8601 (2026-12-04T06:00:00Z) or a duration ago (2h)')
    .option('--suspicious', 'ledger sessions the guards raised an alert on (an alert naming no ledger session, e.g. a forged token without a session id, ends nothing)')
    .option('--since <duration>', 'with --suspicious: alerts this recent (default 24h)')
    .optionsGroup('Options:')
    .option('--notify', "tell each logged-out user why: a forced_logout row in the outbox the service's mailer reads")
    .option('--reason <text>', 'with --notify: the reason the users are told')
    .option('--dry-run', 'print the plan with its blast radius (sessions, users), change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('../commands/logout.js')).logout));

  const sessions = program.command('sessions').description("a user's sessions: list them, end one");
  cmd(sessions, 'list', "a user's sessions from the ledger: device, place, issued, last seen, expiry, status", [
    'jwtir sessions list --user alice',
    'jwtir sessions list --user alice --all --json',
  ])
    .requiredOption('--user <sub>', 'the user (subject)')
    .option('--all', 'include expired sessions')
    .action(action(async () => (await import('../commands/sessions.js')).list));
  cmd(sessions, 'revoke', 'end one session: its access tokens are denied, its refresh tokens revoked', [
    'jwtir sessions revoke 6f1c2d9e-0b7a-4c8e-9d51-2a7f3b8c4e10',
    'jwtir runs rollback <run id>   # undo it',
  ])
    .argument('<sid>', 'the session id (see `jwtir sessions list`)')
    .option('--dry-run', 'print the plan only')
    .option('-y, --yes', 'do not ask (accepted for scripts; revoking one session asks nothing)')
    .action(action(async () => (await import('../commands/sessions.js')).revoke));
}
