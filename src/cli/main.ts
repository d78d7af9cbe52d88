import { CommanderError } from 'commander';
import { maskUrlsIn } from '../config/mask.js';
import { ExitCode, JwtirError } from '../errors.js';
import { printable } from '../lib/printable.js';
import { configureInterrupts } from './interrupt.js';
import { buildProgram } from './program.js';

/**
 * The one boundary between jwtir and the process: it runs the command and turns every outcome
 * into output and an exit code. Nothing below it calls process.exit or prints errors.
 */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  // The one place that ends the process early: a signal while a run is in progress.
  configureInterrupts((text) => process.stderr.write(text), (code) => process.exit(code));
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; anything else is a usage mistake it already printed
      // on stderr. With --json, stdout still gets the machine-readable error every other failure gets.
      if (error.exitCode === 0) return ExitCode.ok;
      if (error.code === 'commander.excessArguments') {
        process.stderr.write('  next: quote values that contain spaces; durations are written without spaces, like 10m or 2h\n');
      }
      if (json) {
        const message = shown(maskUrlsIn(error.message.replace(/^error: /, ''), [process.env.DATABASE_URL, process.env.REDIS_URL]));
        process.stdout.write(JSON.stringify({ error: { code: 'ERR_USAGE', message, hint: 'run with --help for usage', exitCode: ExitCode.usage } }, null, 2) + '\n');
      }
      return ExitCode.usage;
    }
    return report(error, json);
  }
}

/**
 * Messages quote what the operator gave (a flag, a line of a file, a name); whatever a message
 * holds, a terminal must not act on it. Line breaks of the message itself stay.
 */
const shown = (text: string) => text.split('\n').map(printable).join('\n');

function report(error: unknown, json: boolean): number {
  const urls = [process.env.DATABASE_URL, process.env.REDIS_URL];
  const known = error instanceof JwtirError;
  const code = known ? error.code : 'ERR_INTERNAL';
  const message = shown(maskUrlsIn(error instanceof Error ? error.message : String(error), urls));
  const hint = known ? error.hint && shown(error.hint) : 'this is a bug in jwtir; please report it with the output above (set JWTIR_DEBUG=1 for a stack trace)';
  const exitCode = known ? error.exitCode : ExitCode.internal;
  if (json) process.stdout.write(JSON.stringify({ error: { code, message, hint: hint ?? null, exitCode } }, null, 2) + '\n');
  process.stderr.write(`jwtir: error ${code}: ${message}\n`);
  if (hint) process.stderr.write(`  next: ${hint}\n`);
  if (process.env.JWTIR_DEBUG && error instanceof Error) process.stderr.write(maskUrlsIn(error.stack ?? '', urls) + '\n');
  return exitCode;
}
