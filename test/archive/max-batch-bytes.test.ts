/**
 * max_batch_bytes against a real database and a local directory: pages of wide rows shrink to fit
 * the byte bound (below min_batch_size, down to one row), a day larger than a page is archived as
 * several objects, and every row is archived exactly once, as it was in the table.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive, type InspectedObject } from '../helpers/archive-inspect.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const MiB = 1024 * 1024;

let db: TestDatabase;
let dir: string;
beforeEach(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'max-batch-bytes-'));
});
afterEach(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/**
 * `rows` rows of `chunks` × 32 hex characters of md5 output (random: gzip halves it, no more),
 * spread over 3 UTC days well past the 10-day retention.
 */
async function createWideTable(rows: number, chunks: number): Promise<Map<string, string>> {
  await db.query(`CREATE TABLE wide (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, payload text)`);
  await db.query(
    `INSERT INTO wide SELECT g, date_trunc('day', now()) - make_interval(days => 20 + g % 3, secs => g),
            (SELECT string_agg(md5(random()::text || g || c), '') FROM generate_series(1, $2) c)
       FROM generate_series(1, $1) g`,
    [rows, chunks],
  );
  const r = await db.query<{ id: string; line: string }>(`SELECT id::text AS id, row_to_json(t.*)::text AS line FROM wide AS t`);
  return new Map(r.rows.map((x) => [x.id, md5(x.line)]));
}

async function archive(maxBatchBytes: number): Promise<InspectedObject[]> {
  const config = buildConfig({
    local: { path: dir },
    defaults: { retention_days: 10, max_batch_bytes: maxBatchBytes },
    databases: [{ name: 'app', url: db.url, tables: [{ name: 'wide', timestamp_column: 'created_at' }] }],
  });
  const store = new LocalObjectStore({ path: dir });
  const summary = await archiveWith(config, store);
  expect(summary.tables[0]!.status).toBe('archived');
  const inspected = await inspectArchive(store);
  expect(inspected.pendingMarkers).toEqual([]);
  expect(inspected.withoutMetadata).toEqual([]);
  return inspected.objects;
}

/** Each row archived exactly once, its line as row_to_json rendered it, and none left in the table. */
async function expectEachRowOnce(objects: InspectedObject[], expected: Map<string, string>): Promise<void> {
  const archived = new Map<string, string[]>();
  for (const o of objects) {
    expect(o.lines.length).toBe(o.meta.record_count);
    o.meta.primary_keys.forEach((k, i) => archived.set(k[0]!, [...(archived.get(k[0]!) ?? []), md5(o.lines[i]!)]));
  }
  expect(archived.size).toBe(expected.size);
  for (const [id, hash] of expected) expect(archived.get(id), `row ${id}`).toEqual([hash]);
  expect((await db.query(`SELECT 1 FROM wide`)).rows).toEqual([]);
}

describe('max_batch_bytes', () => {
  it('keeps every object under the bound with rows of 200 KB, splitting each day into several objects', async () => {
    // 200 rows of 200 KB: 40 MB, ~13 MB a day, against a 2 MiB bound and the default batch_size of 10,000.
    const expected = await createWideTable(200, 6_250);
    const objects = await archive(2 * MiB);
    await expectEachRowOnce(objects, expected);
    for (const o of objects) {
      if (o.meta.record_count > 1) expect(o.meta.uncompressed_bytes, o.key).toBeLessThanOrEqual(2 * MiB);
    }
    // Pages of about 10 rows (under min_batch_size's 1,000): each day takes many objects.
    const days = new Map<string, number>();
    for (const o of objects) {
      const day = /year=\d+\/month=\d+\/day=\d+\//.exec(o.key)![0];
      days.set(day, (days.get(day) ?? 0) + 1);
    }
    expect(days.size).toBe(3);
    for (const n of days.values()) expect(n).toBeGreaterThan(5);
    expect(Math.max(...objects.map((o) => o.meta.record_count))).toBeLessThanOrEqual(10);
  });

  it('archives rows larger than the bound one a page, a day of them included', async () => {
    // 9 rows of ~1.5 MB, three a day, against the smallest bound (1 MiB): pages of one row.
    const expected = await createWideTable(9, 48_000);
    const objects = await archive(1 * MiB);
    await expectEachRowOnce(objects, expected);
    expect(objects.map((o) => o.meta.record_count)).toEqual(new Array(9).fill(1));
  });
});
