/**
 * `compression: zstd` end to end, through the real pipeline, PostgreSQL and both stores: the
 * fidelity table round trip, validate --deep, `zstd -dc` reading an object as users would, a table
 * holding gzip and zstd objects at once, a batch name the other codec already holds, and damaged
 * zstd objects (truncated, trailing bytes, two frames, no declared size, a declared size that
 * disagrees or would allocate gigabytes) found by validate and restore as corrupt, never crashing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { sha256Hex, serializeMetadata, type BatchMetadata } from '../../src/core/batch-metadata.js';
import { dataKeyBase, metadataKeyFor, pendingMarkerKey, tablePrefix } from '../../src/core/archive-layout.js';
import { decodeBatch, encodeBatch } from '../../src/archive/encode-batch.js';
import { quoteQualified } from '../../src/db/quote-ident.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { validateArchive } from '../../src/validate/validate-archive.js';
import type { ValidationReport } from '../../src/validate/validate-report.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive, type InspectedObject } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { FIXTURE, SCHEMA, TABLE } from '../helpers/fidelity-fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { restoreWith } from '../helpers/restore-run.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { storageBackends } from '../helpers/storage-backends.js';
import { putSidecarlessBatch, rleFrame } from '../helpers/zstd-frames.js';

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

const backends = storageBackends(() => s3, 'zstd');
/** The reference `zstd` command, when installed: objects must read back with it too (CI images may lack it). */
const hasZstdCli = spawnSync('zstd', ['--version']).status === 0;
const PREFIX = tablePrefix('app', 'public', 'events');

const findings = (report: ValidationReport): { code: string; key: string }[] => report.tables.flatMap((t) => t.findings.map((f) => ({ code: f.code, key: f.key })));

function eventsConfig(storage: Record<string, unknown>, db: TestDatabase, defaults: Record<string, unknown>): Config {
  return buildConfig({ ...storage, defaults: { retention_days: 10, batch_size: 7, ...defaults }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] });
}

const validate = (config: Config, store: ObjectStore): Promise<ValidationReport> =>
  validateArchive({ config, store, databases: config.databases, deepThreshold: 1000, concurrency: 4, checkDatabase: true });

