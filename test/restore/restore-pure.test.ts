/** The pure parts of restore: drift planning, batch renumbering, flag and name parsing, key dates. */
import { describe, expect, it } from 'vitest';
import { newTargetColumns, planSchemaDrift, type TargetColumn } from '../../src/restore/schema-drift.js';
import { ColumnMapReport, columnMapChains, columnMapEntries, columnMapFor } from '../../src/restore/column-map.js';
import { buildBatchInput, rawLinesPayload, lineStarts, type BatchSegment, firstRepeatedRow, firstDamagedLine } from '../../src/restore/load-batch.js';
import { parseQualifiedName, parseRestoreFlags } from '../../src/cli/restore-command.js';
import { dayOfKey, inRange, parseDay } from '../../src/restore/select-objects.js';
import { insertSql, parseLinesSql } from '../../src/restore/restore-sql.js';
import type { BatchMetadata } from '../../src/core/batch-metadata.js';
import { AuditlogError } from '../../src/core/errors.js';

const col = (name: string, type: string, extra: Partial<TargetColumn> = {}): TargetColumn => ({
  name,
  type,
  baseType: type.replace(/\(.*\)/, ''),
  generated: false,
  identity: null,
  hasDefault: false,
  notNull: false,
  ...extra,
});

describe('planSchemaDrift', () => {
  const archived = [
    { name: 'id', type: 'bigint' },
    { name: 'old', type: 'text' },
    { name: 'gone', type: 'text' },
    { name: 'n', type: 'integer' },
  ];
  it('finds every kind at once and loads only what has a place', () => {
    const plan = planSchemaDrift(
      archived,
      [col('id', 'bigint', { identity: 'always', notNull: true }), col('new', 'text'), col('n', 'numeric(5,1)'), col('extra', 'text', { hasDefault: true }), col('g', 'integer', { generated: true })],
      { old: 'new' },
      { strict: false, label: 't' },
    );
    expect(plan.columns.map((c) => `${c.archived}>${c.target}`)).toEqual(['id>id', 'old>new', 'n>n']);
    expect(plan.renamed).toEqual([{ from: 'old', to: 'new' }]);
    expect(plan.dropped).toEqual([{ name: 'gone', type: 'text' }]);
    expect(plan.typeChanges).toEqual([{ archived: 'n', target: 'n', from: 'integer', to: 'numeric(5,1)' }]);
    expect(plan.added).toEqual([{ name: 'extra', type: 'text', hasDefault: true }]);
    expect(plan.overridingSystemValue).toBe(true);
  });
  it('refuses under strict schema, for a NOT NULL column without default, and for a map to nowhere', () => {
    expect(() => planSchemaDrift(archived, [col('id', 'bigint'), col('old', 'text'), col('n', 'integer')], {}, { strict: true, label: 't' })).toThrow(/"gone"/);
    expect(() => planSchemaDrift(archived, [col('id', 'bigint'), col('must', 'text', { notNull: true })], {}, { strict: false, label: 't' })).toThrow(/"must" of t is NOT NULL/);
    expect(() => planSchemaDrift(archived, [col('id', 'bigint')], { old: 'nowhere' }, { strict: false, label: 't' })).toThrow(AuditlogError);
  });
});

