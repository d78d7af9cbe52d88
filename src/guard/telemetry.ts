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
/** Users remembered per flush for the cutover gate; beyond it they are dropped (the gate's counts are estimates). */
const MAX_USER_MARKS = 200_000;
/** Distinct alerts gathered between two flushes; a flood of the same forged token is one row with a count. */
const MAX_ALERTS = 10_000;

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
  /** Alerts by what they name (kind, reason, user, session, token, key, device), with how often. */
  private alerts = new Map<string, { alert: Alert; count: number }>();
  private alertsDropped = 0;
  /** For the cutover's health gate: users turned back (`cut`, by key) or allowed (`allow`) per cohort this flush. */
  private userMarks = new Map<string, Set<string>>();
  private userMarkCount = 0;
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
    const key = [alert.kind, alert.reason, alert.sub, alert.sid, alert.jti, alert.kid, alert.fph].join(SEP);
    const seen = this.alerts.get(key);
    if (seen) seen.count++;
    else if (this.alerts.size < MAX_ALERTS) this.alerts.set(key, { alert, count: 1 });
    else this.alertsDropped++;
  }

  /**
   * Records that user `sub` of `cohort` was turned back by the cutover of `kid` (`cut`), or was
   * allowed on a key not cut over for that cohort (`allow`), under `policyVersion`. Per user, not
   * per request: one account replaying an old token counts once, so it cannot sway the cutover's gate.
   */
  userMark(kind: 'cut' | 'allow', kid: string, cohort: number, sub: string, policyVersion: number): void {
    const key = `${kind}${SEP}${kind === 'cut' ? kid : ''}${SEP}${cohort}${SEP}${policyVersion}`;
    let set = this.userMarks.get(key);
    if (!set) {
      if (this.userMarkCount >= MAX_USER_MARKS) return;
      this.userMarks.set(key, (set = new Set()));
    }
    if (!set.has(sub) && this.userMarkCount < MAX_USER_MARKS) {
      set.add(sub);
      this.userMarkCount++;
    }
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
    const alerts = [...this.alerts.values()];
    const dropped = this.alertsDropped;
    const marks = [...this.userMarks].map(([key, subs]) => {
      const [kind, kid, cohort, policyVersion] = key.split(SEP) as ['cut' | 'allow', string, string, string];
      return { minute: this.minute, policyVersion: Number(policyVersion), kind, kid, cohort: Number(cohort), subs: [...subs] };
    });
    const seen = [...this.seen];
    this.pending = [];
    this.alerts = new Map();
    this.alertsDropped = 0;
    this.userMarks = new Map();
    this.userMarkCount = 0;
    this.seen = new Set();
    try {
      if (rows.length) await this.hot.addCounters(rows);
    } catch (error) {
      this.pending.push(...rows);
      throw error;
    }
    if (marks.length) await this.hot.addUserMarks(marks);
    if (alerts.length) {
      await this.db.query(
        `INSERT INTO alerts (at, kind, sub, sid, jti, kid, fph, detail)
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])`,
        [
          alerts.map(({ alert: a }) => new Date(a.at).toISOString()),
          alerts.map(({ alert: a }) => a.kind),
          alerts.map(({ alert: a }) => a.sub ?? null),
          alerts.map(({ alert: a }) => a.sid ?? null),
          alerts.map(({ alert: a }) => a.jti ?? null),
          alerts.map(({ alert: a }) => a.kid ?? null),
          alerts.map(({ alert: a }) => a.fph ?? null),
          alerts.map(({ alert: a, count }, i) => JSON.stringify({ reason: a.reason, count, ...(i === 0 && dropped ? { droppedAlerts: dropped } : {}) })),
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
