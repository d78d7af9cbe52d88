import { UnknownSessionError } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { table } from '../render.js';
import { runRunbook } from '../run-runbook.js';
import { assertKnownUsers } from '../../state/users.js';
import { quote } from '../../lib/printable.js';

type Status = 'active' | 'revoked' | 'ended' | 'expired';

interface Row {
  sid: string;
  kid: string | null;
  roles: string[];
  fph: string | null;
  device: string | null;
  place: string | null;
  issued_at: Date;
  last_seen_at: Date | null;
  ends_at: Date;
  revoked: { kind: 'sid' | 'fph'; reason: string | null; runId: number | null; until: string } | null;
  ended: { scope: 'user' | 'kid' | 'cohort'; subject: string; notBefore: string; reason: string | null; runId: number | null } | null;
}

/**
 * Each session with why it is no longer live: a live revocation of its id or device, else the
 * newest watermark it started before (user, key or cohort), else expiry. One statement; the
 * subqueries run per session of one user.
 */
const SESSIONS_OF_USER = `
SELECT s.sid, s.kid, s.roles, s.fph, s.device, s.place, s.issued_at, s.last_seen_at,
  greatest(s.expires_at, (SELECT max(rt.expires_at) FROM refresh_tokens rt WHERE rt.sid = s.sid AND rt.revoked_at IS NULL AND rt.used_at IS NULL)) AS ends_at,
  (SELECT jsonb_build_object('kind', r.kind, 'reason', r.reason, 'runId', nullif(r.run_id, 0), 'until', r.expires_at)
     FROM revocations r WHERE r.lifted_at IS NULL AND r.expires_at > now()
      AND ((r.kind = 'sid' AND r.value = s.sid) OR (r.kind = 'fph' AND r.value = s.fph))
     ORDER BY r.created_at DESC LIMIT 1) AS revoked,
  (SELECT jsonb_build_object('scope', w.scope, 'subject', w.subject, 'notBefore', w.not_before, 'reason', w.reason, 'runId', nullif(w.run_id, 0))
     FROM watermarks w WHERE w.cleared_at IS NULL AND s.issued_at < w.not_before
      AND ((w.scope = 'user' AND w.subject = s.sub) OR (w.scope = 'kid' AND w.subject = s.kid)
        OR (w.scope = 'cohort' AND (w.subject = s.cohort::text OR w.subject = s.kid || '#' || s.cohort)))
     ORDER BY w.not_before DESC LIMIT 1) AS ended
FROM sessions s WHERE s.sub = $1 ORDER BY s.issued_at DESC, s.sid`;

/** `jwtir sessions list --user <sub>`: the user's sessions from the ledger with their status. Read-only. */
export async function list(ctx: CommandContext, o: { user: string; all?: boolean }): Promise<void> {
  const { db } = await ctx.backends();
  await assertKnownUsers(db, [o.user]);
  const now = Date.now();
  const rows = await db.query<Row>(SESSIONS_OF_USER, [o.user]);
  const sessions = rows
    .map((r) => {
      const endsAt = new Date(r.ends_at);
      // An expired session is just expired, whatever ended it first: its revocation has lapsed with it.
      const status: Status = endsAt.getTime() <= now ? 'expired' : r.revoked ? 'revoked' : r.ended ? 'ended' : 'active';
      const why = status === 'revoked' ? { by: r.revoked!.kind === 'sid' ? 'session' : 'device', ...r.revoked } : status === 'ended' ? { by: `${r.ended!.scope} watermark`, ...r.ended } : null;
      return {
        sid: r.sid,
        kid: r.kid,
        roles: r.roles,
        device: r.device,
        place: r.place,
        fph: r.fph,
        issuedAt: new Date(r.issued_at).toISOString(),
        lastSeenAt: r.last_seen_at ? new Date(r.last_seen_at).toISOString() : null,
        expiresAt: endsAt.toISOString(),
        status,
        why,
      };
    })
    .filter((s) => o.all || s.status !== 'expired');
  const hidden = rows.length - sessions.length;
  ctx.out.result({ user: o.user, sessions }, () => {
    const lines =
      sessions.length === 0
        ? [`no live sessions for ${o.user}`]
        : [
            table(
              ['SID', 'KID', 'DEVICE', 'PLACE', 'ISSUED', 'LAST SEEN', 'EXPIRES', 'STATUS'],
              sessions.map((s) => [s.sid, s.kid, s.device, s.place, short(s.issuedAt), s.lastSeenAt && short(s.lastSeenAt), short(s.expiresAt), statusText(s.status, s.why)]),
            ),
          ];
    if (hidden > 0 && !o.all) lines.push(ctx.out.color.dim(`(${hidden} expired session${hidden > 1 ? 's' : ''} not shown; --all shows them)`));
    return lines.join('\n');
  });
}

/** `jwtir sessions revoke <sid>`: ends one session through runbooks/sessions-revoke.yaml. */
export async function revoke(ctx: CommandContext, sid: string, o: { dryRun?: boolean }): Promise<void> {
  const { db } = await ctx.backends();
  const [row] = await db.query<{ sub: string }>('SELECT sub FROM sessions WHERE sid = $1', [sid]);
  if (!row) {
    throw new UnknownSessionError(`no session ${quote(sid)} in the session ledger`, {
      hint: 'list a user\'s sessions with `jwtir sessions list --user <sub> --all`; nothing was changed',
    });
  }
  await runRunbook(ctx, 'sessions-revoke', { sid }, { dryRun: o.dryRun });
}

const short = (iso: string) => iso.slice(0, 16).replace('T', ' ');

function statusText(status: Status, why: { by: string; reason?: string | null; runId?: number | null } | null): string {
  if (!why) return status;
  const details = [why.by, why.reason, why.runId ? `run ${why.runId}` : null].filter(Boolean).join(', ');
  return `${status} (${details})`;
}
