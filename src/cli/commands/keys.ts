import { accessSync, constants, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { seal } from '../../crypto/envelope.js';
import { InvalidStateError, UsageError, WeakSecretError } from '../../errors.js';
import { assertExportDir } from '../../keys/export-dir.js';
import { assertAlg } from '../../runbook/actions/keys.js';
import { describeKey, findKey, getKey, listKeys } from '../../state/keys.js';
import type { CommandContext } from '../context.js';
import { table } from '../render.js';
import { runRunbook } from '../run-runbook.js';

const MIN_SECRET_BYTES = 32;

export interface ImportOptions {
  kid: string;
  alg: string;
  secretEnv?: string;
  secretStdin?: boolean;
  secretEncoding: string;
  allowWeak?: boolean;
  kidless?: boolean;
  dryRun?: boolean;
}

/**
 * `jwtir keys import`: the secret comes from an environment variable or stdin, never argv. It
 * is sealed under the KEK here, so the run, its parameters and the audit trail only ever see
 * ciphertext.
 */
export async function importKey(ctx: CommandContext, o: ImportOptions): Promise<void> {
  assertAlg(o.alg);
  if (o.alg !== 'HS256') throw new UsageError(`keys import takes HS256 secrets; got --alg ${o.alg}`, { hint: 'asymmetric keys are generated with `jwtir keys generate`' });
  if (Boolean(o.secretEnv) === Boolean(o.secretStdin)) {
    throw new UsageError('give the secret with exactly one of --secret-env <VAR> or --secret-stdin', { hint: 'secrets are never accepted as arguments' });
  }
  ctx.mayCreateState = true;
  const secret = decodeSecret(await readSecret(o), o.secretEncoding);
  const weak = secret.length < MIN_SECRET_BYTES;
  if (secret.length === 0) throw new UsageError('the secret is empty', { hint: 'check the variable or what you piped in' });
  if (weak && !o.allowWeak) {
    throw new WeakSecretError(`the secret is ${secret.length} bytes; HS256 needs at least ${MIN_SECRET_BYTES}`, {
      hint: `check that ${o.secretEnv ?? 'the input'} holds the service's real secret; if the service really signs with a secret this short, re-run with --allow-weak (recorded in the audit trail) and rotate it away`,
    });
  }
  const backends = await ctx.backends();
  if (await findKey(backends.db, o.kid)) throw new UsageError(`a key with kid "${o.kid}" already exists`, { hint: 'choose another --kid' });
  const kidlessTaken = (await listKeys(backends.db)).some((k) => k.kidless);
  if (o.kidless === true && kidlessTaken) throw new UsageError('another key already answers for tokens without a kid', { hint: 'pass --no-kidless' });
  const kek = await ctx.kek();
  const sealedSecret = seal(kek.key, secret, o.kid);
  secret.fill(0);
  if (weak) ctx.out.warn(`importing a weak ${secret.length}-byte secret because --allow-weak was given; rotate it away soon`);
  await runRunbook(ctx, 'keys-import', { kid: o.kid, alg: o.alg, sealedSecret, weak, kidless: o.kidless ?? !kidlessTaken }, { dryRun: o.dryRun, quietPlan: true });
}

async function readSecret(o: ImportOptions): Promise<string> {
  if (o.secretEnv) {
    const value = process.env[o.secretEnv];
    if (value === undefined) {
      const similar = Object.keys(process.env).filter((k) => /SECRET|JWT|KEY/i.test(k) && !k.startsWith('JWTIR_'));
      throw new UsageError(`environment variable ${o.secretEnv} is not set`, {
        hint: similar.length ? `set variables that look related: ${similar.join(', ')}` : `export ${o.secretEnv} in this shell first`,
      });
    }
    return value;
  }
  if (process.stdin.isTTY) throw new UsageError('--secret-stdin expects the secret piped in, not typed at a terminal');
  // Read to EOF (a pipe may deliver late: \`vault ... | jwtir ...\`), as bytes, then decode strictly:
  // a secret silently altered by U+FFFD replacement would fail every real token.
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new UsageError('the secret on stdin is not valid UTF-8', { hint: 'for binary secrets pipe them encoded and pass --secret-encoding base64 or hex' });
  }
  return text.replace(/\r?\n$/, '');
}

