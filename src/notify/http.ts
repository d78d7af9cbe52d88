import { setTimeout as sleep } from 'node:timers/promises';
import { printable } from '../lib/printable.js';

/** How hard one message is tried before it is recorded as failed. */
export interface RetryPolicy {
  /** Most attempts, the first included. Default 5. */
  attempts: number;
  /** Give up this long (ms) after the first attempt of this try; no wait or attempt goes past it. Default 30 s. */
  deadlineMs: number;
  /** Longest one attempt may take (ms), response body included. Default 10 s. */
  attemptTimeoutMs: number;
  /** First backoff (ms) after a failed attempt, doubled each time, with up to 20 % jitter. Default 250 ms. */
  backoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, deadlineMs: 30_000, attemptTimeoutMs: 10_000, backoffMs: 250 };

export interface HttpMessage {
  headers: Record<string, string>;
  body: string;
}

export interface Delivery {
  ok: boolean;
  /** Attempts made by this call. */
  attempts: number;
  /** HTTP status of the last response, null when none came. */
  status: number | null;
  /** Why it failed, without the URL (it may be a secret). */
  error: string | null;
}

/** What a response means: delivered, worth retrying, or refused for good (with the reason). */
export type Verdict = { kind: 'ok' } | { kind: 'retry'; reason: string } | { kind: 'permanent'; reason: string };

/** Characters of a response's own words kept in an error. */
const DETAIL_MAX = 200;

/** 2xx delivered; 408, 429 and 5xx retried; any other status refused for good. */
export function judgeStatus(status: number, body: string): Verdict {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  const detail = body.trim() ? `: ${body.trim().slice(0, DETAIL_MAX)}` : '';
  if (status === 408 || status === 429 || status >= 500) return { kind: 'retry', reason: `HTTP ${status}${detail}` };
  return { kind: 'permanent', reason: `HTTP ${status}${detail}` };
}

/**
 * POSTs one message, retrying network errors and retryable statuses with exponential backoff,
 * honouring Retry-After, within a per-attempt timeout and an overall deadline. Never throws for
 * a delivery problem: the outcome is returned so the caller records it.
 */
export async function postWithRetries(
  url: URL,
  message: HttpMessage,
  policy: RetryPolicy,
  judge: (status: number, body: string) => Verdict = judgeStatus,
): Promise<Delivery> {
  const deadline = Date.now() + policy.deadlineMs;
  let attempts = 0;
  let status: number | null = null;
  let error = 'no attempt was made';
  for (;;) {
    const left = deadline - Date.now();
    if (attempts >= policy.attempts || left <= 0) break;
    attempts += 1;
    let retryAfterMs: number | null = null;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: message.headers,
        body: message.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(Math.min(policy.attemptTimeoutMs, left)),
      });
      status = res.status;
      // Secrets go before the text is judged (and cut short), so no cut leaves part of one behind.
      const text = withoutUrlParts(await res.text(), url);
      const verdict = judge(res.status, text);
      if (verdict.kind === 'ok') return { ok: true, attempts, status, error: null };
      error = scrubResponseText(verdict.reason, url, DETAIL_MAX * 2);
      if (verdict.kind === 'permanent') return { ok: false, attempts, status, error };
      retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    } catch (caught) {
      status = null;
      error = networkError(caught, url);
    }
    if (attempts >= policy.attempts) break;
    const wait = retryAfterMs ?? backoff(policy.backoffMs, attempts);
    if (Date.now() + wait >= deadline) {
      if (retryAfterMs !== null) error += ` (asked to retry after ${Math.ceil(retryAfterMs / 1000)}s, past the deadline)`;
      break;
    }
    await sleep(wait);
  }
  const spent = Math.max(0, policy.deadlineMs - (deadline - Date.now()));
  return { ok: false, attempts, status, error: `gave up after ${attempts} attempt(s) in ${(spent / 1000).toFixed(1)}s: ${error}` };
}

/** `Retry-After` as delta-seconds or an HTTP date, in ms; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function backoff(baseMs: number, attempt: number): number {
  const plain = baseMs * 2 ** (attempt - 1);
  return Math.round(plain * (1 + Math.random() * 0.2));
}

/** A fetch failure as a short reason; the URL is cut out of it, whatever the error says. */
function networkError(error: unknown, url: URL): string {
  const err = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'no answer within the attempt timeout';
  if (err.cause?.code) return `network error ${err.cause.code}`;
  return scrubResponseText(`network error: ${err.cause?.message ?? err.message ?? String(error)}`, url, DETAIL_MAX * 2);
}

/** Path segments this long or longer are cut out wherever they appear: a webhook's credential is one. */
const SECRET_SEGMENT_MIN = 8;

/**
 * Text that came back from a receiver (its body, an error about the request), made safe to show
 * and to store: a receiver that echoes the request (`Cannot POST /services/T0/B0/SECRET`) must
 * not put the webhook's credential into stderr, runs.error, the audit trail or notify_sends.
 * Every occurrence of the URL, of its path, of each path segment of 8 or more characters and of
 * its query string (raw or percent-decoded, in any case) becomes `…`; non-printables are
 * escaped and the result is capped at `max` characters.
 */
export function scrubResponseText(text: string, url: URL, max = DETAIL_MAX): string {
  const out = printable(withoutUrlParts(text, url));
  return out.length > max ? `${out.slice(0, max - 1)}…` : out;
}

/** Every piece of `url` named above cut out of `text`; the rest kept as it is (a SET receiver's JSON still parses). */
function withoutUrlParts(text: string, url: URL): string {
  const secrets = new Set<string>();
  const add = (s: string) => {
    if (!s) return;
    secrets.add(s);
    try {
      secrets.add(decodeURIComponent(s));
    } catch {
      /* not percent-encoded: the raw form is enough */
    }
  };
  add(url.href);
  add(url.origin + url.pathname);
  if (url.pathname.length > 1) add(url.pathname);
  for (const segment of url.pathname.split('/')) if (segment.length >= SECRET_SEGMENT_MIN) add(segment);
  if (url.search) {
    add(url.search);
    add(url.search.slice(1));
    for (const [, value] of url.searchParams) if (value.length >= SECRET_SEGMENT_MIN) add(value);
  }
  let out = text;
  // Longest first, so the whole URL goes as one piece rather than leaving its host around a cut.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    out = out.replace(new RegExp(secret.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), '…');
  }
  return out.replace(/…{2,}/g, '…');
}
