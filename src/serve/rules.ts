/**
 * Method-and-path rules that give a request its operation class (`read` or `critical`). The
 * decision that matters most here is fail-safe classification: a write misfiled as a read walks
 * past block_critical (PLAYBOOK A2), so wherever the gateway and the service could read a path
 * differently, the stricter reading wins.
 */
import type { Operation } from '../guard/http.js';

export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

export interface Rule {
  /** Upper-case methods, or `*` for any. */
  method: string | string[];
  /** A glob over the path: `*` is part of one segment, `**` any number of whole segments. */
  path: string;
  operation: Operation;
}

interface CompiledRule {
  /** null: any method. */
  methods: ReadonlySet<string> | null;
  pattern: RegExp;
  operation: Operation;
}

/** Why a glob is refused, or undefined when it compiles. Every message says what to write instead. */
export function globProblem(glob: string): string | undefined {
  if (glob === '**') return undefined;
  if (!glob.startsWith('/')) return `"${glob}" must start with "/" (or be "**" for every path)`;
  if (/[\s\x00-\x1f\x7f]/.test(glob)) return `"${glob}" contains whitespace or control characters`;
  if (/[?#]/.test(glob)) return `"${glob}" contains "?" or "#": rules match the path only, without the query string`;
  if (/[[\]{}]/.test(glob)) return `"${glob}" uses [ ] or { }, which are not supported: write one rule per alternative`;
  if (glob.includes('%')) return `"${glob}" contains "%": write the path decoded (paths are matched both as sent and decoded)`;
  if (glob.includes('\\')) return `"${glob}" contains a backslash`;
  if (glob.length > 1 && glob.endsWith('/')) return `"${glob}" ends with "/": write it without (a trailing slash is ignored when matching)`;
  const segments = glob.slice(1).split('/');
  for (const s of segments) {
    if (glob !== '/' && s === '') return `"${glob}" has an empty segment ("//")`;
    if (s === '.' || s === '..') return `"${glob}" has a "${s}" segment; paths are matched after dot segments are resolved`;
    if (s.includes('**') && s !== '**') return `"${glob}": "**" must be a whole segment, like /api/** (use * inside a segment)`;
  }
  return undefined;
}

/** Compiles a glob that globProblem accepted. Matching ignores case: routers such as Express do. */
function compileGlob(glob: string): RegExp {
  if (glob === '**' || glob === '/**') return /^/;
  let source = '';
  for (const s of glob.slice(1).split('/')) {
    if (s === '**') source += '(?:/[^/]*)*';
    else source += '/' + s.split('*').map(escapeRegExp).join('[^/]*');
  }
  return new RegExp(`^${source || '/'}$`, 'i');
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** A request's operation class by the first matching rule, else the default. */
export class Classifier {
  private readonly rules: CompiledRule[];

  constructor(
    rules: readonly Rule[],
    private readonly fallback: Operation = 'read',
  ) {
    this.rules = rules.map((r) => ({
      methods: r.method === '*' || (Array.isArray(r.method) && r.method.includes('*')) ? null : new Set(Array.isArray(r.method) ? r.method : [r.method]),
      pattern: compileGlob(r.path),
      operation: r.operation,
    }));
  }

  get size(): number {
    return this.rules.length;
  }

  /**
   * `target` is the request target as the client sent it (path and query). It is judged as sent
   * and normalised (decoded, dot segments resolved, `;params` and repeated or trailing slashes
   * dropped), because the service behind the gateway may read it either way; if either reading
   * is critical, the request is. A method or target the gateway did not pass is critical.
   */
  operation(method: string | undefined, target: string | undefined): Operation {
    if (!method || target === undefined) return 'critical';
    const raw = pathOf(target);
    if (raw === undefined) return 'critical';
    const m = method.toUpperCase();
    const asSent = this.match(m, raw);
    if (asSent === 'critical' || !NEEDS_NORMALISING.test(raw)) return asSent;
    return this.match(m, normalisePath(raw));
  }

  private match(method: string, path: string): Operation {
    for (const r of this.rules) {
      if ((r.methods === null || r.methods.has(method)) && r.pattern.test(path)) return r.operation;
    }
    return this.fallback;
  }
}

const NEEDS_NORMALISING = /%|;|\\|\/\/|\/\.|.\/$/;

/** The path of a request target (origin-form, or absolute-form with its scheme and authority dropped). */
function pathOf(target: string): string | undefined {
  let end = target.length;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) {
      end = i;
      break;
    }
  }
  let path = target.slice(0, end);
  if (!path.startsWith('/')) {
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/i.exec(path);
    if (!m) return undefined;
    path = m[1] ?? '/';
  }
  return path;
}

/** RFC 3986 §5.2.4 plus what servers commonly do before routing (see Classifier.operation). */
export function normalisePath(path: string): string {
  // ASCII escapes only: a rule never contains anything else, and `*` matches the rest either way.
  const decoded = path.replace(/%([0-7][0-9a-f])/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\\/g, '/');
  const out: string[] = [];
  for (const part of decoded.split('/')) {
    const segment = part.split(';', 1)[0]!;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return '/' + out.join('/');
}
