/**
 * Ctrl-C (or SIGTERM) while a run is in progress: the run stays as it is (its lock held, its step
 * in progress), which is safe, but the operator must be told what to do next. The handler lives
 * at the process boundary (main.ts); commands only say which run they are driving.
 */
let current: { runId: number; verb: string } | undefined;

export function noteRunInProgress(runId: number, verb: string): void {
  current = { runId, verb };
}

export function installInterruptHandlers(write: (text: string) => void, exit: (code: number) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      if (current) {
        write(
          `\njwtir: interrupted (${signal}) while run ${current.runId} was in progress (${current.verb}); it stays as it is, holding its lock.\n` +
            `  next: \`jwtir runs resume ${current.runId}\` to go on, or \`jwtir runs rollback ${current.runId}\` to undo it\n`,
        );
      } else {
        write(`\njwtir: interrupted (${signal}); nothing was in progress\n`);
      }
      exit(130);
    });
  }
}
