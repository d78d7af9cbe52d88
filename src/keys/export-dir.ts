import { createPrivateKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { KeyAlg } from '../store/hot/hot-store.js';

/**
 * The directory a service's own issuer reads its signing key from (issue 5, "key handoff"):
 *
 *   <dir>/current -> <kid>/      the key to sign with (a symlink, swapped with one rename)
 *   <dir>/<kid>/kid              the kid to put in the JWT header
 *   <dir>/<kid>/alg              HS256 | RS256 | ES256 | EdDSA
 *   <dir>/<kid>/secret           HS256: the raw secret bytes (what jsonwebtoken takes as a Buffer)
 *   <dir>/<kid>/private.pem      asymmetric: PKCS#8 PEM
 *   <dir>/<kid>/private.jwk.json asymmetric: the private JWK, with kid and alg
 *   <dir>/<kid>/jwks.json        the public JWKS of every key that verifies now
 *
 * A key's directory is written whole under a temporary name and renamed into place, and
 * `current` is swapped by renaming a new symlink over it: an issuer that reads
 * `current/kid` and `current/secret` never sees half a file, nor one key's kid with another's secret.
 * Files are 0600, directories 0700.
 */
export function keyFiles(kid: string, alg: KeyAlg, material: Buffer, jwks: { keys: JsonWebKey[] }): Record<string, Buffer | string> {
  const files: Record<string, Buffer | string> = { kid: `${kid}\n`, alg: `${alg}\n`, 'jwks.json': JSON.stringify(jwks, null, 2) + '\n' };
  if (alg === 'HS256') {
    files.secret = Buffer.from(material);
  } else {
    const jwk = JSON.parse(material.toString('utf8')) as JsonWebKey;
    files['private.pem'] = createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }) as string;
    files['private.jwk.json'] = JSON.stringify({ ...jwk, kid, alg, use: 'sig' }, null, 2) + '\n';
  }
  return files;
}

/**
 * Checked before a run starts: the directory can be created and written, and nobody else can
 * write into it (another user could swap `current` for a key of their own).
 */
export function assertExportDir(dir: string): void {
  const abs = path.resolve(dir);
  let existing = abs;
  while (!existsSync(existing)) existing = path.dirname(existing);
  const st = statSync(existing);
  if (!st.isDirectory()) throw new UsageError(`cannot export to ${abs}: ${existing} is not a directory`, { hint: 'choose a directory path' });
  if (existing === abs && (st.mode & 0o022) !== 0) {
    throw new UsageError(`${abs} can be written by other users (mode ${(st.mode & 0o777).toString(8)}): they could replace the key an issuer reads`, {
      hint: `chmod go-w ${abs}, or export to a new directory (jwtir creates it with mode 0700)`,
    });
  }
  // Permission bits do not stop root, and read-only mounts do not show in them: try it.
  const probe = path.join(existing, `.jwtir-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, 'wx', 0o600));
    unlinkSync(probe);
  } catch (error) {
    throw new UsageError(`cannot write to ${existing} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, {
      hint: 'choose a directory the issuer can read and you can write; nothing was exported',
    });
  }
}

/** Writes `<dir>/<kid>/` whole (replacing an earlier export of the same kid); `current` is untouched. */
export function writeKeyDir(dir: string, kid: string, files: Record<string, Buffer | string>): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const target = path.join(dir, kid);
  const tmp = path.join(dir, `.${kid}.${randomBytes(4).toString('hex')}.tmp`);
  mkdirSync(tmp, { mode: 0o700 });
  try {
    for (const [name, content] of Object.entries(files)) {
      const fd = openSync(path.join(tmp, name), 'wx', 0o600);
      try {
        writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    if (existsSync(target)) removeKeyDir(dir, kid);
    renameSync(tmp, target);
    syncDir(dir);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  return target;
}

/** The kid `current` points at, or null. */
export function currentKid(dir: string): string | null {
  try {
    return path.basename(readlinkSync(path.join(dir, 'current')));
  } catch {
    return null;
  }
}

/** Points `current` at `<kid>/` (or removes it for null) with one rename. */
export function switchCurrent(dir: string, kid: string | null): void {
  const link = path.join(dir, 'current');
  if (kid === null) {
    rmSync(link, { force: true });
  } else {
    if (!existsSync(path.join(dir, kid))) throw new UsageError(`there is no exported key ${kid} in ${dir}`);
    const tmp = path.join(dir, `.current.${randomBytes(4).toString('hex')}`);
    symlinkSync(kid, tmp);
    renameSync(tmp, link);
  }
  syncDir(dir);
}

/** Removes an exported key, overwriting its secret files first (best effort on journaling file systems). */
export function removeKeyDir(dir: string, kid: string): void {
  const target = path.join(dir, kid);
  if (!existsSync(target) || !lstatSync(target).isDirectory()) return;
  for (const name of ['secret', 'private.pem', 'private.jwk.json']) {
    const file = path.join(target, name);
    if (!existsSync(file)) continue;
    const fd = openSync(file, 'r+');
    try {
      writeSync(fd, Buffer.alloc(statSync(file).size));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  rmSync(target, { recursive: true, force: true });
}

/** What `current` pointed at before this key's hand-off, remembered beside it so a resumed hand-off knows it. */
export function rememberPrevious(dir: string, kid: string): string | null {
  const note = path.join(dir, kid, '.previous');
  if (existsSync(note)) return readFileSync(note, 'utf8') || null;
  const previous = currentKid(dir);
  const fd = openSync(note, 'w', 0o600);
  try {
    writeSync(fd, previous === kid ? '' : (previous ?? ''));
  } finally {
    closeSync(fd);
  }
  return previous === kid ? null : previous;
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
