/**
 * The forward-auth HTTP server: plain node:http with keep-alive (gateways hold a pool of
 * connections open to it), no framework, one small object per request. Endpoints:
 * /auth/nginx, /auth/traefik, the Envoy prefix (default /auth/envoy), /healthz and /metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, rmSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import type { MetricsSource, PrometheusMetrics } from '../guard/prometheus.js';
import type { Verdict } from '../guard/types.js';
import { Answerer, type Protocol } from './answer.js';
import type { ServeConfig } from './config.js';
import { Decider, type AsyncAuthorizer } from './decide.js';
import { pathOnly, Router, type Route } from './protocols.js';
import { Classifier } from './rules.js';
import type { ListenAddress } from './listen.js';

/** What the server needs of a guard: the decision, and what health and metrics report. */
export interface ServeGuard extends AsyncAuthorizer, MetricsSource {
  readonly policyVersion: number;
}

export interface ServeServerOptions {
  guard: ServeGuard;
  config: ServeConfig;
  listen: ListenAddress;
  /** Registry for /metrics; the server adds its own request counters to it. */
  metrics: PrometheusMetrics;
  /** Operational warnings (a misconfigured gateway); never a token. */
  warn?: (message: string) => void;
}

export interface ServeServer {
  /** `host:port` (the real port when 0 was asked for) or the socket path. */
  readonly address: string;
  readonly inFlight: number;
  /**
   * Stops accepting, lets the requests in flight finish (answered with `Connection: close`), and
   * cuts what is still open after `deadlineMs`. Resolves with the number of requests cut.
   */
  close(deadlineMs: number): Promise<{ cut: number }>;
}

// nginx's upstream keepalive_timeout defaults to 60 s: the server must not close an idle connection
// first, or nginx may reuse one just being closed and answer 502.
const KEEP_ALIVE_MS = 65_000;

export async function startServeServer(opts: ServeServerOptions): Promise<ServeServer> {
  const { guard, config } = opts;
  const decider = new Decider(guard, config, new Classifier(config.rules, config.defaultOperation));
  const answerer = new Answerer(config);
  const router = new Router(config.envoy.pathPrefix);
  const answers = new AnswerCounts();
  const warned = new Set<Protocol>();
  let inFlight = 0;
  let connections = 0;
  let draining = false;
  await addServerMetrics(opts.metrics, answers, () => inFlight, () => connections);

  /** Every request ends here, once: in-flight counting needs no listener per request. */
  const finish = (res: ServerResponse, status: number, headers: Record<string, string>, body: string) => {
    if (draining) headers.Connection = 'close';
    // A length, not chunked encoding: most answers are empty, and nginx reads them in one go.
    headers['Content-Length'] = String(Buffer.byteLength(body));
    res.writeHead(status, headers);
    res.end(body);
    inFlight--;
  };

  const check = (res: ServerResponse, route: Route, headers: IncomingMessage['headers']) => {
    if ((route.method === undefined || route.target === undefined) && !warned.has(route.protocol)) {
      warned.add(route.protocol);
      opts.warn?.(`${route.protocol} check requests carry no original method or URI: they are judged as critical operations; see examples/ for the headers to pass`);
    }
    const answer = (verdict: Verdict) => {
      const a = answerer.answer(route.protocol, verdict);
      finish(res, a.status, a.headers, a.body);
      answers.add(route.protocol, a.status);
    };
    const fail = () => {
      // Closed, never open: the gateway refuses the request (nginx answers the client 500).
      answers.add(route.protocol, 500);
      finish(res, 500, { 'Content-Type': 'application/json; charset=utf-8' }, '{"error":"internal"}');
    };
    try {
      // A throw while answering (nothing was sent yet) ends in the 500 too, never unhandled.
      decider.decide({ method: route.method, target: route.target, headers }).then(answer).catch(fail);
    } catch {
      fail();
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    const path = pathOnly(req.url);
    const route = router.route(req, path);
    if (route !== undefined) return check(res, route, req.headers);
    if (path === '/healthz') {
      const ok = guard.healthy && !draining;
      const body = { status: draining ? 'draining' : ok ? 'ok' : 'store_unavailable', stateVersion: guard.version, policyVersion: guard.policyVersion, pid: process.pid };
      return finish(res, ok ? 200 : 503, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' }, JSON.stringify(body));
    }
    if (path === '/metrics') {
      opts.metrics.render().then(
        (text) => finish(res, 200, { 'Content-Type': opts.metrics.contentType }, text),
        () => finish(res, 500, {}, ''),
      );
      return;
    }
    finish(res, 404, { 'Content-Type': 'application/json; charset=utf-8' }, '{"error":"not_found"}');
  };

  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_MS, headersTimeout: 10_000, requestTimeout: 30_000 }, onRequest);
  // Far fewer connections than answers means the gateway keeps its connections open (keep-alive).
  server.on('connection', () => connections++);
  await listen(server, opts.listen);
  const bound = server.address();
  const address = typeof bound === 'string' ? bound : formatAddress(bound as AddressInfo);

  return {
    address,
    get inFlight() {
      return inFlight;
    },
    async close(deadlineMs) {
      draining = true;
      // Stops accepting and closes idle keep-alive connections; a request being answered gets
      // `Connection: close`, so its connection ends with it, and `closed` resolves after the last.
      let done = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve())).then(() => {
        done = true;
      });
      server.closeIdleConnections();
      const deadline = Date.now() + deadlineMs;
      while (!done && inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const cut = inFlight;
      // Nothing in flight (or the deadline passed): what is still open is idle, or too slow.
      server.closeAllConnections();
      await closed;
      return { cut };
    },
  };
}

