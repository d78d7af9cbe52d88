import { parseDuration } from '../../config/duration.js';
import type { CommandContext } from '../context.js';
import { table } from '../render.js';

/**
 * `jwtir counters`: the guards' decisions per minute, summed across every instance (PLAYBOOK C2):
 * is the old key's legitimate traffic dying out, and do attacks go on?
 */
export async function counters(ctx: CommandContext, o: { since: string; kid?: string; byCohort?: boolean }): Promise<void> {
  const sinceMs = parseDuration(o.since, '--since');
  const { hot } = await ctx.backends();
  const fromMinute = Math.floor((Date.now() - sinceMs) / 60_000);
  const rows = (await hot.readCounters(fromMinute)).filter((r) => !o.kid || r.kid === o.kid);
  // Without --by-cohort, cohorts are summed: one line per minute, kid, decision and reason.
  const grouped = new Map<string, { minute: number; kid: string; decision: string; reason: string; cohort: number | null; n: number }>();
  for (const r of rows) {
    const cohort = o.byCohort ? r.cohort : null;
    const id = [r.minute, r.kid, r.decision, r.reason, cohort].join('\u0000');
    const g = grouped.get(id) ?? { minute: r.minute, kid: r.kid, decision: r.decision, reason: r.reason, cohort, n: 0 };
    g.n += r.n;
    grouped.set(id, g);
  }
  const out = [...grouped.values()].sort((a, b) => a.minute - b.minute || a.kid.localeCompare(b.kid) || b.n - a.n);
  ctx.out.result({ since: new Date(fromMinute * 60_000).toISOString(), counters: out.map((g) => ({ ...g, at: new Date(g.minute * 60_000).toISOString() })) }, () =>
    out.length === 0
      ? `no decisions recorded since ${new Date(fromMinute * 60_000).toISOString()} (guards flush every few seconds)`
      : table(
          ['MINUTE', 'KID', 'DECISION', 'REASON', ...(o.byCohort ? ['COHORT'] : []), 'COUNT'],
          out.map((g) => [new Date(g.minute * 60_000).toISOString().slice(0, 16), g.kid, g.decision, g.reason, ...(o.byCohort ? [g.cohort] : []), g.n]),
        ),
  );
}

/** `jwtir alerts`: forged tokens, fingerprint mismatches and refresh-token reuse the guards raised. */
export async function alerts(ctx: CommandContext, o: { since: string; limit: string }): Promise<void> {
  const sinceMs = parseDuration(o.since, '--since');
  const { db } = await ctx.backends();
  const rows = await db.query<{ at: Date; kind: string; sub: string | null; sid: string | null; jti: string | null; kid: string | null; fph: string | null; detail: { reason?: string } | null }>(
    `SELECT at, kind, sub, sid, jti, kid, fph, detail FROM alerts WHERE at >= $1 ORDER BY at DESC LIMIT $2`,
    [new Date(Date.now() - sinceMs).toISOString(), Number(o.limit) || 100],
  );
  ctx.out.result({ alerts: rows }, () =>
    rows.length === 0
      ? 'no alerts'
      : table(
          ['AT', 'KIND', 'REASON', 'USER', 'SESSION', 'KID', 'DEVICE'],
          rows.map((r) => [new Date(r.at).toISOString(), r.kind, r.detail?.reason ?? null, r.sub, r.sid, r.kid, r.fph ? r.fph.slice(0, 12) + '…' : null]),
        ),
  );
}
