import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigInvalidError, UsageError } from '../errors.js';

/**
 * Where jwtir keeps its state and who is acting. Resolved once per process with the precedence
 * flag > environment > config file > default (a config file never overrides a flag).
 */
export interface Settings {
  /** Postgres URL; absent means the embedded default (PGlite under `stateDir`). */
  databaseUrl: string | undefined;
  /** Redis URL; absent means the hot store lives in tables of the state database. */
  redisUrl: string | undefined;
  /** Directory of the embedded database and its key file. Default `.jwtir` in the working directory. */
  stateDir: string;
  /** Postgres schema holding jwtir's tables. Default `jwtir`. */
  schema: string;
  /** Prefix of every Redis key jwtir uses. Default `jwtir:` (`jwtir:<schema>:` for another schema). */
  redisPrefix: string;
  /** Path of a key-encryption-key file (base64, 32 bytes, mode 0600), if not given by JWTIR_KEK. */
  kekFile: string | undefined;
  /** Who is acting, recorded in the audit trail. Default `$USER@hostname`. */
  actor: string;
  /**
   * Notification settings exactly as given (environment, else config file), checked only by the
   * `notify` commands (src/notify/config.ts): a mistake there must not stop a guard or a logout.
   */
  notify: RawNotifySettings;
}

/** Untrusted notification settings; the on-call webhook URL is a secret and never a flag. */
export interface RawNotifySettings {
  /** JWTIR_ONCALL_WEBHOOK_URL / `oncallWebhookUrl`: Slack-compatible incoming webhook. */
  oncallWebhookUrl: string | undefined;
  /** JWTIR_SET_RECEIVERS (JSON) / `setReceivers`: `[{ "url", "audience" }]`, where SETs are pushed. */
  setReceivers: { source: string; value: unknown } | undefined;
  /** JWTIR_SET_ISSUER / `setIssuer`: the `iss` of the SETs jwtir signs, and of their `sub_id`. */
  setIssuer: string | undefined;
}

/** Values given on the command line (commander's parsed options). */
export interface SettingFlags {
  databaseUrl?: string;
  redisUrl?: string;
  stateDir?: string;
  schema?: string;
  config?: string;
}

const configFileSchema = z
  .object({
    databaseUrl: z.string().min(1).optional(),
    redisUrl: z.string().min(1).optional(),
    stateDir: z.string().min(1).optional(),
    schema: z.string().optional(),
    redisPrefix: z.string().min(1).optional(),
    kekFile: z.string().min(1).optional(),
    actor: z.string().min(1).optional(),
    // Checked by the notify commands when used (see RawNotifySettings).
    oncallWebhookUrl: z.string().optional(),
    setReceivers: z.unknown().optional(),
    setIssuer: z.string().optional(),
  })
  .strict();

export const DEFAULT_CONFIG_FILE = 'jwtir.config.json';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function resolveSettings(flags: SettingFlags = {}, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Settings {
  for (const [flag, url] of [['--database-url', flags.databaseUrl], ['--redis-url', flags.redisUrl]] as const) {
    if (url && hasPassword(url)) {
      throw new UsageError(`${flag} contains a password, and arguments are visible to every user of this machine`, {
        hint: 'put the URL in DATABASE_URL / REDIS_URL (or a config file) instead, or use PGPASSWORD',
      });
    }
  }
  const file = readConfigFile(flags.config ?? env.JWTIR_CONFIG, cwd);
  const pick = (flag: string | undefined, envValue: string | undefined, fileValue: string | undefined) =>
    nonEmpty(flag) ?? nonEmpty(envValue) ?? nonEmpty(fileValue);

  const schema = pick(flags.schema, env.JWTIR_SCHEMA, file.schema) ?? 'jwtir';
  if (!SCHEMA_NAME.test(schema)) {
    throw new ConfigInvalidError(`schema "${schema}" is not a valid Postgres schema name`, {
      hint: 'use lower-case letters, digits and underscores, starting with a letter',
    });
  }
  const stateDir = path.resolve(cwd, pick(flags.stateDir, env.JWTIR_STATE_DIR, file.stateDir) ?? '.jwtir');
  return {
    databaseUrl: pick(flags.databaseUrl, env.DATABASE_URL, file.databaseUrl),
    redisUrl: pick(flags.redisUrl, env.REDIS_URL, file.redisUrl),
    stateDir,
    schema,
    // Tied to the schema by default, so a trial schema never overwrites another's hot copy in a shared Redis.
    redisPrefix: pick(undefined, env.JWTIR_REDIS_PREFIX, file.redisPrefix) ?? (schema === 'jwtir' ? 'jwtir:' : `jwtir:${schema}:`),
    kekFile: pick(undefined, env.JWTIR_KEK_FILE, file.kekFile),
    actor: pick(undefined, env.JWTIR_ACTOR, file.actor) ?? defaultActor(),
    notify: {
      oncallWebhookUrl: pick(undefined, env.JWTIR_ONCALL_WEBHOOK_URL, file.oncallWebhookUrl),
      setReceivers: nonEmpty(env.JWTIR_SET_RECEIVERS)
        ? { source: 'JWTIR_SET_RECEIVERS', value: env.JWTIR_SET_RECEIVERS }
        : file.setReceivers === undefined
          ? undefined
          : { source: 'setReceivers in the config file', value: file.setReceivers },
      setIssuer: pick(undefined, env.JWTIR_SET_ISSUER, file.setIssuer),
    },
  };
}

function readConfigFile(explicit: string | undefined, cwd: string): z.infer<typeof configFileSchema> {
  const file = explicit ? path.resolve(cwd, explicit) : path.join(cwd, DEFAULT_CONFIG_FILE);
  if (!existsSync(file)) {
    if (explicit) throw new ConfigInvalidError(`config file ${file} does not exist`);
    return {};
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigInvalidError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigInvalidError(`config file ${file} has ${problems.length} problem(s):\n${problems.join('\n')}`);
  }
  return parsed.data;
}

export function hasPassword(url: string): boolean {
  try {
    const u = new URL(url);
    return u.password !== '' || u.searchParams.has('password');
  } catch {
    return /\/\/[^:/@]+:[^@/]+@/.test(url);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function defaultActor(): string {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    /* containers without a passwd entry */
  }
  return `${user}@${os.hostname()}`;
}
