/** The pure parts of validate: partition selection, key classification, value comparison, duplicates. */
import { describe, expect, it, vi } from 'vitest';
import { gzipSync } from 'node:zlib';
import { AuditlogError } from '../../src/core/errors.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import { streamObjectLines } from '../../src/validate/stream-object-lines.js';
import { checkMetadata, type CheckedMetadata } from '../../src/validate/check-metadata.js';
import { DataLineChecker } from '../../src/validate/check-data-lines.js';
import { classifyKey } from '../../src/validate/classify-key.js';
import { DuplicateKeyTracker } from '../../src/validate/duplicate-keys.js';
import { readTopLevelFields } from '../../src/validate/json-line-fields.js';
import { compareTimestamps, jsonTokenToText, normalizeKeyText, parseTimestampText, partitionDayOf } from '../../src/core/pg-text.js';
import { parseDayRange, partitionPrefixes } from '../../src/validate/select-partitions.js';

describe('partitionPrefixes', () => {
  it('covers a range with whole years, whole months and single days, nothing outside it', () => {
    expect(partitionPrefixes({ from: '2024-01-30', to: '2024-03-02' })).toEqual([
      'year=2024/month=01/day=30/',
      'year=2024/month=01/day=31/',
      'year=2024/month=02/',
      'year=2024/month=03/day=01/',
      'year=2024/month=03/day=02/',
    ]);
    expect(partitionPrefixes({ from: '2023-12-31', to: '2025-01-01' })).toEqual(['year=2023/month=12/day=31/', 'year=2024/', 'year=2025/month=01/day=01/']);
    expect(partitionPrefixes({ from: '2024-02-01', to: '2024-02-29' })).toEqual(['year=2024/month=02/']);
    expect(partitionPrefixes({ from: '2023-02-01', to: '2023-02-28' })).toEqual(['year=2023/month=02/']);
    expect(partitionPrefixes({ from: '2024-05-07', to: '2024-05-07' })).toEqual(['year=2024/month=05/day=07/']);
  });

  it('refuses malformed days, impossible dates and --from after --to as usage errors', () => {
    expect(() => parseDayRange('2024-02-30', undefined)).toThrow(/--from expects a calendar day/);
    // Month 13 or 00 made `new Date(...)` invalid and toISOString() threw a RangeError (exit 1, stack trace).
    expect(() => parseDayRange('2026-13-01', undefined)).toThrow(new AuditlogError('USAGE', '--from expects a calendar day as YYYY-MM-DD (UTC), got "2026-13-01"'));
    expect(() => parseDayRange(undefined, '2026-00-10')).toThrow(/^--to expects a calendar day as YYYY-MM-DD \(UTC\), got "2026-00-10"$/);
    expect(() => parseDayRange(undefined, '24-01-01')).toThrow(/--to expects/);
    expect(() => parseDayRange('2024-03-02', '2024-03-01')).toThrow(/--from 2024-03-02 is after --to 2024-03-01/);
    expect(parseDayRange('2024-03-01', undefined)).toEqual({ from: '2024-03-01', to: '9999-12-31' });
    expect(parseDayRange(undefined, undefined)).toBeUndefined();
  });
});

describe('classifyKey', () => {
  it('pairs data objects and sidecars by name and calls everything else a stray', () => {
    expect(classifyKey('year=2024/month=01/day=15/000000-ab.jsonl.gz')).toEqual({ kind: 'data', day: '2024-01-15', base: 'year=2024/month=01/day=15/000000-ab' });
    expect(classifyKey('year=2024/month=01/day=15/000000-ab.metadata.json')).toEqual({ kind: 'metadata', day: '2024-01-15', base: 'year=2024/month=01/day=15/000000-ab' });
    expect(classifyKey('year=0000/month=00/day=00/x.jsonl.gz')).toMatchObject({ kind: 'data', day: '0000-00-00' });
    for (const stray of ['README', 'year=2024/month=01/day=15/notes.txt', 'year=2024/month=02/day=30/x.jsonl.gz', 'year=2024/month=01/x.jsonl.gz', 'year=2024/month=01/day=15/sub/x.jsonl.gz', 'year=2024/month=01/day=15/.jsonl.gz', 'year=2024/month=01/day=15/a\\b.jsonl.gz', 'year=2024/month=01/day=15/a\0b.metadata.json']) {
      expect(classifyKey(stray), stray).toEqual({ kind: 'stray' });
    }
  });
});