describe('column_map per object', () => {
  const object = (names: string[], created_at = '2026-01-01T00:00:00.000Z') => ({ columns: names.map((name) => ({ name, type: 'text' })), created_at });
  it('a plain entry applies only to objects without the new name: a re-added old name is taken by name (found by probing)', () => {
    const entries = columnMapEntries({ note: 'note2' });
    expect(columnMapFor(entries, object(['id', 'note']))).toEqual({ map: { note: 'note2' }, skipped: [] });
    expect(columnMapFor(entries, object(['id', 'note2', 'note']))).toEqual({ map: {}, skipped: [{ entry: entries[0], reason: 'has-target' }] });
    expect(columnMapFor(entries, object(['id', 'note2']))).toEqual({ map: {}, skipped: [] });
  });
  it('a bounded entry applies by archive time alone', () => {
    const entries = columnMapEntries({ s: { to: 'note', archived_before: '2026-06-01T00:00:00+02:00' }, note: { to: 's', archived_before: '2026-06-01T00:00:00+02:00' } });
    expect(columnMapFor(entries, object(['s', 'note'], '2026-05-31T21:59:59.999Z')).map).toEqual({ s: 'note', note: 's' });
    expect(columnMapFor(entries, object(['s', 'note'], '2026-05-31T22:00:00.000Z')).map).toEqual({});
    // No valid archive time: not decided as "after" (its column would then load by name), refused.
    for (const bad of ['', 'yesterday']) expect(() => columnMapFor(entries, object(['s', 'note'], bad))).toThrow(/no valid created_at/);
  });
  it('chains and swaps without archived_before are named; identity entries are no-ops', () => {
    expect(columnMapChains({ s: 'note', note: 's' }).map((c) => c.from)).toEqual(['s', 'note']);
    expect(columnMapChains({ a: 'b', b: 'c' }).map((c) => c.from)).toEqual(['a', 'b']);
    expect(columnMapChains({ a: { to: 'b', archived_before: '2026-01-01T00:00:00Z' }, b: 'c' }).map((c) => c.from)).toEqual(['b']);
    expect(columnMapChains({ a: 'c', b: 'c', x: 'x' })).toEqual([]);
  });
  it('the report names the objects each entry was applied to or not, and refuses an entry whose eras are out of order', () => {
    const entries = columnMapEntries({ a: 'b' });
    const report = (objects: [string, string[], string][]): ColumnMapReport => {
      const r = new ColumnMapReport();
      for (const [key, names, at] of objects) r.add(entries, { key, created_at: at }, columnMapFor(entries, object(names, at)));
      return r;
    };
    // Rename, then "a" added again: the objects with both names come last.
    const readded = report([['k1', ['a'], '2026-01-01T00:00:00.000Z'], ['k2', ['a'], '2026-01-02T00:00:00.000Z'], ['k3', ['b', 'a'], '2026-01-03T00:00:00.000Z']]);
    expect(() => readded.checkEras()).not.toThrow();
    expect(readded.lines()).toEqual([
      'renamed column "a" → "b" (column_map) in 2 objects archived 2026-01-01T00:00:00.000Z (k1) to 2026-01-02T00:00:00.000Z (k2)',
      'column_map "a" → "b" not applied to 1 object (k3, archived 2026-01-03T00:00:00.000Z): already has a column "b" (archived after the rename), so "a" is taken by name',
    ]);
    // "b" dropped, later "a" renamed to "b": the objects with both names come first.
    const reused = report([['k1', ['a', 'b'], '2026-01-01T00:00:00.000Z'], ['k2', ['a'], '2026-01-02T00:00:00.000Z']]);
    expect(() => reused.checkEras()).toThrow(/k1 \(archived 2026-01-01T00:00:00.000Z\) has both columns, yet k2 .* archived_before/);
  });
  it('two archived columns mapped into one target column are refused in the plan, before loading', () => {
    expect(() => planSchemaDrift([{ name: 'a', type: 'text' }, { name: 'b', type: 'text' }], [col('c', 'text')], { a: 'c', b: 'c' }, { strict: false, label: 't' })).toThrow(/"a" and "b" would both load into column "c"/);
  });
  it('a new target table is refused when some object lacks a column of the newest key', () => {
    const old = { columns: [{ name: 'id', type: 'bigint' }], primary_key_columns: ['id'] };
    const now = { columns: [{ name: 'id', type: 'bigint' }, { name: 'uid', type: 'integer' }], primary_key_columns: ['uid'] };
    expect(() => newTargetColumns([old, now], 'public.n', ['k1', 'k2'])).toThrow(/1 of the 2 selected objects \(e\.g\. k1\) lack column "uid"/);
    expect(newTargetColumns([now, old], 'public.n').key).toEqual(['id']);
  });
});

describe('buildBatchInput', () => {
  const object = (key: string, lines: string[], jsonNull: number[]): BatchSegment['object'] => {
    const raw = Buffer.from(lines.map((l) => l + '\n').join(''));
    return {
      key,
      raw,
      meta: { primary_keys: lines.map((_, i) => [`${key}${i}`]), json_null_values: jsonNull.map((line) => ({ line, columns: ['j'] })), json_text_values: [] } as unknown as BatchMetadata,
    };
  };
  it('numbers the lines of several segments from 0 and moves the manifest and json rules with them', () => {
    const a = object('a', ['{"x":1}', '{"x":2}', '{"x":3}'], [2]);
    const b = object('b', ['{"y":1}', '{"y":2}'], [0, 1]);
    const input = buildBatchInput([
      { object: a, starts: lineStarts(a.raw), from: 1, to: 3, last: true },
      { object: b, starts: lineStarts(b.raw), from: 0, to: 1, last: false },
    ]);
    expect(rawLinesPayload(input.lines).toString()).toBe('0\x02{"x":2}\n1\x02{"x":3}\n2\x02{"y":1}\n');
    expect(input.manifest).toEqual([['a1'], ['a2'], ['b0']]);
    expect(input.jsonNull).toEqual([{ line: 1, columns: ['j'] }, { line: 2, columns: ['j'] }]);
    expect(input.rows).toBe(3);
  });
});

describe('restore SQL', () => {
  it('quotes every identifier and binds json rule values', () => {
    const parse = parseLinesSql({ columns: [{ name: 'j"; --', type: 'json' }], json_null_values: [{ line: 3, columns: ['j"; --'] }], json_text_values: [{ line: 4, columns: ['j"; --'] }] }, 'pg_temp.r', 'pg_temp.p');
    expect(parse.sql).toContain('r."j""; --"');
    expect(parse.values).toEqual([[3], [4], 'j"; --']);
    const sql = insertSql(
      { columns: [{ archived: 'a', archivedType: 'text', target: 'b"', targetType: 'varchar(3)', targetBaseType: 'character varying' }], added: [], dropped: [], typeChanges: [], renamed: [], generated: [], overridingSystemValue: false },
      { schema: 's"', table: 't', key: ['b"'], partitioned: false, columns: [{ name: 'b"', generated: false, identity: null }] },
      'pg_temp.p',
      'upsert',
    );
    expect(sql).toContain('INSERT INTO "s"""."t" AS auditlog_target ("b""") SELECT p."a"::character varying FROM (SELECT DISTINCT ON (p."a"::character varying) p.* FROM pg_temp.p p ORDER BY p."a"::character varying, p."auditlog_line_no" DESC) p ON CONFLICT ("b""") DO UPDATE SET "b""" = EXCLUDED."b"""');
  });
});

