import { setTimeout as sleep } from 'node:timers/promises';

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

/** 2xx delivered; 408, 429 and 5xx retried; any other status refused for good. */
export function judgeStatus(status: number, body: string): Verdict {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  const detail = body.trim() ? `: ${body.trim().slice(0, 200)}` : '';
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
      const text = await res.text();
      const verdict = judge(res.status, text);
      if (verdict.kind === 'ok') return { ok: true, attempts, status, error: null };
      error = verdict.reason;
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
  let reason: string;
  if (err.name === 'TimeoutError' || err.name === 'AbortError') reason = 'no answer within the attempt timeout';
  else if (err.cause?.code) reason = `network error ${err.cause.code}`;
  else reason = `network error: ${err.cause?.message ?? err.message ?? String(error)}`;
  reason = reason.split(url.toString()).join(url.host);
  return url.pathname.length > 1 ? reason.split(url.pathname).join('/…') : reason;
}
