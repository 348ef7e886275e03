import { describe, expect, it } from 'vitest';
import { isArchiverKey, selectOrphanStateRecords, selectOrphanUploads } from '../../src/storage/multipart-cleanup.js';
import { canResume, isSamePart, multipartStateKey, parseMultipartState, planParts, serializeMultipartState, type MultipartState } from '../../src/storage/multipart-state.js';

const state: MultipartState = {
  key: 'archives/app/public.t/year=2025/month=01/day=02/x.jsonl.gz',
  upload_id: 'u1',
  part_size: 5_242_880,
  size: 12_000_000,
  sha256: 'a'.repeat(64),
  checksum: 'SHA256',
  settings: '{"contentType":null}',
  created_at: '2026-01-01T00:00:00.000Z',
};

describe('multipart resume record', () => {
  it('round-trips, and rejects anything it did not write', () => {
    expect(parseMultipartState(serializeMultipartState(state))).toEqual(state);
    expect(parseMultipartState(Buffer.from('{"key":'))).toBeUndefined();
    expect(parseMultipartState(Buffer.from(JSON.stringify({ ...state })))).toBeUndefined();
    const bad = JSON.parse(serializeMultipartState(state).toString()) as Record<string, unknown>;
    expect(parseMultipartState(Buffer.from(JSON.stringify({ ...bad, sha256: 'xyz' })))).toBeUndefined();
    expect(parseMultipartState(Buffer.from(JSON.stringify({ ...bad, size: -1 })))).toBeUndefined();
  });

  it('lives under _auditlog/multipart/ named by the SHA-256 of the full key', () => {
    expect(multipartStateKey('archives/a')).toMatch(/^_auditlog\/multipart\/[0-9a-f]{64}\.json$/);
    expect(multipartStateKey('archives/a')).not.toBe(multipartStateKey('archives/b'));
  });

  it('resumes only for the identical body, part size, checksum mode and settings', () => {
    const { upload_id: _u, created_at: _c, ...wanted } = state;
    expect(canResume(state, wanted)).toBe(true);
    for (const change of [{ size: 1 }, { sha256: 'b'.repeat(64) }, { part_size: 8_388_608 }, { checksum: 'none' as const }, { settings: '{}' }, { key: 'other' }]) {
      expect(canResume(state, { ...wanted, ...change })).toBe(false);
    }
  });

  it('splits a body into parts, the last one short', () => {
    expect(planParts(11, 5)).toEqual([
      { partNumber: 1, start: 0, end: 5 },
      { partNumber: 2, start: 5, end: 10 },
      { partNumber: 3, start: 10, end: 11 },
    ]);
  });

  it('trusts a listed part by its SHA-256 when reported, else by its MD5 ETag, never by size alone', () => {
    const ours = { size: 3, sha256Base64: 'S', md5Hex: () => 'abc' };
    expect(isSamePart({ partNumber: 1, size: 3, etag: '"zzz"', checksumSha256: 'S' }, ours)).toBe(true);
    expect(isSamePart({ partNumber: 1, size: 3, etag: '"abc"', checksumSha256: 'T' }, ours)).toBe(false);
    expect(isSamePart({ partNumber: 1, size: 3, etag: '"ABC"' }, ours)).toBe(true);
    expect(isSamePart({ partNumber: 1, size: 3, etag: '"abc-2"' }, ours)).toBe(false);
    expect(isSamePart({ partNumber: 1, size: 4, etag: '"abc"' }, ours)).toBe(false);
  });
});

describe('orphan selection', () => {
  const cutoff = new Date('2026-01-02T00:00:00Z');
  const old = new Date('2026-01-01T00:00:00Z');
  const young = new Date('2026-01-03T00:00:00Z');

  it('knows the keys the archiver writes', () => {
    expect(isArchiverKey('app/public.t/year=2025/month=01/day=02/x.jsonl.gz')).toBe(true);
    expect(isArchiverKey('app/public.t/year=2025/month=01/day=02/x.metadata.json')).toBe(true);
    expect(isArchiverKey('_auditlog/pending/x.json')).toBe(true);
    expect(isArchiverKey('backups/db.tar.gz')).toBe(false);
    expect(isArchiverKey('x.jsonl.gz')).toBe(false);
  });

  it('selects old uploads of our keys, never undated, young, foreign or in-flight ones', () => {
    const ours = 'app/public.t/year=2025/month=01/day=02/x.jsonl.gz';
    const { orphans, kept } = selectOrphanUploads(
      [
        { key: ours, uploadId: 'old', initiated: old },
        { key: ours, uploadId: 'young', initiated: young },
        { key: ours, uploadId: 'undated' },
        { key: ours, uploadId: 'mine', initiated: old },
        { key: 'other/file.bin', uploadId: 'foreign', initiated: old },
      ],
      { cutoff, inFlight: new Set(['mine']) },
    );
    expect(orphans.map((o) => o.uploadId)).toEqual(['old']);
    expect(kept).toBe(4);
  });

  it('selects records of aborted uploads, and old records whose upload is gone', () => {
    const rec = (id: string, created: Date) => ({ key: `_auditlog/multipart/${id}.json`, state: { ...state, upload_id: id, created_at: created.toISOString() } });
    const { orphans } = selectOrphanStateRecords(
      [rec('aborted', young), rec('gone-old', old), rec('gone-young', young), rec('live', old), { key: '_auditlog/multipart/junk.json', lastModified: old }, { key: '_auditlog/multipart/junk2.json' }],
      { cutoff, liveUploadIds: new Set(['live']), abortedUploadIds: new Set(['aborted']), inFlight: new Set() },
    );
    expect(orphans.map((o) => o.key)).toEqual(['_auditlog/multipart/aborted.json', '_auditlog/multipart/gone-old.json', '_auditlog/multipart/junk.json']);
  });
});
