import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ROOT } from '../helpers/cli.js';

/** Every module reachable from a compiled entry point, following static and dynamic imports. */
function reachable(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(/(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) queue.push(path.resolve(path.dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return { files, packages };
}

describe('the jwtir/guard entry', () => {
  it('is exported separately and reaches none of the CLI packages', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const entry = path.join(ROOT, pkg.exports['./guard'].default);
    expect(existsSync(entry)).toBe(true);
    const { files, packages } = reachable(entry);
    for (const cli of ['commander', '@inquirer/prompts', 'chalk', 'ora']) expect(packages).not.toContain(cli);
    expect([...files].some((f) => f.includes(`${path.sep}cli${path.sep}`))).toBe(false);
    // It does reach what it needs: the verifier and the store drivers (loaded lazily).
    expect(packages).toEqual(new Set(['zod', 'pg', '@electric-sql/pglite', 'ioredis', 'prom-client']));
  });
});
