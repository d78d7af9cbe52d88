import { resolveSettings, type SettingFlags, type Settings } from '../config/settings.js';
import { existsSync } from 'node:fs';
import { bindKek, createKekFile, kekFilePath, loadKek, type Kek } from '../crypto/kek.js';
import { ConfirmationRequiredError } from '../errors.js';
import type { EngineEnv, EngineIO } from '../runbook/engine.js';
import type { Backends } from '../store/open.js';
import { noteRunInProgress } from './interrupt.js';
import { Output } from './output.js';

/** Options every command accepts (see options.ts). */
export interface CommonOptions extends SettingFlags {
  json?: boolean;
  color?: boolean;
  yes?: boolean;
}

/**
 * What a command runs with: resolved settings, output, and the backends, opened on first use
 * and always closed by `withContext`.
 */
export class CommandContext {
  readonly settings: Settings;
  readonly out: Output;
  readonly yes: boolean;
  /** Set by commands that start a new state (init, keys import); others refuse a missing one. */
  mayCreateState = false;
  private backendsPromise: Promise<Backends> | undefined;
  private kekPromise: Promise<Kek> | undefined;

  constructor(opts: CommonOptions) {
    this.settings = resolveSettings(opts);
    this.out = new Output({ json: opts.json === true, color: opts.color !== false });
    this.yes = opts.yes === true;
  }

  /** Opened on first use. Only `init` and `keys import` may create a new embedded state. */
  backends(): Promise<Backends> {
    this.backendsPromise ??= import('../store/open.js').then((m) => m.openBackends(this.settings, { create: this.mayCreateState }));
    return this.backendsPromise;
  }

  /** The KEK, checked against this state. The embedded default creates its key file on first use. */
  kek(): Promise<Kek> {
    this.kekPromise ??= (async () => {
      const backends = await this.backends();
      if (backends.embedded && !process.env.JWTIR_KEK && !this.settings.kekFile) {
        const bound = await backends.db.query(`SELECT 1 FROM meta WHERE k = 'kek'`);
        if (bound.length === 0) createKekFile(this.settings.stateDir);
      }
      const kek = loadKek({ env: process.env, kekFile: this.settings.kekFile, embeddedStateDir: backends.embedded ? this.settings.stateDir : undefined });
      await bindKek(backends.db, kek);
      return kek;
    })();
    return this.kekPromise;
  }

  /**
   * Checks the KEK without recording anything (for --dry-run): a missing, malformed or wrong KEK
   * shows up in the plan review, not only when the run starts.
   */
  async checkKek(): Promise<void> {
    const backends = await this.backends();
    const bound = (await backends.db.query(`SELECT 1 FROM meta WHERE k = 'kek'`)).length > 0;
    const embeddedDefault = backends.embedded && !process.env.JWTIR_KEK && !this.settings.kekFile;
    // A fresh embedded state gets its KEK file on the first real run; nothing to check yet.
    if (embeddedDefault && !bound && !existsSync(kekFilePath(this.settings.stateDir))) return;
    const kek = loadKek({ env: process.env, kekFile: this.settings.kekFile, embeddedStateDir: backends.embedded ? this.settings.stateDir : undefined });
    if (bound) await bindKek(backends.db, kek);
  }

  async engineEnv(): Promise<EngineEnv> {
    return { backends: await this.backends(), settings: this.settings, kek: () => this.kek() };
  }

  /** Engine I/O: confirmations on the terminal, progress on stderr. */
  engineIO(): EngineIO {
    return {
      yes: this.yes,
      confirm: (message) => this.confirm(message),
      onEvent: (event) => {
        if (event.type === 'run') {
          noteRunInProgress(event.runId, event.verb);
          this.out.info(this.out.color.bold(`run ${event.runId}: ${event.verb}`));
        }
        else if (event.type === 'progress') this.out.progress(`${event.step}: ${event.message}`, event.counts);
        else if (event.phase === 'start') this.out.progress(`${event.step}: ${event.description}`);
        else if (event.phase === 'done') this.out.succeed(`${event.step}`);
        else if (event.phase === 'skipped') this.out.info(`${this.out.color.dim('-')} ${event.step} ${this.out.color.dim('(skipped)')}`);
        else if (event.phase === 'undo') this.out.progress(`undo ${event.step}: ${event.description}`);
        else if (event.phase === 'undone') this.out.succeed(`undone ${event.step}`);
      },
    };
  }

  /** Asks on the terminal; without one, refuses unless --yes was given. */
  async confirm(message: string): Promise<boolean> {
    if (this.yes) return true;
    this.requireInteractiveOrYes();
    this.out.stopSpinner();
    const { confirm } = await import('@inquirer/prompts');
    return confirm({ message, default: false }, { output: process.stderr });
  }

  requireInteractiveOrYes(): void {
    if (this.yes) return;
    if (!process.stdin.isTTY || process.env.CI) {
      throw new ConfirmationRequiredError('this command asks for confirmation, and there is no terminal to ask on', {
        hint: 'review the plan (--dry-run) and re-run with --yes',
      });
    }
  }

  async close(): Promise<void> {
    this.out.stopSpinner();
    if (this.backendsPromise) await (await this.backendsPromise.catch(() => undefined))?.close();
  }
}

/** Runs a command body with a context that is closed however the body ends. */
export async function withContext(opts: CommonOptions, body: (ctx: CommandContext) => Promise<void>): Promise<void> {
  const ctx = new CommandContext(opts);
  try {
    await body(ctx);
  } finally {
    await ctx.close();
  }
}
