import type { RawNotifySettings } from '../config/settings.js';
import { ConfigInvalidError, NotifyNotConfiguredError } from '../errors.js';

/** Where SETs are pushed (RFC 8935): the receiver's endpoint and the `aud` it expects. */
export interface SetReceiver {
  url: string;
  audience: string;
}

/**
 * The on-call webhook, checked. Its URL carries the channel's credential in its path, so no
 * message here (or anywhere) repeats it: callers show `url.host` only.
 */
export function oncallWebhook(raw: RawNotifySettings): URL {
  if (!raw.oncallWebhookUrl) {
    throw new NotifyNotConfiguredError('no on-call webhook is configured', {
      hint: 'set JWTIR_ONCALL_WEBHOOK_URL (or oncallWebhookUrl in the config file) to the incoming-webhook URL of the on-call channel; it is a secret, so it is never a flag',
    });
  }
  let url: URL;
  try {
    url = new URL(raw.oncallWebhookUrl);
  } catch {
    throw new ConfigInvalidError('the on-call webhook URL (JWTIR_ONCALL_WEBHOOK_URL / oncallWebhookUrl) is not a URL', {
      hint: 'it looks like https://hooks.slack.com/services/T000/B000/XXXX',
    });
  }
  const problem = transportProblem(url);
  if (problem) {
    throw new ConfigInvalidError(`the on-call webhook URL (JWTIR_ONCALL_WEBHOOK_URL / oncallWebhookUrl) ${problem}`, {
      hint: 'use the https:// URL the chat service gave you, as it is; nothing was sent',
    });
  }
  return url;
}

/** Hosts plain http:// may go to: this machine only (a test receiver, a local relay). */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * Why a webhook or receiver URL is unfit to send to, or null. Credentials (user:password@) would
 * be stored with every send and fail at fetch time, after the run has started; plain http://
 * would carry the webhook's secret path and the signed events over the network in clear.
 */
function transportProblem(url: URL): string | null {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `must be https://, not ${url.protocol}`;
  if (url.username || url.password) return 'holds credentials (user:password@); the URL itself is the secret, so it takes none';
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) return 'must be https:// (plain http:// only to 127.0.0.1, ::1 or localhost)';
  return null;
}

/** The configured SET receivers, checked; every problem is reported at once. */
export function setReceivers(raw: RawNotifySettings): SetReceiver[] {
  if (!raw.setReceivers) {
    throw new NotifyNotConfiguredError('no Shared Signals receivers are configured', {
      hint: 'set JWTIR_SET_RECEIVERS to JSON like [{"url":"https://rp.example/ssf/push","audience":"https://rp.example/"}] (or setReceivers in the config file)',
    });
  }
  const { source } = raw.setReceivers;
  let value = raw.setReceivers.value;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch (error) {
      throw new ConfigInvalidError(`${source} is not valid JSON: ${(error as Error).message}`, { hint: 'write a JSON array of {"url", "audience"} objects' });
    }
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigInvalidError(`${source} must be a non-empty JSON array of {"url", "audience"} objects`, { hint: 'for example [{"url":"https://rp.example/ssf/push","audience":"https://rp.example/"}]' });
  }
  const problems: string[] = [];
  const receivers: SetReceiver[] = [];
  const seen = new Set<string>();
  value.forEach((entry: unknown, i) => {
    const at = `${source}[${i}]`;
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return void problems.push(`${at} must be an object with "url" and "audience"`);
    const { url, audience, ...rest } = entry as Record<string, unknown>;
    for (const key of Object.keys(rest)) problems.push(`${at} has an unknown key "${key}" (only "url" and "audience")`);
    const before = problems.length;
    const checkedUrl = receiverUrl(url, at, problems);
    if (typeof audience !== 'string' || audience === '' || /\s/.test(audience)) problems.push(`${at}.audience must be a non-empty string without spaces (the "aud" the receiver expects)`);
    if (problems.length > before || !checkedUrl) return;
    const id = `${checkedUrl} ${audience as string}`;
    if (seen.has(id)) problems.push(`${at} repeats an earlier receiver (same url and audience)`);
    seen.add(id);
    receivers.push({ url: checkedUrl, audience: audience as string });
  });
  if (problems.length) {
    throw new ConfigInvalidError(`${source} has ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      hint: 'fix every problem listed; nothing was sent',
    });
  }
  return receivers;
}

function receiverUrl(value: unknown, at: string, problems: string[]): string | undefined {
  if (typeof value !== 'string') return void problems.push(`${at}.url must be a string`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return void problems.push(`${at}.url is not a URL`);
  }
  // Receiver URLs are recorded with every send; credentials in them would end up in the state.
  if (url.username || url.password) return void problems.push(`${at}.url holds credentials (user:password@); receivers are identified by URL and audience only`);
  const problem = transportProblem(url);
  if (problem) return void problems.push(`${at}.url ${problem}`);
  return url.toString();
}

/** The `iss` of the SETs jwtir signs (and of their `iss_sub` subject identifiers). */
export function setIssuer(raw: RawNotifySettings): string {
  const iss = raw.setIssuer?.trim();
  if (!iss) {
    throw new NotifyNotConfiguredError('no SET issuer is configured', {
      hint: 'set JWTIR_SET_ISSUER (or setIssuer in the config file) to the issuer your receivers know, usually the "iss" of your service\'s tokens, like https://auth.example.com/',
    });
  }
  if (/\s/.test(iss)) throw new ConfigInvalidError('the SET issuer (JWTIR_SET_ISSUER / setIssuer) must not contain spaces');
  return iss;
}

/** A receiver as one list item of a run's parameters ("<audience> <url>"), and back. */
export const receiverItem = (r: SetReceiver) => `${r.audience} ${r.url}`;
export function parseReceiverItem(item: string): SetReceiver {
  const space = item.indexOf(' ');
  return { audience: item.slice(0, space), url: item.slice(space + 1) };
}
