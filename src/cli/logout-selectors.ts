import { parseDuration } from '../config/duration.js';
import { InvalidSelectorError } from '../errors.js';
import type { Selection } from '../state/selection.js';
import { quote } from '../lib/printable.js';
import { looksLikeToken } from '../lib/token-shape.js';

/** The selector flags of `jwtir logout`, as commander hands them over (untrusted text). */
export interface SelectorFlags {
  user?: string[];
  role?: string[];
  kid?: string;
  cohort?: string;
  device?: string;
  issuedBefore?: string;
  suspicious?: boolean;
  since?: string;
}

const SELECTORS = '--user, --role, --kid, --cohort, --device, --issued-before or --suspicious';
/** Alerts older than this rarely name a session that is still live. */
export const DEFAULT_ALERT_WINDOW = '24h';

/**
 * Parses the selectors into a Selection with absolute times, collecting every problem so the
 * operator fixes them in one go. Touches no state: a typo fails before anything is opened.
 */
export function parseSelection(f: SelectorFlags, now = Date.now()): Selection {
  const problems: string[] = [];
  const attempt = <T>(fn: () => T): T | null => {
    try {
      return fn();
    } catch (error) {
      problems.push((error as Error).message);
      return null;
    }
  };
  const users = (f.user ?? []).map((u) => u.trim());
  if (users.some((u) => u === '')) problems.push('--user needs a subject, got an empty one');
  if (users.some(looksLikeToken)) problems.push('--user: this looks like a token, not a subject; give the user\'s subject (the token\'s "sub" claim)');
  const roles = (f.role ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== '');
  if (f.role && roles.length === 0) problems.push('--role needs a role name');
  const cohorts = f.cohort === undefined ? [] : (attempt(() => parseCohorts(f.cohort!)) ?? []);
  if (f.device !== undefined && !/^[\x21-\x7e]{1,512}$/.test(f.device)) {
    problems.push(`--device ${quote(f.device)} is not a device fingerprint hash (printable characters, no spaces)`);
  }
  const issuedBefore = f.issuedBefore === undefined ? null : attempt(() => parseTime(f.issuedBefore!, '--issued-before', now));
  if (f.since !== undefined && !f.suspicious) problems.push('--since applies to --suspicious only');
  const since = f.suspicious ? attempt(() => parseDuration(f.since ?? DEFAULT_ALERT_WINDOW, '--since')) : null;
  if (f.kid !== undefined && f.kid.trim() === '') problems.push('--kid needs a key id');
  if (problems.length) {
    throw new InvalidSelectorError(problems.length === 1 ? problems[0]! : `${problems.length} problems with the selectors:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      hint: 'fix the selectors; nothing was changed',
    });
  }
  const sel: Selection = {
    users: [...new Set(users)],
    roles: [...new Set(roles)],
    kid: f.kid ?? null,
    cohorts,
    device: f.device ?? null,
    issuedBefore: issuedBefore?.toISOString() ?? null,
    suspicious: f.suspicious === true,
    alertsSince: since === null ? null : new Date(now - since).toISOString(),
  };
  if (!sel.users.length && !sel.roles.length && !sel.kid && !sel.cohorts.length && !sel.device && !sel.issuedBefore && !sel.suspicious) {
    throw new InvalidSelectorError('say whom to log out: no selector was given', {
      hint: `use at least one of ${SELECTORS}; to log out everyone, rotate the key instead (\`jwtir rotate --staged\`)`,
    });
  }
  return sel;
}

/** "0-9,42" → [0..9, 42]: cohorts are 0..99, ranges ascending; every bad item is named. */
export function parseCohorts(text: string): number[] {
  const out = new Set<number>();
  const bad: string[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    const m = /^(\d{1,3})(?:-(\d{1,3}))?$/.exec(item);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo > 99 || hi > 99) bad.push(`${quote(item, 40)} is not a cohort or range of cohorts 0..99`);
    else if (lo > hi) bad.push(`${quote(item)} is a range that runs backwards (write ${hi}-${lo})`);
    else for (let n = lo; n <= hi; n++) out.add(n);
  }
  if (bad.length) throw new Error(`--cohort ${quote(text)}: ${bad.join('; ')} (example: 0-9,42)`);
  return [...out].sort((a, b) => a - b);
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2})))?$/;

/**
 * Whether the fields of an ISO match name a real calendar time. Date.parse rolls impossible
 * fields over (2026-02-30 becomes 2026-03-02); the fields must survive a round trip instead.
 */
function realFields(m: RegExpExecArray): boolean {
  const n = (i: number) => Number(m[i] ?? 0);
  const d = new Date(Date.UTC(n(1), n(2) - 1, n(3), n(4), n(5), n(6)));
  const same = d.getUTCFullYear() === n(1) && d.getUTCMonth() === n(2) - 1 && d.getUTCDate() === n(3) && d.getUTCHours() === n(4) && d.getUTCMinutes() === n(5) && d.getUTCSeconds() === n(6);
  return same && n(7) <= 23 && n(8) <= 59;
}

/**
 * A point in the past: ISO 8601 (a date is midnight UTC; a time needs Z or an offset, so it
 * means the same on every operator's machine) or a duration ago ("2h"). A future time is
 * refused: as a watermark it would turn back every login until then.
 */
export function parseTime(text: string, what: string, now: number): Date {
  let at: number;
  const iso = ISO.exec(text);
  if (iso) at = realFields(iso) ? Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text) : NaN;
  else if (/^\d+(\.\d+)?(ms|s|m|h|d|w)$/.test(text)) at = now - parseDuration(text, what);
  else throw new Error(`${what} ${quote(text)} is neither a time (2026-12-04T09:30:00Z) nor a duration ago (2h)`);
  if (!Number.isFinite(at)) throw new Error(`${what} ${quote(text)} is not a real date`);
  if (at > now) throw new Error(`${what} ${quote(text)} is in the future; it must be a time that has passed`);
  return new Date(at);
}
