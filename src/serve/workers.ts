/**
 * `--workers N`: N processes share the listening address (node:cluster), each with its own guard
 * (its own replica, cache and rate-limit windows, following the CLI's changes like any guard).
 * The supervisor serves nothing itself: it starts the workers with the same argv, replaces one
 * that crashes, and on SIGTERM/SIGINT lets each drain.
 */
import cluster, { type Worker } from 'node:cluster';
import { ExitCode, ServeWorkerFailedError, type ExitCodeValue } from '../errors.js';
import { log } from './log.js';
import { nextSignal } from './signals.js';

export interface SuperviseOptions {
  workers: number;
  listen: string;
  backend: string;
  rules: number;
}

// A worker that keeps dying (the database went away for good) is not restarted forever.
const CRASH_WINDOW_MS = 60_000;
const MAX_CRASHES = 5;

const KNOWN_EXIT_CODES = new Set<number>(Object.values(ExitCode));

export async function supervise(o: SuperviseOptions) {
  const started = Date.now();
  const crashes: number[] = [];
  let stopping = false;
  let failure: ServeWorkerFailedError | undefined;
  let wake: () => void = () => {};
  const exited = new Map<Worker, Promise<void>>();
  // Workers run the same command line; only the supervisor answers in JSON on stdout.
  cluster.setupPrimary({ args: process.argv.slice(2).filter((a) => a !== '--json') });

  const fork = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      let ready = false;
      worker.on('message', (m: { type?: string; address?: string }) => {
        if (m?.type !== 'jwtir-serve-ready') return;
        ready = true;
        resolve(m.address ?? o.listen);
      });
      exited.set(
        worker,
        new Promise((done) =>
          worker.once('exit', (code, signal) => {
            exited.delete(worker);
            done();
            const exitCode = (KNOWN_EXIT_CODES.has(code ?? -1) && code !== 0 ? code : ExitCode.internal) as ExitCodeValue;
            if (!ready) {
              reject(new ServeWorkerFailedError(`a worker exited with ${signal ?? `code ${code}`} before it was serving`, exitCode, { hint: 'its error is printed above' }));
              return;
            }
            if (stopping) return;
            log('error', 'serve.worker_exited', { pid: worker.process.pid, code, signal });
            const now = Date.now();
            crashes.push(now);
            while (crashes.length && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
            if (crashes.length >= MAX_CRASHES) {
              failure = new ServeWorkerFailedError(`workers exited ${crashes.length} times within a minute; stopping`, exitCode, { hint: 'see the errors above' });
              wake();
              return;
            }
            fork().catch((error: ServeWorkerFailedError) => {
              failure = error;
              wake();
            });
          }),
        ),
      );
    });

  const stopAll = async () => {
    stopping = true;
    for (const w of exited.keys()) w.process.kill('SIGTERM');
    await Promise.all(exited.values());
  };

  let address: string;
  try {
    [address] = await Promise.all(Array.from({ length: o.workers }, fork));
  } catch (error) {
    await stopAll();
    throw error;
  }
  log('info', 'serve.started', { address, backend: o.backend, workers: o.workers, rules: o.rules, pid: process.pid });

  const signal = await Promise.race([nextSignal(), new Promise<undefined>((resolve) => (wake = () => resolve(undefined)))]);
  await stopAll();
  if (failure) throw failure;
  const summary = { stopped: true, signal, address, workers: o.workers, restarts: crashes.length, uptimeSec: Math.round((Date.now() - started) / 1000) };
  log('info', 'serve.stopped', summary);
  return summary;
}