describe.each(backends)('zstd through the $name', (backend) => {
  let db: TestDatabase;
  let store: ObjectStore;
  let storage: Record<string, unknown>;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    db = await createTestDatabase();
    ({ store, storage, cleanup } = await backend.make());
  });
  afterEach(async () => {
    await cleanup?.();
    await db?.drop();
  });

  it('round-trips the fidelity table: .jsonl.zst objects, sidecars saying zstd, validate --deep clean, `zstd -dc` reads the lines, restore gives identical rows', async () => {
    await db.query(FIXTURE);
    const table = quoteQualified(SCHEMA, TABLE);
    const before = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${table} t ORDER BY id`);
    const config = buildConfig({
      ...storage,
      defaults: { retention_days: 30, batch_size: 2, compression: 'zstd' },
      databases: [{ name: 'fidelity', url: db.url, tables: [{ schema: SCHEMA, name: TABLE, timestamp_column: 'at' }] }],
    });
    expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(5);
    const archive = await inspectArchive(store);
    expect(archive.objects.length).toBeGreaterThanOrEqual(3);
    for (const o of archive.objects) {
      expect(o.key).toMatch(/\.jsonl\.zst$/);
      expect(o.meta).toMatchObject({ compression: 'zstd', compression_level: 1 });
      expect(o.meta.data_object).toBe(o.key.slice(o.key.lastIndexOf('/') + 1));
      // The command-line tool reads what we wrote, as docs/format.md says.
      if (hasZstdCli) expect(sha256Hex(execFileSync('zstd', ['-dc'], { input: (await store.get(o.key))! }))).toBe(o.meta.sha256_uncompressed);
    }
    expect(archive.withoutMetadata).toEqual([]);
    expect(archive.pendingMarkers).toEqual([]);

    const report = await validateArchive({ config, store, databases: config.databases, deepThreshold: 1000, concurrency: 2, checkDatabase: true });
    expect(report.deep).toBe(true);
    expect(findings(report)).toEqual([]);

    const restored = await restoreWith(config, store, { table: TABLE, target: { schema: SCHEMA, table: 'from zstd' } });
    expect(restored.error).toBeUndefined();
    expect(restored.rows).toMatchObject({ restored: 5, inserted: 5, conflicts: 0 });
    const copy = await db.query<{ row: string }>(`SELECT ROW(t.*)::text AS row FROM ${quoteQualified(SCHEMA, 'from zstd')} t ORDER BY id`);
    expect(copy.rows).toEqual(before.rows.slice(0, 5));
  });

  it('a zstd batch committing while validate lists (sidecar listed, data object not yet) is checked as committed, not ORPHAN_METADATA', async () => {
    await createEventsTable(db, { rows: 7, stepMinutes: 10, endDaysAgo: 11 });
    const config = eventsConfig(storage, db, { compression: 'zstd' });
    expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(7);
    const [o] = (await inspectArchive(store)).objects;
    expect(o!.key).toMatch(/\.jsonl\.zst$/);
    // The listing page holding the data object was read before its upload, the sidecar's after its
    // write (`.jsonl.zst` sorts before `.metadata.json`), and the marker was gone by the markers' listing.
    const listedEarly: ObjectStore = new Proxy(store, {
      get(target, p) {
        if (p === 'list') {
          return (prefix: string): AsyncIterable<{ key: string; size: number }> =>
            (async function* () {
              for await (const info of target.list(prefix)) if (info.key !== o!.key) yield info;
            })();
        }
        const value = Reflect.get(target, p) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const report = await validate(config, listedEarly);
    expect(findings(report)).toEqual([]);
    expect(report.totals).toMatchObject({ rows: 7, problems: 0 });
    // A sidecar whose data object is really gone is still reported, under the object it names.
    await store.delete(o!.key);
    expect(findings(await validate(config, store))).toEqual([{ code: 'ORPHAN_METADATA', key: metadataKeyFor(o!.key) }]);
  });

  it('a table archived with gzip, then zstd, holds both; validate --deep and restore read the mix', async () => {
    await createEventsTable(db, { rows: 40, stepMinutes: 120, endDaysAgo: 11 });
    const all = await rowIds(db);
    // Older half first, with gzip; then the rest with zstd.
    const gz = eventsConfig(storage, db, { retention_days: 12 });
    expect((await archiveWith(gz, store)).tables[0]!.rowsArchived).toBeGreaterThan(0);
    const zst = eventsConfig(storage, db, { compression: 'zstd', compression_level: 19 });
    expect((await archiveWith(zst, store)).tables[0]!.rowsArchived).toBeGreaterThan(0);
    expect(await rowIds(db)).toEqual([]);
    const archive = await inspectArchive(store);
    const codecs = archive.objects.map((o) => [o.key.endsWith('.jsonl.gz') ? 'gzip' : 'zstd', o.meta.compression, o.meta.compression_level]);
    expect(new Set(codecs.map((c) => JSON.stringify(c)))).toEqual(new Set([JSON.stringify(['gzip', 'gzip', 6]), JSON.stringify(['zstd', 'zstd', 19])]));
    expect(findings(await validate(zst, store))).toEqual([]);
    const restored = await restoreWith(zst, store, { table: 'events' });
    expect(restored.error).toBeUndefined();
    expect(restored.rows).toMatchObject({ restored: 40, inserted: 40 });
    expect(await rowIds(db)).toEqual(all);
  });
});

describe('zstd objects that are damaged, or lie about their size', () => {
  let db: TestDatabase;
  let store: ObjectStore;
  let config: Config;
  let objects: InspectedObject[];
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    db = await createTestDatabase();
    await createEventsTable(db, { rows: 14, stepMinutes: 10, endDaysAgo: 11 });
    let storage: Record<string, unknown>;
    ({ store, storage, cleanup } = await backends[0]!.make());
    config = eventsConfig(storage, db, { compression: 'zstd' });
    expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(14);
    objects = (await inspectArchive(store)).objects;
    expect(objects.length).toBeGreaterThanOrEqual(2);
  });
  afterEach(async () => {
    await cleanup?.();
    await db?.drop();
  });

  /** Stores `body` as the first object with a sidecar that matches its bytes: only decoding can tell. */
  async function replaceBody(body: Buffer, metaEdit: (m: BatchMetadata) => void = () => undefined): Promise<string> {
    const o = objects[0]!;
    await store.put(o.key, body);
    const meta = JSON.parse((await store.get(metadataKeyFor(o.key)))!.toString('utf8')) as BatchMetadata;
    meta.compressed_bytes = body.length;
    meta.sha256_compressed = sha256Hex(body);
    metaEdit(meta);
    await store.put(metadataKeyFor(o.key), serializeMetadata(meta));
    return o.key;
  }

  async function expectCorrupt(key: string, problem: RegExp): Promise<void> {
    const report = await validate(config, store);
    expect(findings(report)).toEqual([{ code: 'DECOMPRESS_FAILED', key }]);
    expect(report.tables[0]!.findings[0]!.message).toMatch(problem);
    await db.query('TRUNCATE events');
    const restored = await restoreWith(config, store, { table: 'events' });
    expect(restored.error).toMatchObject({ code: 'RESTORE_CORRUPT_OBJECT', details: { key, check: 'decompress' } });
    expect(restored.error!.message).toMatch(problem);
    const skipped = await restoreWith(config, store, { table: 'events', onCorrupt: 'skip' });
    expect(skipped.rows.restored).toBe(14 - objects[0]!.meta.record_count);
  }

  const original = async (): Promise<Buffer> => (await store.get(objects[0]!.key))!;

  it('truncated', async () => {
    const body = await original();
    await expectCorrupt(await replaceBody(body.subarray(0, body.length - 5)), /truncated/);
  });

  it('trailing garbage after the frame', async () => {
    await expectCorrupt(await replaceBody(Buffer.concat([await original(), Buffer.from('junk')])), /4 bytes follow its frame/);
  });

  it('two frames (the same object twice)', async () => {
    const body = await original();
    await expectCorrupt(await replaceBody(Buffer.concat([body, body])), /bytes follow its frame/);
  });

  it('a frame that declares no content size (as streaming compressors write)', async () => {
    const raw = Buffer.from(objects[0]!.lines.join('\n') + '\n');
    // Made by hand, as a streaming compressor writes it: no Frame_Content_Size (a window byte instead), one raw last block.
    const header = Buffer.alloc(4 + 1 + 1 + 3);
    header.writeUInt32LE(0xfd2fb528, 0);
    header[4] = 0x00;
    header[5] = 0x58;
    header.writeUIntLE((raw.length << 3) | 1, 6, 3);
    const streamed = Buffer.concat([header, raw]);
    await expectCorrupt(await replaceBody(streamed), /declares no content size/);
  });

  it('a frame whose declared size is not the sidecar\'s', async () => {
    await expectCorrupt(await replaceBody(await original(), (m) => (m.uncompressed_bytes += 1)), /declares \d+ bytes of content, the metadata says \d+/);
  });

  it('a frame declaring gigabytes (a decompression bomb, refused before any allocation)', async () => {
    // Made by hand: Single_Segment with an 8-byte Frame_Content_Size of 3e9, then one raw last block of the real lines.
    const raw = Buffer.from(objects[0]!.lines.join('\n') + '\n');
    const header = Buffer.alloc(4 + 1 + 8 + 3);
    header.writeUInt32LE(0xfd2fb528, 0);
    header[4] = 0xe0;
    header.writeBigUInt64LE(3_000_000_000n, 5);
    header.writeUIntLE((raw.length << 3) | 1, 13, 3);
    await expectCorrupt(await replaceBody(Buffer.concat([header, raw]), (m) => (m.uncompressed_bytes = 3_000_000_000)), /declares 3000000000 bytes of content, over the 536870912/);
  });

  it('a sidecar whose compression disagrees with its key: validate METADATA_INVALID, restore corrupt', async () => {
    const o = objects[0]!;
    const meta = JSON.parse((await store.get(metadataKeyFor(o.key)))!.toString('utf8')) as BatchMetadata;
    meta.compression = 'gzip';
    await store.put(metadataKeyFor(o.key), serializeMetadata(meta));
    expect(findings(await validate(config, store))).toEqual([{ code: 'METADATA_INVALID', key: metadataKeyFor(o.key) }]);
    await db.query('TRUNCATE events');
    const restored = await restoreWith(config, store, { table: 'events' });
    expect(restored.error).toMatchObject({ code: 'RESTORE_CORRUPT_OBJECT', details: { key: o.key, check: 'metadata' } });
  });
});

describe('an object left in flight without its sidecar, reconciled (zstd, and gzip)', () => {
  let db: TestDatabase;
  let store: ObjectStore;
  let config: Config;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    db = await createTestDatabase();
    await createEventsTable(db, { rows: 7, stepMinutes: 10, endDaysAgo: 11 });
    let storage: Record<string, unknown>;
    ({ store, storage, cleanup } = await backends[0]!.make());
    config = eventsConfig(storage, db, { compression: 'zstd', max_batch_bytes: 1024 * 1024 });
  });
  afterEach(async () => {
    await cleanup?.();
    await db?.drop();
  });

  it('one within the bound that is not JSON lines is still removed as nothing written, and the table archived', async () => {
    const { key, marker } = await putSidecarlessBatch(store, PREFIX, '2020-01-01', 'garbage', rleFrame(1024 * 1024));
    const run = await archiveWith(config, store);
    expect(run.failed).toBe(0);
    expect(run.tables[0]!.reconciled).toMatchObject({ removed: 1 });
    expect(await store.get(key)).toBeUndefined();
    expect(await store.get(marker)).toBeUndefined();
    expect(await rowIds(db)).toEqual([]);
  });
});

describe('a crashed batch of rows wider than the page before (over twice max_batch_bytes)', () => {
  // Batches are cut to max_batch_bytes by the previous page's row width, so this one is ~6 MB at a
  // 1 MiB setting. A decoding ceiling of twice the setting (found in review) kept it for an
  // operator on every later run, with a message blaming the object, though every row was in the table.
  it.each(['gzip', 'zstd'] as const)('is reconciled against the table and archived by the next run (%s)', async (compression) => {
    const db = await createTestDatabase();
    const { store, storage, cleanup } = await backends[0]!.make();
    onTestFinished(async () => {
      await cleanup();
      await db.drop();
    });
    await createEventsTable(db, { rows: 120, stepMinutes: 1, endDaysAgo: 20 });
    await db.query(`UPDATE events SET note = repeat('x', 100000) WHERE id > 60`);
    const config = eventsConfig(storage, db, { compression, batch_size: 60, max_batch_bytes: 1024 * 1024, batches_in_flight: 1 });
    let uploads = 0;
    const crashed = await archiveWith(config, store, {
      onPhase: (phase) => {
        if (phase === 'after-upload' && ++uploads === 2) throw new Error('simulated crash after the upload of the wide batch');
      },
    });
    expect(crashed.tables[0]!.rowsArchived).toBe(60);
    expect(await rowIds(db)).toHaveLength(60);
    const again = await archiveWith(config, store);
    expect(again.tables[0]!.error).toBeUndefined();
    expect(again.tables[0]!.reconciled).toMatchObject({ removed: 1 });
    expect(again.tables[0]!.rowsArchived).toBe(60);
    expect(await rowIds(db)).toEqual([]);
  });
});

describe('a batch name the other codec already holds', () => {
  let db: TestDatabase;
  let store: ObjectStore;
  let storage: Record<string, unknown>;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    db = await createTestDatabase();
    ({ store, storage, cleanup } = await backends[1]!.make());
  });
  afterEach(async () => {
    await cleanup?.();
    await db?.drop();
  });

  it.each([
    ['gzip', 'zstd'],
    ['zstd', 'gzip'],
  ] as const)('rows archived with %s, restored, then archived with %s: deleted against the committed object, no second object, its sidecar untouched', async (first, then) => {
    await createEventsTable(db, { rows: 7, stepMinutes: 10, endDaysAgo: 11 });
    const a = eventsConfig(storage, db, { compression: first });
    expect((await archiveWith(a, store)).tables[0]!.rowsArchived).toBe(7);
    const before = await inspectArchive(store);
    expect(before.objects).toHaveLength(1);
    const sidecar = await store.get(metadataKeyFor(before.objects[0]!.key));
    expect((await restoreWith(a, store, { table: 'events' })).rows.inserted).toBe(7);

    const b = eventsConfig(storage, db, { compression: then });
    const again = await archiveWith(b, store);
    expect(again.failed).toBe(0);
    expect(await rowIds(db)).toEqual([]);
    const after = await inspectArchive(store);
    const archiveKeys = (keys: string[]): string[] => keys.filter((k) => !k.startsWith('_auditlog/'));
    expect(archiveKeys(after.allKeys)).toEqual(archiveKeys(before.allKeys));
    expect(after.pendingMarkers).toEqual([]);
    expect((await store.get(metadataKeyFor(before.objects[0]!.key)))!.equals(sidecar!)).toBe(true);
    expect(findings(await validate(b, store))).toEqual([]);
  });

  it('a stray copy of the other codec at a committed object\'s name does not shadow that object on a create-only store', async () => {
    // Found in review: the create-only store never asked for the batch's own key, so the stray
    // gzip copy was settled against, and the table stopped with STORAGE_CONFLICT on every run.
    const local = await backends[0]!.make();
    const { store, storage } = local;
    onTestFinished(() => local.cleanup());
    await createEventsTable(db, { rows: 7, stepMinutes: 10, endDaysAgo: 11 });
    await db.query('CREATE TABLE events_copy AS TABLE events');
    const zst = eventsConfig(storage, db, { compression: 'zstd' });
    expect((await archiveWith(zst, store)).tables[0]!.rowsArchived).toBe(7);
    const [committed] = (await inspectArchive(store)).objects;
    const sidecar = (await store.get(metadataKeyFor(committed!.key)))!;
    const { raw } = await decodeBatch((await store.get(committed!.key))!);
    await store.put(`${dataKeyBase(committed!.key)}.jsonl.gz`, gzipSync(raw));
    // The same rows back in the table (same content, so the same batch name).
    await db.query('INSERT INTO events SELECT * FROM events_copy');
    const again = await archiveWith(zst, store);
    expect(again.failed).toBe(0);
    expect(await rowIds(db)).toEqual([]);
    expect((await store.get(metadataKeyFor(committed!.key)))!.equals(sidecar)).toBe(true);
    const markers: string[] = [];
    for await (const o of store.list('_auditlog/pending/')) markers.push(o.key);
    expect(markers).toEqual([]);
  });

  it('a marker of the other codec left at a committed object\'s name is reconciled without touching that object or its sidecar', async () => {
    await createEventsTable(db, { rows: 7, stepMinutes: 10, endDaysAgo: 11 });
    const gz = eventsConfig(storage, db, {});
    expect((await archiveWith(gz, store)).tables[0]!.rowsArchived).toBe(7);
    const [committed] = (await inspectArchive(store)).objects;
    const sidecar = (await store.get(metadataKeyFor(committed!.key)))!;
    // A zstd batch of the same name cut short right after its marker (rows restored and archived again with zstd).
    const name = committed!.key.slice(committed!.key.lastIndexOf('/') + 1, -'.jsonl.gz'.length);
    const day = /year=(\d{4})\/month=(\d{2})\/day=(\d{2})/.exec(committed!.key)!.slice(1).join('-');
    const marker = pendingMarkerKey(PREFIX, day, name, 'zstd');
    expect(marker).toMatch(/\.zst\.pending$/);
    await store.put(marker, Buffer.from(JSON.stringify({ data_object: `${dataKeyBase(committed!.key)}.jsonl.zst`, metadata_object: metadataKeyFor(committed!.key), run_id: 'r', created_at: new Date().toISOString() })));
    const rerun = await archiveWith(eventsConfig(storage, db, { compression: 'zstd' }), store);
    expect(rerun.failed).toBe(0);
    expect(rerun.tables[0]!.reconciled).toMatchObject({ removed: 1 });
    expect(await store.get(marker)).toBeUndefined();
    expect((await store.get(metadataKeyFor(committed!.key)))!.equals(sidecar)).toBe(true);
    expect(findings(await validate(gz, store))).toEqual([]);
  });
});

describe('decodeBatch and encodeBatch with zstd', () => {
  it('round-trips and reads the codec from the magic number', async () => {
    const raw = Buffer.from('{"id":1}\n{"id":2}\n'.repeat(1000));
    const encoded = await encodeBatch(raw, 'zstd', 3);
    expect(encoded.body.readUInt32LE(0)).toBe(0xfd2fb528);
    expect(encoded.compression).toBe('zstd');
    expect((await decodeBatch(encoded.body)).raw.equals(raw)).toBe(true);
  });
});
