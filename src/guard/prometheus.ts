import type { Registry } from 'prom-client';
import { splitCounterKey } from './telemetry.js';

/** What the Prometheus helper needs from a guard. */
export interface MetricsSource {
  /** Cumulative decisions of this guard instance. */
  decisionTotals(): Map<string, number>;
  readonly healthy: boolean;
  readonly version: number;
}

export interface PrometheusMetrics {
  registry: Registry;
  contentType: string;
  /** The exposition text for a `/metrics` endpoint. */
  render(): Promise<string>;
}

/**
 * Prometheus metrics for one guard instance (PLAYBOOK C2): decisions by kid, decision and reason
 * (cohorts stay in the CLI's per-minute counters; as labels they would multiply series by 100),
 * store health and the applied-change version. prom-client is loaded only when this is used.
 */
export async function prometheusMetrics(source: MetricsSource, opts: { registry?: Registry; prefix?: string } = {}): Promise<PrometheusMetrics> {
  const prom = await import('prom-client');
  const registry = opts.registry ?? new prom.Registry();
  const p = opts.prefix ?? 'jwtir_guard_';
  new prom.Counter({
    name: `${p}decisions_total`,
    help: 'Guard decisions by key id, decision and reason.',
    labelNames: ['kid', 'decision', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      const byLabels = new Map<string, { kid: string; decision: string; reason: string; n: number }>();
      for (const [key, n] of source.decisionTotals()) {
        const { kid, decision, reason } = splitCounterKey(key);
        const id = `${kid}\u0000${decision}\u0000${reason}`;
        const entry = byLabels.get(id) ?? { kid, decision, reason, n: 0 };
        entry.n += n;
        byLabels.set(id, entry);
      }
      for (const e of byLabels.values()) this.inc({ kid: e.kid, decision: e.decision, reason: e.reason }, e.n);
    },
  });
  new prom.Gauge({
    name: `${p}store_healthy`,
    help: '1 while the guard can reach its store, 0 while its fail mode applies.',
    registers: [registry],
    collect() {
      this.set(source.healthy ? 1 : 0);
    },
  });
  new prom.Gauge({
    name: `${p}state_version`,
    help: 'Number of state changes this guard has applied.',
    registers: [registry],
    collect() {
      this.set(source.version);
    },
  });
  return { registry, contentType: registry.contentType, render: () => registry.metrics() };
}
