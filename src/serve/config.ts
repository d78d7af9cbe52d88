/**
 * The forward-auth server's own config file (YAML or JSON): where the token and the fingerprint
 * come from, which requests are critical, and what the answers are called. Read untrusted, parsed
 * into a validated form, every problem reported at once with where it is (`rules[2].path`).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../config/duration.js';
import { ServeConfigInvalidError } from '../errors.js';
import { assertCookieName } from '../guard/cookies.js';
import { checkDenialOptions, type DenialOptions, type Operation } from '../guard/http.js';
import { globProblem, METHODS, type Rule } from './rules.js';

export interface ServeConfig {
  token: { authorization: boolean; cookie: string | undefined };
  /** Lower-case header name set upstream by the service's fraud protection (never by the client). */
  fingerprintHeader: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  /** Response header names, as written in answers. */
  identityHeaders: { subject: string; session: string; kid: string; decision: string };
  challenge: DenialOptions;
  /** Envoy's `path_prefix`: removed from the check request's path to get the original one. */
  envoy: { pathPrefix: string };
  defaultOperation: Operation;
  rules: Rule[];
}

// RFC 9110 §5.6.2 token.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Headers the gateway or the protocol already gives a meaning; an identity header by that name would clash.
const RESERVED_HEADERS = new Set([
  'authorization', 'cookie', 'set-cookie', 'host', 'connection', 'keep-alive', 'content-length', 'content-type', 'transfer-encoding',
  'te', 'trailer', 'upgrade', 'www-authenticate', 'retry-after', 'cache-control', 'x-auth-status', 'x-auth-error', 'x-original-uri',
  'x-original-method', 'x-forwarded-uri', 'x-forwarded-method',
]);
const OWN_PATHS = ['/auth/nginx', '/auth/traefik', '/healthz', '/metrics'];

const headerName = z.string().regex(HEADER_NAME, 'must be an HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)');
const identityHeader = headerName.refine((h) => !RESERVED_HEADERS.has(h.toLowerCase()), 'is a header with its own meaning in HTTP or in this protocol; pick another name');
const operation = z.enum(['read', 'critical'], { error: (i) => `must be "read" or "critical", not ${JSON.stringify(i.input)}` });

/** One method or a list, upper-cased; each must be a method HTTP defines (a typo would never match). */
const methods = z
  .union([z.string(), z.array(z.string()).min(1)], { error: 'must be a method or a non-empty list of methods' })
  .transform((given, ctx) => {
    const list = (Array.isArray(given) ? given : [given]).map((m) => m.toUpperCase());
    for (const m of list) {
      if (m !== '*' && !(METHODS as readonly string[]).includes(m)) {
        ctx.addIssue({ code: 'custom', message: `"${m}" is not an HTTP method; use one of ${METHODS.join(', ')} or "*"` });
      }
    }
    return Array.isArray(given) ? list : list[0]!;
  });

