import { UsageError } from '../errors.js';

/**
 * Text from outside (a findings file, a flag, an HTTP response) shown to the operator: characters
 * a terminal acts on or that hide what the text says are written as escapes instead. That is the
 * C0 and C1 controls and DEL (ESC starts an escape sequence, BEL rings, CR rewrites the line),
 * Unicode format characters (a bidi override reorders what is read) and line/paragraph separators.
 */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** C0 and C1 control characters and DEL: refused in text jwtir stores and shows later (reasons, values). */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };
const escapeChar = (ch: string) => SHORT[ch] ?? `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`;

/**
 * Refuses operator text that jwtir stores and shows again later (a reason): a control character
 * in it would act on the terminal of whoever lists it.
 */
export function refuseControlChars(text: string, what: string): void {
  const at = text.search(CONTROL_CHARS);
  if (at >= 0) {
    throw new UsageError(`${what} contains a control character (${escapeChar(text[at]!)} at character ${at + 1}); write it without`, { hint: 'nothing was changed' });
  }
}

/** `text` with every non-printable character escaped JSON-style (`\n`, `\u001b`). */
export function printable(text: string): string {
  return text.replace(NON_PRINTABLE, escapeChar);
}

/**
 * A snippet of input for an error message: the first `max` characters, in double quotes, escaped
 * like JSON.stringify (quotes and backslashes too) and non-printables as above, so the snippet
 * can neither drive the terminal nor be mistaken for the message around it.
 */
export function quote(text: string, max = 80): string {
  const chars = [...text];
  const cut = chars.length > max ? chars.slice(0, max).join('') : text;
  return `"${printable(cut.replace(/[\\"]/g, (ch) => `\\${ch}`))}${chars.length > max ? '…' : ''}"`;
}
