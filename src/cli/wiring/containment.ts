import type { Command } from 'commander';

/** Defines the `containment` commands (see define.ts for the helpers). */
export function registerContainment(_program: Command): void {}