describe('comparing data values with PostgreSQL text', () => {
  it('keeps big integers exact and reads only top-level members', () => {
    const line = '{"id":9223372036854775807,"body":{"id":1,"s":"a\\"}"},"k":"x\\u0041","happened_at":"2024-01-15T03:04:05.123456+00:00","flag":true}';
    const f = readTopLevelFields(line, new Set(['id', 'k', 'happened_at', 'flag']));
    expect(f.get('id')).toBe('9223372036854775807');
    expect(jsonTokenToText(f.get('k')!)).toBe('xA');
    // As the manifest writes a boolean key: the ::text cast's spelling, not the output function's t/f.
    expect(jsonTokenToText(f.get('flag')!)).toBe('true');
    expect(f.has('body')).toBe(false);
    expect(normalizeKeyText(jsonTokenToText(f.get('happened_at')!)!)).toBe(normalizeKeyText('2024-01-15 03:04:05.123456+00'));
    expect(normalizeKeyText('2024-01-15 03:04:05+05:30')).toBe('2024-01-15 03:04:05+05:30');
  });

  it('orders timestamps by value and places special values in the 0000-00-00 partition', () => {
    const a = parseTimestampText('2024-01-15T00:00:00.1+00:00')!;
    const b = parseTimestampText('2024-01-15 00:00:00.09+00')!;
    expect(compareTimestamps(b, a)).toBe(-1);
    expect(compareTimestamps(a, parseTimestampText('2024-01-15 00:00:00.100+00')!)).toBe(0);
    expect(partitionDayOf(a)).toBe('2024-01-15');
    expect(partitionDayOf(parseTimestampText('infinity')!)).toBe('0000-00-00');
    expect(partitionDayOf(parseTimestampText('0044-03-15 BC')!)).toBe('0000-00-00');
    expect(compareTimestamps(parseTimestampText('-infinity')!, a)).toBe(-1);
    expect(parseTimestampText('yesterday')).toBeUndefined();
  });
});

describe('DuplicateKeyTracker', () => {
  it('flags the same row version in two objects on the later object, whatever order they arrive in', () => {
    const t = new DuplicateKeyTracker(['2024-01-01', '2024-01-01', '2024-01-01']);
    t.add(2, [['1'], ['2']], ['100', '100']);
    t.add(0, [['1'], ['2'], ['3']], ['100', '100', '100']);
    // Key 3 reused by a new row (another xmin): not a duplicate.
    t.add(1, [['3']], ['200']);
    const findings = t.findings((i) => `obj${i}`);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ code: 'DUPLICATE_KEY', key: 'obj2', count: 2 });
    expect(findings[0]!.message).toContain('obj0');
  });

  it('quotes the example key, so that a value with a comma, an empty one or a control character shows as it is', () => {
    const t = new DuplicateKeyTracker(['2024-01-01', '2024-01-01']);
    t.add(0, [['a, b', '', 'tab\there']], ['100']);
    t.add(1, [['a, b', '', 'tab\there']], ['100']);
    expect(t.findings((i) => `obj${i}`)[0]!.message).toContain('(same key and version, e.g. ("a, b", "", "tab\\there"))');
  });

  it("holds a day's rows only until every object of that day is finished, and still finds duplicates within a day checked out of order", () => {
    const t = new DuplicateKeyTracker(['2024-01-01', '2024-01-01', '2024-01-02', '2024-01-02']);
    t.add(2, [['5']], ['7']);
    t.finish(2);
    t.add(0, [['1']], ['7']);
    t.finish(0);
    expect(t.daysHeld).toBe(2);
    // An object without a readable manifest is finished without being added: its day is released all the same.
    t.finish(1);
    expect(t.daysHeld).toBe(1);
    t.add(3, [['5'], ['6']], ['7', '7']);
    t.finish(3);
    expect(t.daysHeld).toBe(0);
    const findings = t.findings((i) => `obj${i}`);
    expect(findings).toEqual([expect.objectContaining({ code: 'DUPLICATE_KEY', key: 'obj3', count: 1 })]);
  });
});

