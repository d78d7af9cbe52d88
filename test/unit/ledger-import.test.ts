import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { bindMapping, resolveMapping } from '../../src/ledger/fields.js';
import { parseRoles, parseTime } from '../../src/ledger/row.js';
import { advanceMark, lowerMark, type Mark, type Sink } from '../../src/ledger/source.js';
import { fileSource } from '../../src/ledger/sources/file.js';
import type { ImportRow } from '../../src/ledger/row.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'jwtir-ledger-unit-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

/** A sink that keeps what a source reports, as the import's stage would see it. */
function collector() {
  const rows: ImportRow[] = [];
  const problems: string[] = [];
  const sink: Sink = {
    rows: async (r) => void rows.push(...r),
    skipKnown: async () => new Set(),
    problem: (where, message) => void problems.push(`${where}: ${message}`),
    progress: () => {},
  };
  return { sink, rows, problems };
}

describe('times, roles and the mapping', () => {
  it('reads times as Dates, ISO 8601 (UTC without a zone), epoch seconds below 1e11 and milliseconds above', () => {
    const ms = Date.UTC(2025, 0, 2, 3, 4, 5);
    expect(parseTime(new Date(ms))).toBe(ms);
    expect(parseTime(ms / 1000)).toBe(ms);
    expect(parseTime(ms)).toBe(ms);
    expect(parseTime(String(ms / 1000))).toBe(ms);
    expect(parseTime('2025-01-02T03:04:05Z')).toBe(ms);
    expect(parseTime('2025-01-02 03:04:05')).toBe(ms);
    expect(parseTime('2025-01-02 05:04:05.000000+02')).toBe(ms);
    expect(parseTime('2025-01-02T05:04:05+0200')).toBe(ms);
    expect(parseTime('yesterday')).toBe('"yesterday" is not a time (ISO 8601, or epoch seconds or milliseconds)');
    expect(parseTime(null)).toBe('is missing');
    expect(parseTime(-5)).toMatch(/is not a time/);
  });

  it('reads roles from lists, comma or space separated text and Postgres array literals', () => {
    expect(parseRoles(['admin', 'staff', 'admin'])).toEqual(['admin', 'staff']);
    expect(parseRoles('admin, staff beta')).toEqual(['admin', 'staff', 'beta']);
    expect(parseRoles('{admin,"staff"}')).toEqual(['admin', 'staff']);
    expect(parseRoles(null)).toEqual([]);
    expect(parseRoles(42)).toMatch(/roles must be a list/);
  });

  it('maps fields to same-named columns unless told; express-session defaults for Redis; every mistake at once', () => {
    expect(resolveMapping('sql', {}).mapping).toMatchObject({ sid: 'sid', sub: 'sub', issued_at: 'issued_at', roles: 'roles' });
    expect(resolveMapping('redis', { map: ['sub=userId'] }).mapping).toMatchObject({ sid: '@key', sub: 'userId', issued_at: '@cookie', expires_at: 'cookie.expires' });
    const m = resolveMapping('csv', { map: ['sid=id,sub=user_id', 'device='] });
    expect(m.mapping).toMatchObject({ sid: 'id', sub: 'user_id', device: null });
    expect([...m.explicit].sort()).toEqual(['device', 'sid', 'sub']);
    expect(() => resolveMapping('sql', { map: ['sid', 'user=x', 'sid=@key', 'sub='] })).toThrow(
      /4 problems:\n {2}--map "sid" is not field=column\n {2}--map: unknown field "user"\n {2}sid=@key: @key is for redis sources, not sql\n {2}sub is required and cannot be left unmapped/,
    );
  });

  it('a missing column names what the source has and the --map to pass; optional defaults are dropped quietly', () => {
    const columns = ['id', 'user_id', 'created_at', 'expires_at'];
    const resolved = resolveMapping('sql', {});
    expect(() => bindMapping(resolved, (c) => columns.includes(c), { columns, what: 'the query returns', noun: 'column' })).toThrow(
      'the query returns no column "sid" for the session id (sid), no column "sub" for the subject (user) (sub), no column "issued_at" for the issued-at time (issued_at); its columns: id, user_id, created_at, expires_at',
    );
    const ok = bindMapping(resolveMapping('sql', { map: ['sid=id,sub=user_id,issued_at=created_at'] }), (c) => columns.includes(c), { columns, what: 'the query returns', noun: 'column' });
    expect(ok).toEqual({ sid: 'id', sub: 'user_id', issued_at: 'created_at', expires_at: 'expires_at' });
  });
});

