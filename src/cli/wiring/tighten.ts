import type { Command } from 'commander';

/** Defines the `tighten` command (see define.ts for the helpers). */
export function registerTighten(_program: Command): void {}
