import type { Command } from 'commander';
import { action, command } from '../define.js';

/** Defines the `tighten` command (see define.ts for the helpers). */
export function registerTighten(program: Command): void {
  command(program, 'tighten', "tighten what an old key's tokens may do, require step-up on risky devices, and switch the key off cohort by cohort", [
    'jwtir tighten --max-age 2h --rate-limit 5/1m            # the compromised key (or the retiring one)',
    'jwtir tighten --step-up new-device,bad-reputation --block-critical dirty-device',
    'jwtir tighten --kid legacy --cutover 1%,10%,50%,100% --every 15m --dry-run',
    "jwtir tighten --cutover 1%,10%,50%,100% --every 15m --check-cmd './checks/payments-ok.sh' --yes",
  ])
    .option('--kid <kid>', 'the key whose tokens are tightened (default: the one flagged compromised, else the retiring one)')
    .option('--max-age <duration>', "refuse the key's tokens older than this (now - iat)")
    .option('--rate-limit <n/window>', 'at most n operations per token per window and guard instance, e.g. 5/1m (critical ones count)')
    .option('--step-up <rules>', 'require a second factor: new-device, bad-reputation (comma-separated)')
    .option('--block-critical <rules>', 'hold critical operations until the account holder confirms: dirty-device')
    .option('--cutover <schedule>', 'switch the key off cohort by cohort, e.g. 1%,10%,50%,100% (must end at 100%)')
    .option('--every <duration>', 'how long each cutover stage is watched before its health gate (default 15m)')
    .option('--check-cmd <command>', "the service's own check after each stage, run with sh -c; exit 0 = healthy")
    .option('--check-timeout <duration>', 'how long the check may take (default 60s)')
    .option('--max-denial-rate <share>', "health gate: most denials of other keys' tokens in the cut-over cohorts, 0..1 or % (default 0.2)")
    .option('--min-relogin-rate <share>', 'health gate: least share of the users turned back who got in again on another key (default 0.5)')
    .option('--min-requests <n>', 'health gate: fewer decisions than this are too few to judge the denial rate (default 50)')
    .option('--min-users <n>', 'health gate: fewer users turned back than this are too few to judge the re-login rate (default 20)')
    .option('--dry-run', 'print the plan with the blast radius of each stage, change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(action(async () => (await import('../commands/tighten.js')).tighten));
}
