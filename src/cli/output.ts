import chalk, { Chalk, type ChalkInstance } from 'chalk';
import ora, { type Ora } from 'ora';

/**
 * All CLI output goes through here. Machine output (`--json`) is the only thing on stdout;
 * human output, progress and spinners go to stderr, so `jwtir ... --json | jq` always works.
 */
export class Output {
  readonly json: boolean;
  readonly color: ChalkInstance;
  private spinner: Ora | undefined;
  private readonly interactive: boolean;

  constructor(opts: { json: boolean; color: boolean }) {
    this.json = opts.json;
    const colorOk = opts.color && !process.env.NO_COLOR && process.stderr.isTTY === true;
    this.color = colorOk ? chalk : new Chalk({ level: 0 });
    // A spinner needs a real terminal with a width: ora divides by the column count, and a pty
    // that reports 0 columns (script(1), some CI runners) makes it loop forever.
    this.interactive = process.stderr.isTTY === true && !process.env.CI && (process.stderr.columns ?? 0) > 0;
  }

  /** A line for people (stderr). */
  info(text: string): void {
    this.pauseSpinner(() => process.stderr.write(text + '\n'));
  }

  warn(text: string): void {
    this.info(this.color.yellow('warning: ') + text);
  }

  /** The command's result: JSON on stdout with --json, otherwise rendered for people on stderr. */
  result(data: unknown, human: () => string | void): void {
    this.stopSpinner();
    if (this.json) {
      process.stdout.write(JSON.stringify(data, null, 2) + '\n');
      return;
    }
    const text = human();
    if (text) process.stderr.write(text + '\n');
  }

  /** Shows progress: a spinner on a terminal, plain lines otherwise (CI logs stay readable). */
  progress(text: string, counts?: { done: number; total: number }): void {
    if (this.json) return;
    if (counts) text = `${progressBar(counts.done, counts.total)} ${text}`;
    if (!this.interactive) {
      // Without a terminal a bar would be one line per update: log the start and the end only.
      if (!counts || counts.done === 0 || counts.done >= counts.total) process.stderr.write(`  … ${text}\n`);
      return;
    }
    // Synchronous on purpose: a spinner created after its step already finished would spin forever.
    if (!this.spinner) {
      // discardStdin off: ora's stdin handling would fight the confirmation prompts and keep stdin open.
      this.spinner = ora({ stream: process.stderr, text, discardStdin: false }).start();
    } else {
      this.spinner.text = text;
    }
  }

  succeed(text: string): void {
    if (this.json) return;
    if (this.spinner) {
      this.spinner.succeed(text);
      this.spinner = undefined;
    } else {
      process.stderr.write(`${this.color.green('✔')} ${text}\n`);
    }
  }

  stopSpinner(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }

  private pauseSpinner(write: () => void): void {
    if (this.spinner?.isSpinning) {
      this.spinner.clear();
      write();
      this.spinner.render();
    } else {
      write();
    }
  }
}

/** `[██████░░░░░░░░░░]  38%  380,000/1,000,000` */
export function progressBar(done: number, total: number, width = 20): string {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(share * width);
  const n = (x: number) => x.toLocaleString('en-US');
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(Math.floor(share * 100)).padStart(3)}% ${n(done)}/${n(total)}`;
}
