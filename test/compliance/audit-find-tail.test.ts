/**
 * Opening the storage trail finds its newest record by listing from the clock's day, then 1, 2,
 * 4, … days back: a run lists about the last days' records, not the trail — also on the first run
 * of a day, a month or a year, when the clock's own day, month and year hold nothing yet.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_PREFIX, auditSearchStarts, sha256Hex } from '../../src/compliance/audit-record.js';
import { StorageAuditTrail } from '../../src/compliance/audit-trail.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { ListOptions, ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';
import { writeAuditTrail, type PlannedRecord, type WrittenRecord } from '../helpers/audit-trail-fixture.js';

let root: string;
let trail: WrittenRecord[];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'auditlog-find-tail-'));
  // 1,460 records, four a day through 2026.
  const planned: PlannedRecord[] = Array.from({ length: 1460 }, (_, i) => ({ entry: { event: 'ARCHIVE_START', runId: `run-${i}`, status: 'started' } }));
  trail = await writeAuditTrail(root, planned, Date.parse('2026-01-01T00:00:00.000Z'), 6 * 3_600_000);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Counts the keys every listing yields. */
function countingStore(inner: ObjectStore): ObjectStore & { listed: number } {
  const counting = Object.create(inner) as ObjectStore & { listed: number };
  counting.listed = 0;
  counting.list = async function* (prefix: string, options?: ListOptions): AsyncGenerator<ObjectInfo> {
    for await (const info of inner.list(prefix, options)) {
      counting.listed++;
      yield info;
    }
  };
  return counting;
}

describe('finding the newest audit record', () => {
  it('searches from the clock day, then 1, 2, 4, … days back, then everything', () => {
    const starts = auditSearchStarts(new Date('2026-11-30T12:00:00.000Z'));
    expect(starts.slice(0, 6)).toEqual(['2026/11/30/', '2026/11/29/', '2026/11/28/', '2026/11/26/', '2026/11/22/', '2026/11/14/'].map((d) => `${AUDIT_PREFIX}${d}`));
    expect(starts.at(-1)).toBeUndefined();
    expect(starts.length).toBeLessThan(20);
  });

  for (const [when, clock, most] of [
    ['the next run of the same day', '2026-12-31T23:00:00.000Z', 4],
    ['the first run of a new year', '2027-01-01T00:30:00.000Z', 4],
    ['a run after 100 idle days', '2027-04-11T00:00:00.000Z', 4 * 30],
  ] as const) {
    it(`${when} lists at most ${most} keys and links to the newest record`, async () => {
      const store = countingStore(new LocalObjectStore({ path: root }));
      const audit = new StorageAuditTrail(store, 'op', () => new Date(clock));
      await audit.open();
      expect(store.listed).toBeLessThanOrEqual(most);
      // The probe record is removed again, so each case opens the same trail.
      const record = await audit.append({ event: 'ERROR', runId: 'probe', status: 'failed' });
      expect(record.prev_sha256).toBe(sha256Hex(trail.at(-1)!.body));
      const keys: string[] = [];
      for await (const info of new LocalObjectStore({ path: root }).list(AUDIT_PREFIX)) keys.push(info.key);
      await new LocalObjectStore({ path: root }).delete(keys.at(-1)!);
    });
  }
});
