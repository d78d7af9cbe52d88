import type { Command } from 'commander';

/** Defines the `blacklist` commands (see define.ts for the helpers). */
export function registerBlacklist(_program: Command): void {}