describe('streamObjectLines', () => {
  it('hands out every line whole across decompression chunks, multi-byte characters included, and hashes every byte', async () => {
    const lines = Array.from({ length: 4000 }, (_, i) => JSON.stringify({ id: i, note: `é€😀 ${'x'.repeat(i % 300)}` }));
    const raw = Buffer.from(lines.join('\n') + '\n');
    expect(raw.length).toBeGreaterThan(600 * 1024);
    const seen: string[] = [];
    const result = await streamObjectLines(gzipSync(raw), (l) => seen.push(l));
    expect(seen).toEqual(lines);
    expect(result).toEqual({ lines: 4000, sha256Uncompressed: sha256Hex(raw) });
    const unterminated: string[] = [];
    expect((await streamObjectLines(gzipSync(Buffer.from('{"a":1}\n{"a":2}')), (l) => unterminated.push(l))).lines).toBe(2);
    expect(unterminated).toEqual(['{"a":1}', '{"a":2}']);
    await expect(streamObjectLines(Buffer.from('not gzip'), () => undefined)).rejects.toThrow();
  });

  it('joins a line spread over many chunks once, not at every chunk (a 400 MB line took minutes)', async () => {
    const long = JSON.stringify({ id: 1, blob: 'ab'.repeat(4 * 1024 * 1024) });
    const raw = Buffer.from(`{"id":0}\n${long}\n{"id":2}\n${long}`);
    const seen: string[] = [];
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      const result = await streamObjectLines(gzipSync(raw, { level: 1 }), (l) => seen.push(l));
      expect(result).toEqual({ lines: 4, sha256Uncompressed: sha256Hex(raw) });
      // Each 8 MB line spans ~32 decompression chunks: at most one join per line (65 before).
      expect(concat.mock.calls.length).toBeLessThanOrEqual(4);
    } finally {
      concat.mockRestore();
    }
    expect(seen).toEqual(['{"id":0}', long, '{"id":2}', long]);
  });
});

describe('checkMetadata', () => {
  const table = { database: 'app', schema: 'public', table: 'events' };
  const valid = {
    format: 'auditlog-archive',
    format_version: 1,
    database: 'app',
    schema: 'public',
    table: 'events',
    primary_key_columns: ['id'],
    timestamp_column: 'happened_at',
    record_count: 2,
    min_timestamp: '2024-01-15 00:00:00+00',
    max_timestamp: '2024-01-15 01:00:00+00',
    compression: 'gzip',
    uncompressed_bytes: 10,
    compressed_bytes: 30,
    sha256_uncompressed: 'a'.repeat(64),
    sha256_compressed: 'b'.repeat(64),
    primary_keys: [['1'], ['2']],
    xmins: ['7', '7'],
    data_object: 'k.jsonl.gz',
  };
  const check = (doc: unknown, size: number | undefined = 30) => checkMetadata(Buffer.from(JSON.stringify(doc)), 'k.metadata.json', 'k.jsonl.gz', table, size);
  const codes = (doc: unknown, size?: number) => check(doc, size).findings.map((f) => [f.code, f.key]);

  it('accepts a sidecar of the documented shape and hands back its manifest', () => {
    const r = check(valid);
    expect(r.findings).toEqual([]);
    expect(r.meta?.primary_keys).toEqual([['1'], ['2']]);
  });

  it('names what is wrong: shape, table, timestamps, manifest width and versions', () => {
    expect(codes({ ...valid, min_timestamp: 'soon' })).toEqual([['METADATA_INVALID', 'k.metadata.json']]);
    expect(check({ ...valid, min_timestamp: 'soon' }).findings[0]!.message).toContain('min_timestamp "soon" is not a timestamp');
    expect(codes({ ...valid, table: 'other' })).toEqual([['METADATA_INVALID', 'k.metadata.json']]);
    expect(codes({ ...valid, xmins: ['7'] })).toEqual([['METADATA_INVALID', 'k.metadata.json']]);
    expect(codes({ ...valid, primary_keys: [['1', 'x'], ['2']] })).toEqual([['METADATA_INVALID', 'k.metadata.json']]);
    expect(codes({ ...valid, sha256_compressed: 'XYZ' })).toEqual([['METADATA_INVALID', 'k.metadata.json']]);
    expect(codes([valid])).toEqual([['METADATA_INVALID', 'k.metadata.json']]);
    expect(codes({ ...valid, format_version: 2 })).toEqual([['UNKNOWN_FORMAT_VERSION', 'k.metadata.json']]);
    expect(check({ ...valid, format_version: 2 }).meta).toBeUndefined();
  });

  it('reports a data_object that is not the name of the object beside it, on the sidecar, and still checks the rest (found by probing: never checked)', () => {
    const other = check({ ...valid, data_object: 'other.jsonl.gz' }, 31);
    expect(other.findings.map((f) => [f.code, f.key])).toEqual([
      ['DATA_OBJECT_MISMATCH', 'k.metadata.json'],
      ['SIZE_MISMATCH', 'k.jsonl.gz'],
    ]);
    expect(other.findings[0]!.message).toContain('data_object is "other.jsonl.gz", expected "k.jsonl.gz" (the data object k.jsonl.gz this sidecar sits beside)');
    expect(other.meta?.primary_keys).toEqual([['1'], ['2']]);
    // The file name, not the key: a full key (what pending markers hold) is not the name either.
    expect(codes({ ...valid, data_object: 'app/public.events/k.jsonl.gz' })).toEqual([['DATA_OBJECT_MISMATCH', 'k.metadata.json']]);
    const { data_object: _omitted, ...missing } = valid;
    expect(check(missing).findings.map((f) => [f.code, f.message.slice(0, 45)])).toEqual([['DATA_OBJECT_MISMATCH', 'data_object is missing, expected "k.jsonl.gz"']]);
    expect(check({ ...valid, data_object: 42 }).findings[0]!.message).toContain('data_object is a number, not a file name, expected "k.jsonl.gz"');
    expect(check({ ...valid, data_object: null }).findings[0]!.message).toContain('data_object is null, not a file name');
    expect(check({ ...valid, data_object: { name: 'k.jsonl.gz' } }).findings[0]!.message).toContain('data_object is an object, not a file name');
    // A damaged value is shown only as long as a file name can be.
    expect(check({ ...valid, data_object: 'x'.repeat(5000) }).findings[0]!.message).toContain(`"${'x'.repeat(200)}…"`);
    expect(check({ ...valid, data_object: 'x'.repeat(5000) }).findings[0]!.message).not.toContain('x'.repeat(201));
  });

  it('reports a record count that disagrees with the manifest, and a stored size that disagrees with compressed_bytes, on the data object', () => {
    expect(codes({ ...valid, record_count: 3 }, 31)).toEqual([
      ['RECORD_COUNT_MISMATCH', 'k.jsonl.gz'],
      ['SIZE_MISMATCH', 'k.jsonl.gz'],
    ]);
  });
});

