import { Command, Option } from 'commander';
import { printable } from '../lib/printable.js';
import { action, command as cmd, EXIT_CODES } from './define.js';
import { registerBlacklist } from './wiring/blacklist.js';
import { registerContainment } from './wiring/containment.js';
import { registerLedger } from './wiring/ledger.js';
import { registerGuard } from './wiring/guard.js';
import { registerNotify } from './wiring/notify.js';
import { registerTighten } from './wiring/tighten.js';

/** Wires the commands together; each command's module is imported only when it runs. */

export function buildProgram(): Command {
  const program = new Command('jwtir')
    .description('JWT incident response: contain a leaked signing secret without logging out your users.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    // Commander quotes the operator's words in its errors ("unknown option '…'"): shown escaped.
    // Subcommands inherit this when they are created.
    .configureOutput({ outputError: (text, write) => write(text.split('\n').map(printable).join('\n')) })
    .addHelpText('after', `
Start here:
  jwtir init
  JWT_SECRET=... jwtir keys import --kid legacy --alg HS256 --secret-env JWT_SECRET
  jwtir rotate --staged --compromised --dry-run
  jwtir rotate --staged --compromised
${EXIT_CODES}`)
    .exitOverride();

  cmd(program, 'init', 'create or upgrade the state (schema, and a KEK file for the embedded default)', ['jwtir init', 'DATABASE_URL=postgres://jwtir@db/jwtir JWTIR_KEK=$(cat kek.b64) jwtir init']).action(
    action(async () => (await import('./commands/init.js')).init),
  );

  cmd(program, 'status', 'keys, the policy version, and runs in progress', ['jwtir status', 'jwtir status --json | jq .runs']).action(
    action(async () => (await import('./commands/status.js')).status),
  );

  cmd(program, 'sync', 'rebuild the hot copy the guards read (Redis or the hot tables) from the database', [
    'jwtir sync   # after Redis restarted empty',
  ]).action(action(async () => (await import('./commands/sync.js')).sync));

  cmd(program, 'counters', "the guards' decisions per minute by kid, decision and reason, summed across instances", [
    'jwtir counters --since 15m',
    'jwtir counters --since 1h --kid legacy --by-cohort --json',
  ])
    .option('--since <duration>', 'how far back', '15m')
    .option('--kid <kid>', 'only this key')
    .option('--by-cohort', 'one line per user cohort (0..99)')
    .action(action(async () => (await import('./commands/observe.js')).counters));
  cmd(program, 'alerts', 'forged tokens, fingerprint mismatches and refresh-token reuse the guards raised', ['jwtir alerts --since 1h'])
    .option('--since <duration>', 'how far back', '1h')
    .option('--limit <n>', 'at most this many', '100')
    .action(action(async () => (await import('./commands/observe.js')).alerts));

  const keys = program.command('keys').description('the key store: import, generate, list, publish');
  cmd(keys, 'import', 'import the secret a service signs with (from an environment variable or stdin, never argv)', [
    'JWT_SECRET=... jwtir keys import --kid legacy --alg HS256 --secret-env JWT_SECRET',
    'vault kv get -field=secret app/jwt | jwtir keys import --kid legacy --alg HS256 --secret-stdin',
  ])
    .requiredOption('--kid <kid>', 'kid to store it under')
    .addOption(new Option('--alg <alg>', 'algorithm').choices(['HS256']).makeOptionMandatory())
    .option('--secret-env <VAR>', 'read the secret from this environment variable')
    .option('--secret-stdin', 'read the secret from standard input')
    .addOption(new Option('--secret-encoding <enc>', 'how the secret is written').choices(['utf8', 'base64', 'base64url', 'hex']).default('utf8'))
    .option('--allow-weak', 'accept a secret shorter than 32 bytes (recorded in the audit trail)')
    .option('--kidless', 'answer for tokens without a kid header (default: yes, unless another key does)')
    .option('--no-kidless', 'do not answer for tokens without a kid header')
    .option('--dry-run', 'print the plan only')
    .option('-y, --yes', 'do not ask (accepted everywhere for scripts; import asks nothing)')
    .action(action(async () => (await import('./commands/keys.js')).importKey));
  cmd(keys, 'list', 'list keys and their states', ['jwtir keys list']).action(action(async () => (await import('./commands/keys.js')).list));
  cmd(keys, 'show', 'show one key (never its private material)', ['jwtir keys show legacy'])
    .argument('<kid>')
    .action(action(async () => (await import('./commands/keys.js')).show));
  cmd(keys, 'generate', 'generate a new staged key', ['jwtir keys generate --alg RS256', 'jwtir keys generate --alg ES256 --publish'])
    .addOption(new Option('--alg <alg>', 'algorithm').choices(['HS256', 'RS256', 'ES256', 'EdDSA']).makeOptionMandatory())
    .option('--publish', 'publish it to the guards right away')
    .option('--dry-run', 'print the plan only')
    .option('-y, --yes', 'do not ask')
    .action(action(async () => (await import('./commands/keys.js')).generate));
  cmd(keys, 'publish', 'publish the public JWKS to a file (atomically) and to the guards', ['jwtir keys publish --out /srv/www/.well-known/jwks.json'])
    .option('--out <path>', 'write the JWKS to this file')
    .option('--dry-run', 'print the plan only')
    .option('-y, --yes', 'do not ask (accepted everywhere for scripts; publish asks nothing)')
    .action(action(async () => (await import('./commands/keys.js')).publish));

  cmd(keys, 'export', "write a key's signing material for the service's own issuer (0600 files, swapped in whole)", [
    'jwtir keys export --kid legacy --to /etc/myapp/jwt      # <dir>/legacy/secret, <dir>/current -> legacy',
    'jwtir keys export --kid es256-20261204-1a2b3c4d --to ./issuer-keys --yes',
  ])
    .requiredOption('--kid <kid>', 'the key to export')
    .requiredOption('--to <dir>', 'the directory the issuer reads (created 0700; must not be writable by others)')
    .option('--dry-run', 'print the plan only')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('./commands/keys.js')).exportKey));

  cmd(program, 'rotate', 'rotate the signing key in stages (runbooks/rotate.yaml)', [
    'jwtir rotate --staged --compromised --dry-run',
    'jwtir rotate --staged --compromised --yes',
    'jwtir rotate --staged --alg RS256 --grace 2h --publish-wait 30s --privileged-roles admin,staff,support',
    "jwtir rotate --staged --compromised --export-to /etc/myapp/jwt --activate-cmd 'systemctl restart myapp-auth' --yes",
  ])
    .option('--staged', 'rotate in stages: publish, wait, switch, retire (required)')
    .option('--from <kid>', 'key to rotate away from (default: the active key)')
    .addOption(new Option('--alg <alg>', 'algorithm of the new key (default: the old key\'s)').choices(['HS256', 'RS256', 'ES256', 'EdDSA']))
    .option('--compromised', 'flag the old key as compromised')
    .option('--grace <duration>', 'how long the old key keeps verifying (default: longest token lifetime seen + clock tolerance)')
    .option('--publish-wait <duration>', 'wait between publishing and signing with the new key (default 10s)')
    .option('--privileged-roles <roles>', 'comma-separated roles whose old-key sessions end at once (default admin,staff)')
    .option('--export-to <dir>', "hand the new key to the service's issuer: written to <dir>/<kid>/, <dir>/current switched after activation")
    .option('--activate-cmd <command>', 'after activation, run this (sh -c) to make the issuer sign with the new key, then wait until a guard sees it')
    .option('--activate-timeout <duration>', 'how long the command, and then the first new-key token at a guard, may take (default 10m)')
    .option('--dry-run', 'print the plan with its blast radius, change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('./commands/rotate.js')).rotate));

  const runs = program.command('runs').description('runbook executions: list, inspect, resume, roll back');
  cmd(runs, 'list', 'recent runs', ['jwtir runs list']).option('--limit <n>', 'how many', '20').action(action(async () => (await import('./commands/runs.js')).list));
  cmd(runs, 'show', 'one run: steps, outputs and its audit rows', ['jwtir runs show 42'])
    .argument('<id>')
    .action(action(async () => (await import('./commands/runs.js')).show));
  cmd(runs, 'resume', 'continue a stopped or crashed run', ['jwtir runs resume 42'])
    .argument('<id>')
    .option('--allow-changed-runbook', 'continue even though the runbook file changed since the run started')
    .option('-y, --yes', 'do not ask at confirmation gates')
    .action(action(async () => (await import('./commands/runs.js')).resume));
  cmd(runs, 'rollback', 'undo a run (or back to a step) with its recorded undos, in reverse', ['jwtir runs rollback 42', 'jwtir runs rollback 42 --to activate'])
    .argument('<id>')
    .option('--to <step>', 'keep this step and the ones before it')
    .option('--dry-run', 'print what would be undone, change nothing')
    .option('-y, --yes', 'do not ask')
    .action(action(async () => (await import('./commands/runs.js')).rollback));
  cmd(runs, 'unlock', 'release the locks of an abandoned run without undoing it', ['jwtir runs unlock 42 --yes'])
    .argument('<id>')
    .option('-y, --yes', 'do not ask')
    .action(action(async () => (await import('./commands/runs.js')).unlock));

  const audit = program.command('audit').description('the audit trail and security checks');
  cmd(audit, 'trail', 'verify the hash chain of the audit trail (exit 0 only when intact)', ['jwtir audit trail', 'jwtir audit trail --json']).action(
    action(async () => (await import('./commands/audit.js')).trail),
  );

  registerTighten(program);
  registerContainment(program);
  registerBlacklist(program);
  registerNotify(program);
  registerLedger(program);
  registerGuard(program);
  return program;
}
