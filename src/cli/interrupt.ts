/**
 * Ctrl-C (or SIGTERM) while a run is in progress: the run stays as it is (its lock held, its step
 * in progress), which is safe, but the operator must be told what to do next. The boundary
 * (main.ts) says how to write and exit; the handlers are installed only once a command starts
 * driving a run, so long-lived commands that own their signals (`guard serve` shuts down
 * gracefully on SIGTERM) and commands with nothing in progress keep the default behaviour.
 */
let current: { runId: number; verb: string } | undefined;
let boundary: { write: (text: string) => void; exit: (code: number) => void } | undefined;
let installed = false;

export function configureInterrupts(write: (text: string) => void, exit: (code: number) => void): void {
  boundary = { write, exit };
}

export function noteRunInProgress(runId: number, verb: string): void {
  current = { runId, verb };
  if (!installed && boundary) {
    installed = true;
    const { write, exit } = boundary;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        const run = current!;
        write(
          `\njwtir: interrupted (${signal}) while run ${run.runId} was in progress (${run.verb}); it stays as it is, holding its lock.\n` +
            `  next: \`jwtir runs resume ${run.runId}\` to go on, or \`jwtir runs rollback ${run.runId}\` to undo it\n`,
        );
        exit(130);
      });
    }
  }
}