describe('marks', () => {
  const at = (iso: string): Mark => ({ at: iso, value: iso });
  it('move forward with each import, and back to where an undone import started', () => {
    const m1 = at('2025-01-01T00:00:00Z');
    const m2 = at('2025-01-02T00:00:00Z');
    expect(advanceMark(null, null, m1)).toBe(m1);
    expect(advanceMark(m1, m1, m2)).toBe(m2);
    // A read that started beyond the current mark (an undo moved it back meanwhile) leaves a gap: no move.
    expect(advanceMark(m1, m2, at('2025-01-03T00:00:00Z'))).toBe(m1);
    expect(lowerMark(m2, m1)).toBe(m1);
    expect(lowerMark(m2, null)).toBe(null);
  });
});

describe('file sources', () => {
  it('NDJSON: every bad line is named; the mark stops before an unterminated last line; an append resumes at the mark', async () => {
    const p = file('s.ndjson', '{"sid":"a","sub":"u1","issued_at":1700000000,"expires_at":1700003600}\n\n{"sid":\n{"sid":"b","sub":"u2","issued_at":1700000000,"expires_at":"soon"}\n{"sid":"c","sub":"u3","issued_at":1700000000,"expires_at":1700003600}');
    const src = fileSource(p, 'ndjson');
    const mapping = resolveMapping('ndjson', {});
    const first = collector();
    const out = await src.read(mapping, null, first.sink);
    expect(first.rows.map((r) => r.sid)).toEqual(['a', 'c']);
    expect(first.problems).toEqual([expect.stringMatching(/^line 3: not valid JSON/), 'line 4: expires_at (expires_at) "soon" is not a time (ISO 8601, or epoch seconds or milliseconds)']);
    expect(out.mark).toMatchObject({ lines: 4 });
    appendFileSync(p, '\n{"sid":"d","sub":"u4","issued_at":1700000000,"expires_at":1700003600}\n');
    const again = collector();
    const next = await src.read(mapping, out.mark, again.sink);
    // The unterminated line "c" is read again (it was left after the mark), then the appended one.
    expect(again.rows.map((r) => r.sid)).toEqual(['c', 'd']);
    expect(again.problems).toEqual([]);
    expect(next).toMatchObject({ restarted: false, mark: { lines: 6 } });
    // A file whose bytes before the mark changed is read whole again.
    writeFileSync(p, '{"sid":"z","sub":"u9","issued_at":1700000000,"expires_at":1700003600}\n'.repeat(8));
    const changed = collector();
    expect((await src.read(mapping, next.mark, changed.sink)).restarted).toBe(true);
    expect(changed.rows).toHaveLength(8);
  });

  it('CSV: quoted fields across lines, bad records named by line, and a resume that keeps the header', async () => {
    const p = file('s.csv', 'id,user,iat,exp,roles\r\nA,u1,1700000000,1700003600,"admin,staff"\r\nB,"multi\nline",1700000000,1700003600,x\r\nC,u3,1700000000\r\nD,u4,1700000000,1700003600,\r\n');
    const src = fileSource(p, 'csv');
    const mapping = resolveMapping('csv', { map: ['sid=id,sub=user,issued_at=iat,expires_at=exp'] });
    const first = collector();
    const out = await src.read(mapping, null, first.sink);
    expect(first.rows.map((r) => [r.sid, r.roles])).toEqual([['A', ['admin', 'staff']], ['D', []]]);
    expect(first.problems).toEqual(['line 4: sub (user) contains control characters', 'line 5: has 3 fields, the header has 5']);
    expect(out.mark).toMatchObject({ lines: 6, header: ['id', 'user', 'iat', 'exp', 'roles'] });
    appendFileSync(p, 'E,u5,1700000000,1700003600,beta\r\n');
    const again = collector();
    await src.read(mapping, out.mark, again.sink);
    expect(again.rows.map((r) => [r.sid, r.sub, r.roles])).toEqual([['E', 'u5', ['beta']]]);
  });
});