function listenOnce(server: Server, at: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if ('socket' in at) server.listen(at.socket, done);
    else server.listen(at.port, at.host, done);
  });
}

/**
 * A Unix socket left behind by a process that died is replaced; one that still answers is not.
 * The socket gets mode 0660: the gateway's user needs its group, other users get nothing.
 */
async function listen(server: Server, at: ListenAddress): Promise<void> {
  if (!('socket' in at)) return listenOnce(server, at);
  try {
    await listenOnce(server, at);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await answers(at.socket))) throw error;
    rmSync(at.socket, { force: true });
    await listenOnce(server, at);
  }
  chmodSync(at.socket, 0o660);
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(socket);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function formatAddress(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Answers by protocol and status, counted with no allocation on the request path. */
class AnswerCounts {
  private readonly counts = new Map<Protocol, Map<number, number>>();

  add(protocol: Protocol, status: number): void {
    let byStatus = this.counts.get(protocol);
    if (!byStatus) this.counts.set(protocol, (byStatus = new Map()));
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  }

  *entries(): Generator<[Protocol, number, number]> {
    for (const [protocol, byStatus] of this.counts) for (const [status, n] of byStatus) yield [protocol, status, n];
  }
}

/** Answers by endpoint and status, connections, and requests in flight, beside the guard's own metrics. */
async function addServerMetrics(metrics: PrometheusMetrics, answers: AnswerCounts, inFlight: () => number, connections: () => number): Promise<void> {
  // Already loaded: prometheusMetrics() built the registry with it.
  const prom = await import('prom-client');
  new prom.Counter({
    name: 'jwtir_serve_answers_total',
    help: 'Forward-auth answers by gateway protocol and HTTP status.',
    labelNames: ['protocol', 'status'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const [protocol, status, n] of answers.entries()) this.inc({ protocol, status: String(status) }, n);
    },
  });
  new prom.Counter({
    name: 'jwtir_serve_connections_total',
    help: 'Connections accepted; far fewer than answers when the gateway keeps its connections open.',
    registers: [metrics.registry],
    collect() {
      this.reset();
      this.inc(connections());
    },
  });
  new prom.Gauge({
    name: 'jwtir_serve_in_flight',
    help: 'Requests being answered now.',
    registers: [metrics.registry],
    collect() {
      this.set(inFlight());
    },
  });
}