const rule = z
  .object({
    method: methods,
    path: z.string({ error: 'must be a path glob such as /transfers/*' }).superRefine((p, ctx) => {
      const problem = globProblem(p);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    operation,
  })
  .strict();

const schema = z
  .object({
    token: z
      .object({
        authorization: z.boolean().default(true),
        cookie: z
          .string()
          .superRefine((name, ctx) => {
            try {
              assertCookieName(name);
            } catch (error) {
              ctx.addIssue({ code: 'custom', message: (error as Error).message });
            }
          })
          .optional(),
      })
      .strict()
      .default({ authorization: true })
      .refine((t) => t.authorization || t.cookie !== undefined, 'reads no token: keep authorization: true or name a cookie'),
    fingerprintHeader: headerName.optional(),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    identityHeaders: z
      .object({
        subject: identityHeader.default('X-Auth-Subject'),
        session: identityHeader.default('X-Auth-Session'),
        kid: identityHeader.default('X-Auth-Kid'),
        decision: identityHeader.default('X-Auth-Decision'),
      })
      .strict()
      .default({ subject: 'X-Auth-Subject', session: 'X-Auth-Session', kid: 'X-Auth-Kid', decision: 'X-Auth-Decision' })
      .refine((h) => new Set(Object.values(h).map((v) => v.toLowerCase())).size === 4, 'the four identity headers need four different names'),
    challenge: z
      .object({
        realm: z.string().optional(),
        stepUpAcr: z.string().optional(),
        stepUpMaxAge: z.union([z.string(), z.number()]).optional(),
      })
      .strict()
      .default({}),
    envoy: z
      .object({
        pathPrefix: z
          .string()
          .regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'must be a path like /auth/envoy (no trailing slash, no "/" alone)')
          .refine((p) => !OWN_PATHS.some((own) => own === p || own.startsWith(p + '/')), `must not overlap ${OWN_PATHS.join(', ')}`)
          .default('/auth/envoy'),
      })
      .strict()
      .default({ pathPrefix: '/auth/envoy' }),
    defaultOperation: operation.default('read'),
    rules: z.array(rule, { error: 'must be a list of { method, path, operation }' }).default([]),
  })
  .strict();

/** Where a problem is, as the user wrote it: `rules[2].path`. */
function where(path: PropertyKey[]): string {
  return path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), '') || '(top level)';
}

/** Parses and validates a config document (already read from YAML or JSON). */
export function parseServeConfig(raw: unknown, source = 'the serve config'): ServeConfig {
  const parsed = schema.safeParse(raw ?? {});
  const problems = parsed.success ? [] : parsed.error.issues.map((i) => `${where(i.path)}: ${i.message}`);
  let stepUpMaxAgeSec: number | undefined;
  if (parsed.success) {
    const c = parsed.data.challenge;
    try {
      if (c.stepUpMaxAge !== undefined) stepUpMaxAgeSec = Math.round(typeof c.stepUpMaxAge === 'number' ? c.stepUpMaxAge : parseDuration(c.stepUpMaxAge, 'challenge.stepUpMaxAge') / 1000);
      checkDenialOptions({ realm: c.realm, stepUpAcr: c.stepUpAcr, stepUpMaxAgeSec });
    } catch (error) {
      problems.push(`challenge: ${(error as Error).message}`);
    }
  }
  if (!parsed.success || problems.length) {
    throw new ServeConfigInvalidError(`${source} has ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`, {
      details: { problems },
      hint: 'fix every problem listed; the server did not start',
    });
  }
  const d = parsed.data;
  const challenge: DenialOptions = {};
  if (d.challenge.realm !== undefined) challenge.realm = d.challenge.realm;
  if (d.challenge.stepUpAcr !== undefined) challenge.stepUpAcr = d.challenge.stepUpAcr;
  if (stepUpMaxAgeSec !== undefined) challenge.stepUpMaxAgeSec = stepUpMaxAgeSec;
  return {
    token: { authorization: d.token.authorization, cookie: d.token.cookie },
    fingerprintHeader: d.fingerprintHeader?.toLowerCase(),
    issuer: d.issuer,
    audience: d.audience,
    identityHeaders: d.identityHeaders,
    challenge,
    envoy: d.envoy,
    defaultOperation: d.defaultOperation,
    rules: d.rules,
  };
}

/** Reads the file: `.json` as JSON, anything else as YAML (which JSON also is). */
export function loadServeConfig(file: string | undefined): ServeConfig {
  if (file === undefined) return parseServeConfig({});
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ServeConfigInvalidError(`cannot read the serve config ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      hint: 'check the path given to --serve-config',
    });
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true });
  } catch (error) {
    throw new ServeConfigInvalidError(`the serve config ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`, {
      hint: 'fix the syntax; the server did not start',
    });
  }
  return parseServeConfig(raw, `the serve config ${file}`);
}
