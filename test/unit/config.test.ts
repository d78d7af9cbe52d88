import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parseDuration } from '../../src/config/duration.js';
import { maskUrl } from '../../src/config/mask.js';
import { resolveSettings } from '../../src/config/settings.js';
import { redact } from '../../src/state/redact.js';
import { render, UnresolvedReference } from '../../src/runbook/template.js';

describe('durations', () => {
  it('accepts <number><unit> and refuses anything ambiguous or negative', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('0s')).toBe(0);
    for (const bad of ['10', '-5m', '10 minutes', 'abc', '', '5mm', '1e3s']) {
      expect(() => parseDuration(bad)).toThrow(expect.objectContaining({ code: 'ERR_DURATION_INVALID' }));
    }
  });
});

describe('settings precedence: flag > environment > config file > default', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-config-'));
  writeFileSync(path.join(dir, 'jwtir.config.json'), JSON.stringify({ databaseUrl: 'postgres://file@h/db', schema: 'fromfile', redisPrefix: 'f:' }));

  it('takes each value from the strongest source that has it', () => {
    expect(resolveSettings({}, {}, dir)).toMatchObject({ databaseUrl: 'postgres://file@h/db', schema: 'fromfile', redisPrefix: 'f:', redisUrl: undefined });
    expect(resolveSettings({}, { DATABASE_URL: 'postgres://env@h/db', JWTIR_SCHEMA: 'fromenv' }, dir)).toMatchObject({ databaseUrl: 'postgres://env@h/db', schema: 'fromenv' });
    expect(resolveSettings({ databaseUrl: 'postgres://flag@h/db', schema: 'fromflag' }, { DATABASE_URL: 'postgres://env@h/db', JWTIR_SCHEMA: 'fromenv' }, dir)).toMatchObject({
      databaseUrl: 'postgres://flag@h/db',
      schema: 'fromflag',
    });
    expect(resolveSettings({}, {}, os.tmpdir())).toMatchObject({ databaseUrl: undefined, schema: 'jwtir', stateDir: path.join(os.tmpdir(), '.jwtir') });
  });

  it('refuses passwords in argv, bad schema names and unknown config keys', () => {
    expect(() => resolveSettings({ databaseUrl: 'postgres://u:pw@h/db' }, {}, dir)).toThrow(/contains a password/);
    expect(() => resolveSettings({ schema: 'x; DROP TABLE keys' }, {}, dir)).toThrow(/not a valid Postgres schema name/);
    const bad = mkdtempSync(path.join(os.tmpdir(), 'jwtir-config-'));
    writeFileSync(path.join(bad, 'jwtir.config.json'), JSON.stringify({ databaseURL: 'x', schema: 5 }));
    expect(() => resolveSettings({}, {}, bad)).toThrow(/2 problem\(s\)/);
  });
});

describe('secrets stay secret', () => {
  it('masks URL passwords and redacts secret-named fields, including private JWK members', () => {
    expect(maskUrl('postgres://app:hunter2@db:5432/x')).toBe('postgres://app:***@db:5432/x');
    expect(redact({ sealedSecret: 'v1.abc', url: 'redis://:pw@r:6379', jwk: { kty: 'EC', x: 'pub', d: 'priv' }, weak: true, kid: 'k' })).toEqual({
      sealedSecret: '[redacted]',
      url: 'redis://:***@r:6379',
      jwk: { kty: 'EC', x: 'pub', d: '[redacted]' },
      weak: true,
      kid: 'k',
    });
  });
});

describe('runbook templates', () => {
  it('keeps types for whole expressions, interpolates otherwise, and refuses missing references', () => {
    const scope = { params: { grace: 60000, roles: ['admin', 'staff'] }, steps: { generate: { outputs: { kid: 'k1' } } } };
    expect(render('${{ params.grace }}', scope)).toBe(60000);
    expect(render({ r: '${{ params.roles }}' }, scope)).toEqual({ r: ['admin', 'staff'] });
    expect(render('kid ${{ steps.generate.outputs.kid }} for ${{ params.roles }}', scope)).toBe('kid k1 for admin,staff');
    expect(() => render('${{ steps.publish.outputs.kid }}', scope)).toThrow(UnresolvedReference);
    expect(() => render('${{ params.__proto__ }}', scope)).toThrow(UnresolvedReference);
  });
});
