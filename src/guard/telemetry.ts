import type { Db } from '../store/db.js';
import type { CounterRow, HotStore } from '../store/hot/hot-store.js';

export interface Alert {
  kind: 'forged_token' | 'fingerprint_mismatch' | 'refresh_reuse';
  reason: string;
  sub?: string | undefined;
  sid?: string | undefined;
  jti?: string | undefined;
  kid?: string | undefined;
  fph?: string | undefined;
  at: number;
}

const SEP = '\u0000';
/** Sessions remembered as seen between two flushes; beyond it, sightings wait for a later minute. */
const MAX_SIGHTINGS = 100_000;
/** Session ids per UPDATE when last-seen times are written. */
const SIGHTING_BATCH = 10_000;

/**
 * Per-minute decision counts and alerts, gathered in memory on the request path and flushed in
 * the background: counters to the hot store (summed across instances), alerts to the database.
 */
export class Telemetry {
  /** The epoch minute being counted (read on the request path; only count() moves it). */
  minute = 0;
  /** Sessions whose tokens were allowed since the last flush: their last_seen_at is written then. */
  private seen = new Set<string>();
  private counts = new Map<string, number>();
  private pending: CounterRow[] = [];
  private alerts: Alert[] = [];
  /** Cumulative counts of earlier minutes, for Prometheus (which wants monotonic counters). */
  private totals = new Map<string, number>();

  constructor(
    private readonly hot: HotStore,
    private readonly db: Db,
  ) {}

  /** `key` is kid, decision, reason and cohort joined by NUL (see counterKey). */
  count(key: string, nowMs: number): void {
    const minute = Math.floor(nowMs / 60_000);
    if (minute !== this.minute) this.rollover(minute);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  alert(alert: Alert): void {
    this.alerts.push(alert);
  }

  /** A token of session `sid` was allowed this minute; call after count(), which keeps `minute` current. */
  sighting(token: { sid: string | undefined; seenMinute: number }): void {
    if (this.seen.size >= MAX_SIGHTINGS) return;
    token.seenMinute = this.minute;
    if (token.sid !== undefined) this.seen.add(token.sid);
  }

  /** Writes what has been gathered. Safe to call concurrently with counting. */
  async flush(): Promise<void> {
    this.rollover(this.minute);
    const rows = this.pending;
    const alerts = this.alerts;
    const seen = [...this.seen];
    this.pending = [];
    this.alerts = [];
    this.seen = new Set();
    try {
      if (rows.length) await this.hot.addCounters(rows);
    } catch (error) {
      this.pending.push(...rows);
      throw error;
    }
    if (alerts.length) {
      await this.db.query(
        `INSERT INTO alerts (at, kind, sub, sid, jti, kid, fph, detail)
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])`,
        [
          alerts.map((a) => new Date(a.at).toISOString()),
          alerts.map((a) => a.kind),
          alerts.map((a) => a.sub ?? null),
          alerts.map((a) => a.sid ?? null),
          alerts.map((a) => a.jti ?? null),
          alerts.map((a) => a.kid ?? null),
          alerts.map((a) => a.fph ?? null),
          alerts.map((a) => JSON.stringify({ reason: a.reason })),
        ],
      );
    }
    for (let i = 0; i < seen.length; i += SIGHTING_BATCH) {
      await this.db.query('UPDATE sessions SET last_seen_at = now() WHERE sid = ANY($1::text[])', [seen.slice(i, i + SIGHTING_BATCH)]);
    }
  }

  /** Cumulative decision counts of this instance, by counter key (see counterKey). */
  cumulative(): Map<string, number> {
    const out = new Map(this.totals);
    for (const [key, n] of this.counts) out.set(key, (out.get(key) ?? 0) + n);
    return out;
  }

  private rollover(minute: number): void {
    for (const [key, n] of this.counts) {
      this.totals.set(key, (this.totals.get(key) ?? 0) + n);
      const [kid, decision, reason, cohort] = key.split(SEP) as [string, string, string, string];
      this.pending.push({ minute: this.minute, kid, decision, reason, cohort: Number(cohort), n });
    }
    this.counts = new Map();
    this.minute = minute;
  }
}

export function splitCounterKey(key: string): { kid: string; decision: string; reason: string; cohort: number } {
  const [kid, decision, reason, cohort] = key.split(SEP) as [string, string, string, string];
  return { kid, decision, reason, cohort: Number(cohort) };
}

export function counterKey(kid: string | undefined, decision: string, reason: string | undefined, cohort: number | undefined): string {
  return `${kid ?? '-'}${SEP}${decision}${SEP}${reason ?? '-'}${SEP}${cohort ?? -1}`;
}