describe('DataLineChecker: key values against the manifest', () => {
  const meta = (keys: string[][]): CheckedMetadata => ({
    format: 'auditlog-archive',
    format_version: 1,
    database: 'd',
    schema: 's',
    table: 't',
    primary_key_columns: ['code', 'parts'],
    timestamp_column: 'at',
    record_count: keys.length,
    min_timestamp: '2024-01-15 00:00:00+00',
    max_timestamp: '2024-01-15 23:00:00+00',
    compression: 'gzip',
    uncompressed_bytes: 0,
    compressed_bytes: 0,
    sha256_uncompressed: '0'.repeat(64),
    sha256_compressed: '0'.repeat(64),
    primary_keys: keys,
    xmins: keys.map(() => '1'),
  });
  const codes = (keys: string[][], lines: string[]): string[] => {
    const checker = new DataLineChecker(meta(keys), '2024-01-15', 'k');
    for (const l of lines) checker.addLine(l);
    return checker.finish('0'.repeat(64)).map((f) => f.code);
  };

  it('compares a padded value without its padding and an array by presence (the manifest spells both as ::text, whatever domain the column has)', () => {
    expect(codes([['c1', '{1,2}']], ['{"code":"c1    ","parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual([]);
  });

  it('reports a line with a \\u0000 escape no restore can load (json archived as it stood by older versions), and not an escaped backslash before u0000', () => {
    const line = (js: string): string => `{"code":"c1","parts":[1,2],"at":"2024-01-15T01:00:00+00:00","js":${js}}`;
    expect(codes([['c1', '{1,2}']], [line(String.raw`"\u0000"`)])).toEqual(['LINE_NOT_RESTORABLE']);
    expect(codes([['c1', '{1,2}']], [line(String.raw`{"k":"a\\\u0000"}`)])).toEqual(['LINE_NOT_RESTORABLE']);
    // Text holding a backslash then u0000 (JSON "\\u0000"), and a value written by the json-as-text rule: loadable.
    expect(codes([['c1', '{1,2}']], [line(String.raw`"\\u0000"`)])).toEqual([]);
    expect(codes([['c1', '{1,2}']], [line(String.raw`"\"\\u0000\""`)])).toEqual([]);
  });

  it('reports a line whose keys are not the sidecar\'s columns, and a CRLF line ending (found by probing: both passed --deep, and restore loaded NULL or failed)', () => {
    const withColumns = (names: string[]): CheckedMetadata => ({ ...meta([['c1', '{1,2}']]), columns: names.map((name) => ({ name, type: 'text' })) });
    const check = (names: string[], line: string): string[] => {
      const checker = new DataLineChecker(withColumns(names), '2024-01-15', 'k');
      checker.addLine(line);
      return checker.finish('0'.repeat(64)).map((f) => f.code);
    };
    const line = '{"code":"c1","parts":[1,2],"at":"2024-01-15T01:00:00+00:00","note":"x"}';
    expect(check(['code', 'parts', 'at', 'note'], line)).toEqual([]);
    // Any key order: only the set of names counts.
    expect(check(['note', 'at', 'parts', 'code'], line)).toEqual([]);
    expect(check(['code', 'parts', 'at', 'note', 'extra'], line)).toEqual(['LINE_COLUMNS_MISMATCH']);
    expect(check(['code', 'parts', 'at', 'renamed'], line)).toEqual(['LINE_COLUMNS_MISMATCH']);
    expect(check(['code', 'parts', 'at'], line)).toEqual(['LINE_COLUMNS_MISMATCH']);
    expect(check(['code', 'parts', 'at', 'note'], `${line}\r`)).toEqual(['LINE_NOT_RESTORABLE']);
  });

  it('compares a jsonb key by its JSON text: a string or a JSON null is the manifest\'s ::text as written (found by probing: validate --deep failed every object of a jsonb-keyed table)', () => {
    expect(codes([['"s3"', '{1,2}']], ['{"code":"s3","parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual([]);
    expect(codes([['null', '{1,2}']], ['{"code":null,"parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual([]);
    expect(codes([['{"k": 1}', '{1,2}']], ['{"code":{"k": 1},"parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual([]);
    expect(codes([['"s4"', '{1,2}']], ['{"code":"s3","parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual(['MANIFEST_MISMATCH']);
    expect(codes([['"s3"', '{1,2}']], ['{"code":null,"parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual(['MANIFEST_MISMATCH']);
  });

  it('compares an inet key without the netmask its output leaves out for a single host (found by probing: validate --deep failed every object of an inet-keyed table)', () => {
    const line = (ip: string): string => `{"code":"${ip}","parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}`;
    expect(codes([['10.0.0.1/32', '{1,2}']], [line('10.0.0.1')])).toEqual([]);
    expect(codes([['::1/128', '{1,2}']], [line('::1')])).toEqual([]);
    expect(codes([['::ffff:10.0.0.1/128', '{1,2}']], [line('::ffff:10.0.0.1')])).toEqual([]);
    expect(codes([['10.0.0.0/8', '{1,2}']], [line('10.0.0.0/8')])).toEqual([]);
    expect(codes([['10.0.0.1/32', '{1,2}']], [line('10.0.0.2')])).toEqual(['MANIFEST_MISMATCH']);
    expect(codes([['10.0.0.1/32', '{1,2}']], [line('10.0.0.1/24')])).toEqual(['MANIFEST_MISMATCH']);
    expect(codes([['::1/128', '{1,2}']], [line('10.0.0.1')])).toEqual(['MANIFEST_MISMATCH']);
  });

  it('still reports a key that differs, or an array key that is missing', () => {
    expect(codes([['c2', '{1,2}']], ['{"code":"c1    ","parts":[1,2],"at":"2024-01-15T01:00:00+00:00"}'])).toEqual(['MANIFEST_MISMATCH']);
    expect(codes([['c1', '{1,2}']], ['{"code":"c1    ","at":"2024-01-15T01:00:00+00:00"}'])).toEqual(['MANIFEST_MISMATCH']);
  });

  it('quotes the key values it names: a comma inside one value, an empty one and a missing one stay apart', () => {
    const message = (keys: string[][], line: string): string => {
      const checker = new DataLineChecker(meta(keys), '2024-01-15', 'k');
      checker.addLine(line);
      return checker.finish('0'.repeat(64)).find((f) => f.code === 'MANIFEST_MISMATCH')!.message;
    };
    expect(message([['a,b', '']], '{"code":"a, b","at":"2024-01-15T01:00:00+00:00"}')).toMatch(/holds key \("a, b", missing\), the manifest lists \("a,b", ""\)$/);
  });
});