describe('restore flags and names', () => {
  it('parses SCHEMA.NAME with quoted parts', () => {
    expect(parseQualifiedName('forensics.audit')).toEqual({ schema: 'forensics', table: 'audit' });
    expect(parseQualifiedName('audit')).toEqual({ schema: 'public', table: 'audit' });
    expect(parseQualifiedName('"my.schema"."Odd ""name"""')).toEqual({ schema: 'my.schema', table: 'Odd "name"' });
    expect(() => parseQualifiedName('a.')).toThrow(/--target-table/);
    expect(() => parseQualifiedName('a.b.c')).toThrow(/--target-table/);
    expect(() => parseQualifiedName('"open')).toThrow(/--target-table/);
  });
  it('validates days and ranges', () => {
    expect(parseDay('2024-02-29', '--from')).toBe('2024-02-29');
    expect(() => parseDay('2023-02-29', '--from')).toThrow(/YYYY-MM-DD/);
    expect(() => parseRestoreFlags({ config: 'c', table: 't', conflict: 'skip', onCorrupt: 'fail', from: '2024-02-02', to: '2024-02-01' })).toThrow(/after/);
    expect(parseRestoreFlags({ config: 'c', table: 't', conflict: 'upsert', onCorrupt: 'skip', from: '2024-02-01', batchSize: '500', jobs: '3' })).toMatchObject({
      conflict: 'upsert',
      onCorrupt: 'skip',
      range: { from: '2024-02-01' },
      batchSize: 500,
      jobs: 3,
    });
  });
  it('places keys in days; rows without a day belong to no range', () => {
    const key = 'app/public.t/year=2024/month=01/day=15/000000000000-abc.jsonl.gz';
    expect(dayOfKey(key)).toBe('2024-01-15');
    expect(inRange(key, { from: '2024-01-15' })).toBe(true);
    expect(inRange(key, { to: '2024-01-14' })).toBe(false);
    expect(inRange('app/public.t/year=0000/month=00/day=00/x.jsonl.gz', { from: '0001-01-01' })).toBe(false);
    expect(inRange('app/public.t/year=0000/month=00/day=00/x.jsonl.gz', {})).toBe(true);
  });
});

describe('firstRepeatedRow', () => {
  it('finds the first line whose row (whole key and xmin) an earlier line holds, for single and composite keys', () => {
    expect(firstRepeatedRow([['1'], ['2'], ['3']], ['7', '7', '7'])).toBeUndefined();
    expect(firstRepeatedRow([['3'], ['1'], ['2'], ['1']], ['5', '6', '7', '6'])).toEqual({ first: 1, second: 3 });
    expect(firstRepeatedRow([['a'], ['b'], ['a']], ['1', '1', '1'])).toEqual({ first: 0, second: 2 });
    // Composite: the same first column is no duplicate; the same whole key is.
    expect(firstRepeatedRow([['1', 'x'], ['1', 'y'], ['2', 'x']], ['1', '1', '1'])).toBeUndefined();
    expect(firstRepeatedRow([['1', 'x'], ['2', 'x'], ['1', 'x']], ['4', '4', '4'])).toEqual({ first: 0, second: 2 });
    // Two versions of one key (deleted and inserted again during a run): not a copy (found in review).
    expect(firstRepeatedRow([['3'], ['1'], ['3']], ['10', '11', '12'])).toBeUndefined();
    expect(firstRepeatedRow([], [])).toBeUndefined();
  });
});

describe('firstDamagedLine', () => {
  const lines = (...texts: string[]) => {
    const raw = Buffer.from(texts.map((t) => `${t}\n`).join(''), 'utf8');
    let start = 0;
    return texts.map((t) => {
      const end = start + Buffer.byteLength(t);
      const line = { raw, start, end };
      start = end + 1;
      return line;
    });
  };
  it('finds a line that is not a JSON object, one with a CRLF ending or a BOM; none in good lines', () => {
    expect(firstDamagedLine(lines('{"a":1}', '{"b":"é"}'))).toBeUndefined();
    expect(firstDamagedLine(lines('{"a":1}', 'not json'))).toBe(1);
    expect(firstDamagedLine(lines('{"a":1}\r', '{"a":2}'))).toBe(0);
    expect(firstDamagedLine(lines('{"a":1}', '\uFEFF{"a":2}'))).toBe(1);
    expect(firstDamagedLine(lines('[1]'))).toBe(0);
    expect(firstDamagedLine(lines('{}', 'null'))).toBe(1);
  });
});
