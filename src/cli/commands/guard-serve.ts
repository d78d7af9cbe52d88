import cluster from 'node:cluster';
import { parseDuration } from '../../config/duration.js';
import { loadKek } from '../../crypto/kek.js';
import { ConflictError, UsageError } from '../../errors.js';
import { createGuard, type Guard, type GuardEvent } from '../../guard/guard.js';
import { prometheusMetrics } from '../../guard/prometheus.js';
import { loadServeConfig, type ServeConfig } from '../../serve/config.js';
import { parseListen, type ListenAddress } from '../../serve/listen.js';
import { log } from '../../serve/log.js';
import { startServeServer } from '../../serve/server.js';
import { nextSignal } from '../../serve/signals.js';
import { supervise } from '../../serve/workers.js';
import type { CommandContext } from '../context.js';
import { parseIntStrict } from '../parse.js';

interface ServeFlags {
  listen: string;
  serveConfig?: string;
  workers: string;
  shutdownTimeout: string;
  check?: boolean;
}

interface ServePlan {
  config: ServeConfig;
  listen: ListenAddress;
  workers: number;
  shutdownMs: number;
}

const MAX_WORKERS = 64;

/** Everything from the flags and the config file, checked before anything is opened. */
function plan(ctx: CommandContext, o: ServeFlags): ServePlan {
  const config = loadServeConfig(o.serveConfig);
  const listen = parseListen(o.listen);
  const workers = parseIntStrict(o.workers, '--workers');
  if (workers < 1 || workers > MAX_WORKERS) throw new UsageError(`--workers must be from 1 to ${MAX_WORKERS}, got ${workers}`);
  if (workers > 1 && !ctx.settings.databaseUrl) {
    throw new UsageError('--workers above 1 needs Postgres: the embedded database is opened by one process at a time', {
      hint: 'set DATABASE_URL (and REDIS_URL), or run one worker',
    });
  }
  return { config, listen, workers, shutdownMs: parseDuration(o.shutdownTimeout, '--shutdown-timeout') };
}

/** `jwtir guard serve`: a guard instance behind HTTP, until SIGTERM or SIGINT. */
export async function serve(ctx: CommandContext, o: ServeFlags): Promise<void> {
  const p = plan(ctx, o);
  if (o.check) return check(ctx, p);
  if (p.workers > 1 && cluster.isPrimary) {
    const summary = await supervise({ workers: p.workers, listen: o.listen, backend: ctx.settings.redisUrl ? 'postgres+redis' : 'postgres', rules: p.config.rules.length });
    ctx.out.result(summary, () => undefined);
    return;
  }
  const summary = await instance(ctx, p);
  // A worker's IPC channel to its supervisor would keep it alive after the server closed.
  if (cluster.isWorker) cluster.worker?.disconnect();
  else ctx.out.result(summary, () => undefined);
}

async function openGuard(ctx: CommandContext, config: ServeConfig): Promise<{ guard: Guard; label: string }> {
  const backends = await ctx.backends();
  const s = ctx.settings;
  let kek: string | undefined;
  let kekProblem: unknown;
  try {
    kek = loadKek({ env: process.env, kekFile: s.kekFile, embeddedStateDir: backends.embedded ? s.stateDir : undefined }).key.toString('base64');
  } catch (error) {
    // Only HS256 keys need it: a state with none serves without one.
    kekProblem = error;
  }
  try {
    const guard = await createGuard({ backends, kek, issuer: config.issuer, audience: config.audience, onEvent: logGuardEvent });
    return { guard, label: backends.label };
  } catch (error) {
    // The guard refuses an HS256 key it cannot unseal: the KEK's own error says what to do
    // (a missing one, or one that is not this state's).
    if (kekProblem) throw kekProblem;
    await ctx.checkKek();
    throw error;
  }
}

function logGuardEvent(event: GuardEvent): void {
  if (event.type === 'degraded') log('warn', 'guard.degraded', { failMode: event.failMode, error: event.error.message });
  else if (event.type === 'recovered') log('info', 'guard.recovered');
  else if (event.type === 'key-unusable') log('error', 'guard.key_unusable', { kid: event.kid, error: event.error.message });
}

async function check(ctx: CommandContext, p: ServePlan): Promise<void> {
  const { guard, label } = await openGuard(ctx, p.config);
  const summary = { ok: true, backend: label, policyVersion: guard.policyVersion, rules: p.config.rules.length, config: p.config };
  await guard.close();
  ctx.out.result(summary, () => `serve config and state OK: ${label}, policy version ${summary.policyVersion}, ${summary.rules} rule(s)`);
}

/** One serving process: its own guard, its own server; in a worker, the address is shared. */
async function instance(ctx: CommandContext, p: ServePlan) {
  const started = Date.now();
  const { guard, label } = await openGuard(ctx, p.config);
  let server;
  try {
    const metrics = await prometheusMetrics(guard);
    server = await startServeServer({ guard, config: p.config, listen: p.listen, metrics, warn: (message) => log('warn', 'serve.gateway_misconfigured', { message }) }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') throw new ConflictError(`--listen ${describe(p.listen)}: the address is already in use`, { hint: 'stop the other server or pick another port' });
      if (error.code === 'EACCES' || error.code === 'EADDRNOTAVAIL') throw new UsageError(`--listen ${describe(p.listen)}: cannot listen there (${error.code})`);
      throw error;
    });
  } catch (error) {
    await guard.close();
    throw error;
  }
  const worker = cluster.isWorker;
  if (worker) process.send?.({ type: 'jwtir-serve-ready', address: server.address });
  else {
    log('info', 'serve.started', { address: server.address, backend: label, workers: 1, rules: p.config.rules.length, policyVersion: guard.policyVersion, pid: process.pid });
    if (label.startsWith('embedded')) {
      log('warn', 'serve.embedded_state_held', { message: 'this process holds the embedded state: CLI commands cannot change it while it runs; use Postgres (DATABASE_URL) to change state live' });
    }
  }
  const signal = await nextSignal();
  const { cut } = await server.close(p.shutdownMs);
  await guard.close();
  const summary = { stopped: true, signal, address: server.address, cut, uptimeSec: Math.round((Date.now() - started) / 1000) };
  if (!worker) log('info', 'serve.stopped', summary);
  return summary;
}

function describe(l: ListenAddress): string {
  return 'socket' in l ? `unix:${l.socket}` : `${l.host}:${l.port}`;
}
