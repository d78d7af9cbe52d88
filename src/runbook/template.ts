/**
 * Runbook templating: `${{ params.alg }}`, `${{ steps.generate.outputs.kid }}`, and in an undo
 * `${{ inputs.kid }}` / `${{ outputs.kid }}`. A string that is exactly one expression yields the
 * referenced value with its type (a number stays a number); otherwise values are interpolated.
 * Expressions are dotted paths only: runbooks are data, never code.
 */
const EXPR = /\$\{\{\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}/g;
const WHOLE = /^\$\{\{\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}$/;

export type Scope = Record<string, unknown>;

export class UnresolvedReference extends Error {
  constructor(readonly path: string) {
    super(`\${{ ${path} }} has no value yet`);
  }
}

export function render(value: unknown, scope: Scope): unknown {
  if (typeof value === 'string') return renderString(value, scope);
  if (Array.isArray(value)) return value.map((v) => render(v, scope));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v, scope)]));
  }
  return value;
}

function renderString(text: string, scope: Scope): unknown {
  const whole = WHOLE.exec(text);
  if (whole) return lookup(scope, whole[1]!);
  return text.replace(EXPR, (_, path: string) => {
    const v = lookup(scope, path);
    return Array.isArray(v) ? v.join(',') : String(v);
  });
}

function lookup(scope: Scope, path: string): unknown {
  let cur: unknown = scope;
  for (const part of path.split('.')) {
    // Own properties only: a runbook must not reach __proto__ or constructor.
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) throw new UnresolvedReference(path);
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined) throw new UnresolvedReference(path);
  return cur;
}

/** Every `${{ path }}` in a value, for static checks at load time. */
export function references(value: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === 'string') for (const m of v.matchAll(EXPR)) out.push(m[1]!);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(value);
  return out;
}

/** Renders for display: references that have no value yet are shown as `<path>`. */
export function renderForDisplay(value: unknown, scope: Scope): unknown {
  try {
    return render(value, scope);
  } catch (error) {
    if (!(error instanceof UnresolvedReference)) throw error;
    if (typeof value === 'string') return value.replace(EXPR, (_, path: string) => `<${path}>`);
    if (Array.isArray(value)) return value.map((v) => renderForDisplay(v, scope));
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderForDisplay(v, scope)]));
    }
    return value;
  }
}
