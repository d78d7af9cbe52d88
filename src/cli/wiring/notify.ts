import type { Command } from 'commander';

/** Defines the `notify` commands (see define.ts for the helpers). */
export function registerNotify(_program: Command): void {}
