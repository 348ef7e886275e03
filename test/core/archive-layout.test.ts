import { describe, expect, it } from 'vitest';
import { dataKey, dataKeyForMarker, encodeKeySegment, markerKeyForData, metadataKeyFor, pendingMarkerKey, tablePrefix } from '../../src/core/archive-layout.js';

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

  it('finds the data object of a pending marker from the marker key alone', () => {
    const prefix = tablePrefix('app', 'public', 'events');
    for (const day of ['2024-01-15', '0000-00-00']) {
      const marker = pendingMarkerKey(prefix, day, '000000000000-aaaabbbbccccdddd');
      expect(dataKeyForMarker(prefix, marker)).toBe(dataKey(prefix, day, '000000000000-aaaabbbbccccdddd'));
    }
    expect(dataKeyForMarker(prefix, '_auditlog/pending/app/public.events/garbage.json')).toBeUndefined();
    expect(dataKeyForMarker(prefix, '_auditlog/pending/other/public.events/2024-01-15-x.json')).toBeUndefined();
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