function decodeSecret(text: string, encoding: string): Buffer {
  switch (encoding) {
    case 'utf8':
      return Buffer.from(text, 'utf8');
    case 'base64':
    case 'base64url':
    case 'hex': {
      const valid = { base64: /^[A-Za-z0-9+/]*={0,2}$/, base64url: /^[A-Za-z0-9_-]*$/, hex: /^([0-9a-fA-F]{2})*$/ }[encoding];
      if (!valid.test(text.trim())) throw new UsageError(`the secret is not valid ${encoding}`);
      return Buffer.from(text.trim(), encoding);
    }
    default:
      throw new UsageError(`unknown --secret-encoding "${encoding}"`, { hint: 'use utf8 (how jsonwebtoken reads a string secret), base64, base64url or hex' });
  }
}

export async function list(ctx: CommandContext): Promise<void> {
  const keys = (await listKeys((await ctx.backends()).db)).map(describeKey);
  ctx.out.result({ keys }, () =>
    keys.length === 0
      ? 'no keys yet: import the current secret with `jwtir keys import --kid <kid> --alg HS256 --secret-env JWT_SECRET`'
      : table(
          ['KID', 'ALG', 'STATE', 'PUBLISHED', 'VERIFY UNTIL', 'FLAGS'],
          keys.map((k) => [
            k.kid,
            k.alg,
            k.state,
            k.published ? 'yes' : 'no',
            k.verifyUntil,
            [k.compromised && 'COMPROMISED', k.weak && 'weak', k.kidless && 'kidless'].filter(Boolean).join(',') || null,
          ]),
        ),
  );
}

export async function show(ctx: CommandContext, kid: string): Promise<void> {
  const key = describeKey(await getKey((await ctx.backends()).db, kid));
  ctx.out.result({ key }, () => Object.entries(key).map(([k, v]) => `${k.padEnd(18)} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`).join('\n'));
}

export async function generate(ctx: CommandContext, o: { alg: string; publish?: boolean; dryRun?: boolean }): Promise<void> {
  assertAlg(o.alg);
  await runRunbook(ctx, 'keys-generate', { alg: o.alg, publish: o.publish === true }, { dryRun: o.dryRun });
}

export async function publish(ctx: CommandContext, o: { out?: string; dryRun?: boolean }): Promise<void> {
  if (o.out) assertWritableTarget(o.out);
  await runRunbook(ctx, 'keys-publish', { out: o.out }, { dryRun: o.dryRun, quietPlan: true });
}

/** Checked before the run starts, so a bad path fails with nothing changed. */
function assertWritableTarget(file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (existsSync(file) && statSync(file).isDirectory()) throw new UsageError(`--out ${file} is a directory`, { hint: 'name a file, for example jwks.json' });
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new UsageError(`cannot write to ${dir}`, { hint: 'choose a directory that exists and that you can write to' });
  }
}

/**
 * `jwtir keys export`: the key's signing material for the service's own issuer, in <dir>/<kid>/;
 * <dir>/current points at it when it is the active key (a staged key is written but not made current).
 */
export async function exportKey(ctx: CommandContext, o: { kid: string; to: string; dryRun?: boolean }): Promise<void> {
  assertExportDir(o.to);
  const key = await getKey((await ctx.backends()).db, o.kid);
  if (!key.privateEnc) throw new InvalidStateError(`key ${o.kid} is ${key.state}: its private material is gone, so it cannot be exported`);
  const makeCurrent = key.state === 'active';
  if (!makeCurrent) ctx.out.warn(`${o.kid} is ${key.state}, not the signing key: it is written to ${path.join(o.to, o.kid)}/ but ${path.join(o.to, 'current')} is left as it is`);
  await runRunbook(ctx, 'keys-export', { kid: o.kid, dir: path.resolve(o.to), makeCurrent }, { dryRun: o.dryRun, confirmPlan: true });
}
