import { UsageError } from '../errors.js';
import { quote } from '../lib/printable.js';

export function parseIntStrict(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${what} must be a whole number, got ${quote(text, 40)}`);
  return Number(text);
}
