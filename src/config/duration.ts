import ms from 'ms';
import { InvalidDurationError } from '../errors.js';
import { quote } from '../lib/printable.js';

/**
 * Parses an operator-written duration ("90s", "15m", "24h", "2d", or plain milliseconds as a
 * number) into milliseconds. Negative, zero-length-unit and unparsable values are refused
 * rather than guessed at: a mistyped grace period must not silently become zero.
 */
export function parseDuration(input: string | number, what = 'duration', max = MAX_DURATION_MS): number {
  const ms = parseUnbounded(input, what);
  if (ms > max) {
    throw new InvalidDurationError(`${what} ${quote(String(input))} is longer than ${formatDuration(max)}`, { hint: `use at most ${formatDuration(max)}` });
  }
  return ms;
}

/** No duration jwtir takes makes sense beyond a year; longer ones are typos (99999999999w). */
export const MAX_DURATION_MS = 365 * 24 * 3600 * 1000;

function parseUnbounded(input: string | number, what: string): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return Math.round(input);
    throw new InvalidDurationError(`${what} must be a non-negative number of milliseconds, got ${input}`);
  }
  const text = input.trim();
  // ms() also accepts things like "1.5 hours"; we allow only <number><unit> to keep runbooks unambiguous.
  if (!/^\d+(\.\d+)?(ms|s|m|h|d|w)$/.test(text)) {
    throw new InvalidDurationError(`${what} ${quote(input)} is not a duration`, {
      hint: 'write a number followed by a unit: ms, s, m, h, d or w (for example 30s, 15m, 24h)',
    });
  }
  const value = ms(text as ms.StringValue);
  if (value === undefined || !Number.isFinite(value) || value < 0) {
    throw new InvalidDurationError(`${what} ${quote(input)} is not a duration`);
  }
  return Math.round(value);
}

/** Renders milliseconds the way operators write them ("1h", "90s"). */
export function formatDuration(milliseconds: number): string {
  return ms(milliseconds, { long: false });
}
