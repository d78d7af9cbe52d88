import { parseDuration } from '../config/duration.js';
import { UsageError } from '../errors.js';
import type { RunbookDoc } from './schema.js';

/**
 * Turns the values an operator gave (strings from flags, or typed values) into the typed
 * parameters a runbook declares: durations become milliseconds, lists become arrays. Every
 * problem is collected and reported at once, before anything runs.
 */
export function resolveParams(doc: RunbookDoc, given: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const name of Object.keys(given)) {
    if (!(name in doc.params) && given[name] !== undefined) problems.push(`unknown parameter "${name}"`);
  }
  for (const [name, def] of Object.entries(doc.params)) {
    const raw = given[name] ?? def.default;
    if (raw === undefined || raw === null) {
      if (def.required) problems.push(`parameter "${name}" is required (${def.description})`);
      else out[name] = null;
      continue;
    }
    try {
      out[name] = coerce(name, def.type, def.values, raw);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length) {
    throw new UsageError(problems.length === 1 ? problems[0]! : `${problems.length} problems with the parameters:\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      hint: 'nothing was changed',
    });
  }
  return out;
}

function coerce(name: string, type: string, values: string[] | undefined, raw: unknown): unknown {
  switch (type) {
    case 'string':
      if (typeof raw !== 'string' || raw === '') throw new Error(`parameter "${name}" must be a non-empty string`);
      return raw;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw new Error(`parameter "${name}" must be true or false`);
    case 'integer': {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (!Number.isSafeInteger(n)) throw new Error(`parameter "${name}" must be a whole number, got "${String(raw)}"`);
      return n;
    }
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isFinite(n)) throw new Error(`parameter "${name}" must be a number, got "${String(raw)}"`);
      return n;
    }
    case 'duration':
      return parseDuration(raw as string | number, `parameter "${name}"`);
    case 'list': {
      const items = Array.isArray(raw) ? raw.map(String) : String(raw).split(',');
      const trimmed = items.map((s) => s.trim()).filter((s) => s !== '');
      return [...new Set(trimmed)];
    }
    case 'enum':
      if (typeof raw !== 'string' || !values!.includes(raw)) {
        throw new Error(`parameter "${name}" must be one of ${values!.join(', ')}, got "${String(raw)}"`);
      }
      return raw;
    default:
      throw new Error(`parameter "${name}" has unknown type ${type}`);
  }
}
