import cluster from 'node:cluster';

/**
 * Resolves with the first SIGTERM or SIGINT. A worker also stops when its supervisor goes away
 * (the IPC channel closes), and ignores repeated signals while it drains: a terminal's Ctrl-C
 * reaches it and its supervisor, which passes the stop on too. A lone process does not: a
 * second Ctrl-C ends it at once.
 */
export function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const worker = cluster.isWorker;
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      process.off('disconnect', onDisconnect);
      if (worker) {
        process.on('SIGTERM', ignore);
        process.on('SIGINT', ignore);
      }
      resolve(signal);
    };
    const onDisconnect = () => on('SIGTERM');
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
    if (worker) process.on('disconnect', onDisconnect);
  });
}

function ignore(): void {}
