import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KekMismatchError, KekMissingError, RefusedError } from '../errors.js';
import type { Queryable } from '../store/db.js';
import { open, seal } from './envelope.js';

/** The key-encryption key: wraps every private key jwtir stores. Never leaves memory. */
export interface Kek {
  readonly key: Buffer;
  /** A non-secret fingerprint, to tell operators which KEK a state expects. */
  readonly id: string;
  readonly source: string;
}

const KEK_BYTES = 32;
const CHECK_PLAINTEXT = 'jwtir kek check v1';

export interface KekSources {
  env: NodeJS.ProcessEnv;
  kekFile: string | undefined;
  /** The embedded default keeps its KEK file beside the database. */
  embeddedStateDir: string | undefined;
}

export function kekFilePath(stateDir: string): string {
  return path.join(stateDir, 'kek');
}

/** Finds the KEK: JWTIR_KEK, then JWTIR_KEK_FILE / config kekFile, then the embedded default's file. */
export function loadKek(src: KekSources): Kek {
  if (src.env.JWTIR_KEK) return fromBase64(src.env.JWTIR_KEK, 'JWTIR_KEK');
  if (src.kekFile && !existsSync(src.kekFile)) {
    throw new KekMissingError(`the KEK file ${src.kekFile} (JWTIR_KEK_FILE / kekFile) does not exist`, { hint: 'fix the path, or set JWTIR_KEK instead' });
  }
  const file = src.kekFile ?? (src.embeddedStateDir ? kekFilePath(src.embeddedStateDir) : undefined);
  if (file && existsSync(file)) return fromFile(file);
  throw new KekMissingError('no key-encryption key (KEK) is configured, so private key material cannot be read or written', {
    hint: src.embeddedStateDir
      ? 'run `jwtir init` to create one for the embedded state, or set JWTIR_KEK (base64 of 32 random bytes)'
      : 'set JWTIR_KEK to base64 of 32 random bytes (for example `openssl rand -base64 32`), or JWTIR_KEK_FILE to a 0600 file holding it',
  });
}

/** Creates the embedded default's KEK file (0600) unless it exists. Returns whether it was created. */
export function createKekFile(stateDir: string): boolean {
  const file = kekFilePath(stateDir);
  if (existsSync(file)) return false;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, randomBytes(KEK_BYTES).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return true;
}

function fromFile(file: string): Kek {
  const stat = statSync(file);
  if (!stat.isFile()) throw new KekMissingError(`the KEK file ${file} is not a regular file`, { hint: 'point it at a file holding base64 of 32 bytes' });
  const mode = stat.mode & 0o777;
  if (mode & 0o077) {
    throw new RefusedError(`the KEK file ${file} is readable by other users (mode ${mode.toString(8)})`, {
      hint: `run \`chmod 600 ${file}\``,
    });
  }
  return fromBase64(readFileSync(file, 'utf8').trim(), file);
}

function fromBase64(text: string, source: string): Kek {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEK_BYTES || !/^[A-Za-z0-9+/]+={0,2}$/.test(text.trim())) {
    throw new KekMissingError(`the KEK from ${source} is not base64 of exactly ${KEK_BYTES} bytes (decoded ${key.length})`, {
      hint: 'generate one with `openssl rand -base64 32`',
    });
  }
  return { key, id: kekId(key), source };
}

function kekId(key: Buffer): string {
  return createHash('sha256').update('jwtir kek id\0').update(key).digest('hex').slice(0, 16);
}

/**
 * Checks the KEK against the state it is used with. The first KEK a state sees is recorded
 * (as its id and a sealed check value); any other KEK is refused before it can wrap a key that
 * nobody could later unwrap, or fail halfway through a rotation.
 */
export async function bindKek(db: Queryable, kek: Kek): Promise<void> {
  const rows = await db.query<{ v: { id: string; check: string } }>(`SELECT v FROM meta WHERE k = 'kek'`);
  const bound = rows[0]?.v;
  if (!bound) {
    await db.query(`INSERT INTO meta (k, v) VALUES ('kek', $1) ON CONFLICT (k) DO NOTHING`, [
      { id: kek.id, check: seal(kek.key, Buffer.from(CHECK_PLAINTEXT), 'kek-check') },
    ]);
    return bindKek(db, kek);
  }
  let ok = bound.id === kek.id;
  if (ok) {
    try {
      ok = open(kek.key, bound.check, 'kek-check').toString() === CHECK_PLAINTEXT;
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    throw new KekMismatchError(
      `the key-encryption key from ${kek.source} (id ${kek.id}) is not the one this state was set up with (id ${bound.id})`,
      { hint: 'use the original KEK; without it the stored private keys cannot be decrypted. Nothing was changed.' },
    );
  }
}
