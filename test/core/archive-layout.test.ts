import { describe, expect, it } from 'vitest';
import { checkpointKey, dataKey, dataKeyForMarker, encodeKeySegment, legacyTablePrefix, lockFileKey, markerKeyForData, metadataKeyFor, pendingMarkerKey, pendingPrefix, tableStateKey, tablePrefix } from '../../src/core/archive-layout.js';

describe('archive layout', () => {
  it('lays data objects out as <db>/<schema>.<table>/year=/month=/day=/<name>.jsonl.gz with the sidecar beside', () => {
    const prefix = tablePrefix('app', 'public', 'audit_log');
    const key = dataKey(prefix, '2024-02-29', '101500000001-0123456789abcdef');
    expect(key).toBe('app/public.audit_log/year=2024/month=02/day=29/101500000001-0123456789abcdef.jsonl.gz');
    expect(metadataKeyFor(key)).toBe('app/public.audit_log/year=2024/month=02/day=29/101500000001-0123456789abcdef.metadata.json');
  });

  it('percent-encodes every byte outside [A-Za-z0-9_.-] so no name leaves its directory', () => {
    expect(encodeKeySegment('weird "name";')).toBe('weird%20%22name%22%3B');
    expect(encodeKeySegment('a/b')).toBe('a%2Fb');
    expect(encodeKeySegment('..')).toBe('%2E%2E');
    expect(encodeKeySegment('日')).toBe('%E6%97%A5');
    expect(tablePrefix('db', 'Mixed Case', 'x.y')).toBe('db/Mixed%20Case.x.y/');
  });

  it('gives schema a.b table c and schema a table b.c different directories, markers, state and locks', () => {
    // Found by probing: both were `app/a.b.c/`, so one table's reconciliation removed the other's
    // in-flight object. The schema's dots are escaped; the table's keep their layout.
    const x = { database: 'app', schema: 'a.b', table: 'c' };
    const y = { database: 'app', schema: 'a', table: 'b.c' };
    expect(tablePrefix(x.database, x.schema, x.table)).toBe('app/a%2Eb.c/');
    expect(tablePrefix(y.database, y.schema, y.table)).toBe('app/a.b.c/');
    expect(pendingPrefix(tablePrefix(x.database, x.schema, x.table))).not.toBe(pendingPrefix(tablePrefix(y.database, y.schema, y.table)));
    for (const key of [tableStateKey, checkpointKey, lockFileKey]) expect(key(x)).not.toBe(key(y));
    expect(legacyTablePrefix(x.database, x.schema, x.table)).toBe('app/a.b.c/');
    expect(legacyTablePrefix(y.database, y.schema, y.table)).toBeUndefined();
    expect(legacyTablePrefix('app', 'public', 'events')).toBeUndefined();
  });

  it('reads back schema and table from a table directory: the first literal dot is the separator', () => {
    const names = ['a', 'a.b', 'b.c', '.', '..', '.a', 'a.', 'a..b', '%2E', 'a%2Eb', 'weird "name";', 'x/y', '日.本', ''];
    const seen = new Map<string, string>();
    for (const schema of names.filter((n) => n !== '')) {
      for (const table of names.filter((n) => n !== '')) {
        const prefix = tablePrefix('app', schema, table);
        const segment = prefix.slice('app/'.length, -1);
        expect(segment).not.toContain('/');
        const dot = segment.indexOf('.');
        expect([decodeURIComponent(segment.slice(0, dot)), decodeURIComponent(segment.slice(dot + 1))]).toEqual([schema, table]);
        const other = seen.get(prefix);
        expect(other, `${JSON.stringify([schema, table])} shares ${prefix} with ${other}`).toBeUndefined();
        seen.set(prefix, JSON.stringify([schema, table]));
      }
    }
  });

  it('finds the data object of a pending marker from the marker key alone', () => {
    const prefix = tablePrefix('app', 'public', 'events');
    for (const day of ['2024-01-15', '0000-00-00']) {
      const marker = pendingMarkerKey(prefix, day, '000000000000-aaaabbbbccccdddd');
      expect(dataKeyForMarker(prefix, marker)).toBe(dataKey(prefix, day, '000000000000-aaaabbbbccccdddd'));
    }
    expect(dataKeyForMarker(prefix, '_auditlog/pending/app/public.events/garbage.json')).toBeUndefined();
    expect(dataKeyForMarker(prefix, '_auditlog/pending/other/public.events/2024-01-15-x.json')).toBeUndefined();
  });

  it('names a zstd batch\'s marker by its codec, so the marker key alone leads to the .jsonl.zst object; gzip markers keep their name', () => {
    const prefix = tablePrefix('app', 'public', 'events');
    const name = '000000000000-aaaabbbbccccdddd';
    const gz = pendingMarkerKey(prefix, '2024-01-15', name, 'gzip');
    const zst = pendingMarkerKey(prefix, '2024-01-15', name, 'zstd');
    expect(gz).toBe(`_auditlog/pending/${prefix}2024-01-15-${name}.json`);
    expect(zst).toBe(`_auditlog/pending/${prefix}2024-01-15-${name}.zst.pending`);
    expect(dataKeyForMarker(prefix, gz)).toBe(`${prefix}year=2024/month=01/day=15/${name}.jsonl.gz`);
    expect(dataKeyForMarker(prefix, zst)).toBe(`${prefix}year=2024/month=01/day=15/${name}.jsonl.zst`);
    expect(markerKeyForData(prefix, dataKey(prefix, '2024-01-15', name, 'zstd'))).toBe(zst);
    // Both codecs' objects of a name share the sidecar key (DESIGN.md §3).
    expect(metadataKeyFor(dataKey(prefix, '2024-01-15', name, 'zstd'))).toBe(metadataKeyFor(dataKey(prefix, '2024-01-15', name, 'gzip')));
    // The rule of versions before zstd (`<day>-<name>.json`) does not parse a zstd marker: they
    // stop on it instead of taking it for a gzip batch with nothing written.
    const before = /^(\d{4}-\d{2}-\d{2})-([^/]+)\.json$/;
    expect(before.test(zst.slice(pendingPrefix(prefix).length))).toBe(false);
    expect(before.test(gz.slice(pendingPrefix(prefix).length))).toBe(true);
  });

  it('finds the pending marker of a data object, the inverse', () => {
    const prefix = tablePrefix('app', 'public', 'events');
    for (const day of ['2024-01-15', '0000-00-00']) {
      const key = dataKey(prefix, day, '000000000000-aaaabbbbccccdddd');
      expect(markerKeyForData(prefix, key)).toBe(pendingMarkerKey(prefix, day, '000000000000-aaaabbbbccccdddd'));
      expect(dataKeyForMarker(prefix, markerKeyForData(prefix, key)!)).toBe(key);
    }
    expect(markerKeyForData(prefix, `${prefix}year=2024/month=01/x.jsonl.gz`)).toBeUndefined();
    expect(markerKeyForData(prefix, 'other/public.events/year=2024/month=01/day=15/x.jsonl.gz')).toBeUndefined();
  });
});
