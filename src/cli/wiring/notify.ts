import { Option, type Command } from 'commander';
import { CREDENTIAL_TYPES, OUTBOX_KINDS, SET_EVENT_NAMES } from '../../notify/events.js';
import { action, command } from '../define.js';

/**
 * Defines the `notify` commands: user notifications through the service's mailer (outbox), the
 * on-call webhook, and OpenID Shared Signals (SETs); plus what was sent, and sending again.
 */
/** Collects a repeatable option (`--user a --user b`). */
const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerNotify(program: Command): void {
  const notify = program.command('notify').description('tell users, on-call and Shared Signals receivers what happened; every send is recorded');
  const load = () => import('../commands/notify.js');
  const sends = () => import('../commands/notify-sends.js');

  const audience = (c: Command) =>
    c
      .option('--user <sub>', 'a user (subject); repeat for several', collect)
      .option('--from-run <id>', 'the users whose sessions that run ended')
      .option('--step <id>', 'with --from-run: only the sessions this step of it ended');
  const delivery = (c: Command) =>
    c
      .option('--deadline <duration>', 'how long to keep trying a message before it is recorded failed (per try)', '30s')
      .option('--attempts <n>', 'most attempts per message, the first included (1-20)', '5')
      .option('--dry-run', 'print the plan, send nothing')
      .option('-y, --yes', 'do not ask for confirmation');

  audience(
    command(notify, 'users', "write notifications for users to the outbox the service's mailer consumes", [
      'jwtir notify users --from-run 42 --kind forced_logout --reason "we ended sessions after a security incident" --yes',
      'jwtir notify users --user alice --user bob --kind suspicious_activity --dry-run',
    ]).addOption(new Option('--kind <kind>', 'what the users are told about').choices(OUTBOX_KINDS).makeOptionMandatory()),
  )
    .option('--reason <text>', 'why, in words the mailer may show the user')
    .option('--dry-run', 'print the plan with the number of users, change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await load()).users));

  delivery(
    command(notify, 'oncall', 'post to the on-call channel (JWTIR_ONCALL_WEBHOOK_URL: a Slack-compatible incoming webhook)', [
      'jwtir notify oncall --message "Rotating the leaked JWT key now; expect admins to log in again" --yes',
      'jwtir notify oncall --from-run 42 --yes   # what run 42 did, with its show and rollback commands',
    ])
      .option('--message <text>', 'the message (Slack mrkdwn; &, < and > are escaped)')
      .option('--from-run <id>', 'post a summary of this run instead'),
  ).action(action(async () => (await load()).oncall));

  delivery(
    audience(
      command(notify, 'set', 'push signed Security Event Tokens (CAEP session-revoked, RISC credential-compromise) to the Shared Signals receivers', [
        'jwtir notify set --event session-revoked --from-run 42 --yes',
        'jwtir notify set --event credential-compromise --credential-type password --user alice --reason "password found in a breach corpus" --yes',
        'jwtir notify set --event session-revoked --user alice --kid es256-20260101-ab12cd34 --dry-run',
      ])
        .addOption(new Option('--event <event>', 'the event').choices(SET_EVENT_NAMES).makeOptionMandatory())
        .addOption(new Option('--credential-type <type>', 'with credential-compromise (required there): the credential_type').choices(CREDENTIAL_TYPES)),
    )
      .option('--kid <kid>', 'sign with this published asymmetric key (default: the active key, which must not be HS256)')
      .option('--reason <text>', "why, for the receivers' staff (reason_admin)"),
  ).action(action(async () => (await load()).set));

  command(notify, 'list', 'the messages jwtir sent or failed to send, and the user outbox by kind', [
    'jwtir notify list',
    'jwtir notify list --status failed --json',
  ])
    .addOption(new Option('--status <status>', 'only sends in this state').choices(['pending', 'sent', 'failed']))
    .option('--run <id>', 'only the sends of this run')
    .option('--limit <n>', 'at most this many sends', '50')
    .action(action(async () => (await sends()).list));

  command(notify, 'retry', 'send again what is pending or failed (resumes the runs whose send steps stopped)', [
    'jwtir notify retry --dry-run',
    'jwtir notify retry --yes',
    'jwtir notify retry --run 42 --yes',
  ])
    .option('--run <id>', 'only this run')
    .option('--dry-run', 'list what would be sent again, send nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await sends()).retry));
}
