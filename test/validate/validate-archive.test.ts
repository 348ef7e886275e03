/**
 * `validate` against real archives: a seeded table archived by the real pipeline to s3rver and to
 * a local directory, then damaged one way at a time through the store. Each damage must be found
 * with its code on the right key, and nothing else flagged.
 */
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Config } from '../../src/config/schema.js';
import { sha256Hex, serializeMetadata, type BatchMetadata } from '../../src/core/batch-metadata.js';
import { metadataKeyFor, pendingMarkerKey, tablePrefix } from '../../src/core/archive-layout.js';
import { decodeBatch } from '../../src/archive/encode-batch.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';
import { validateArchive, type ValidateOptions } from '../../src/validate/validate-archive.js';
import type { ValidationReport } from '../../src/validate/validate-report.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive, type InspectedObject } from '../helpers/archive-inspect.js';
import { createEventsTable } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let dir: string;
beforeAll(async () => {
  s3 = await startS3Server();
  dir = await mkdtemp(join(tmpdir(), 'validate-'));
});
afterAll(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

const ROWS = 40;
const PREFIX = tablePrefix('app', 'public', 'events');

/** Records the prefixes listed, to prove a date range lists only its partitions. */
class ListSpyStore implements ObjectStore {
  readonly listed: string[] = [];
  constructor(private readonly inner: ObjectStore) {}
  get description(): string {
    return this.inner.description;
  }
  put: ObjectStore['put'] = (k, b, o) => this.inner.put(k, b, o);
  get: ObjectStore['get'] = (k) => this.inner.get(k);
  head: ObjectStore['head'] = (k) => this.inner.head(k);
  delete: ObjectStore['delete'] = (k) => this.inner.delete(k);
  deleteMany: ObjectStore['deleteMany'] = (k) => this.inner.deleteMany(k);
  check: ObjectStore['check'] = () => this.inner.check();
  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.listed.push(prefix);
    return this.inner.list(prefix);
  }
}

describe.each(['s3', 'local'] as const)('validate (%s backend)', (backend) => {
  let db: TestDatabase;
  let config: Config;
  let store: ObjectStore;
  let objects: InspectedObject[];

  beforeEach(async (t) => {
    db = await createTestDatabase();
    // Every 2 hours over ~3.3 days, all older than the 10-day retention: several days, several batches a day.
    await createEventsTable(db, { rows: ROWS, stepMinutes: 120, endDaysAgo: 11 });
    const storage =
      backend === 's3' ? { s3: s3.s3Config({ prefix: `v-${t.task.id}-${Date.now()}/` }) } : { local: { path: join(dir, `${t.task.id}-${Date.now()}`) } };
    config = buildConfig({ ...storage, defaults: { retention_days: 10, batch_size: 7 }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] });
    store = backend === 's3' ? new S3ObjectStore(config.s3!) : new LocalObjectStore(config.local!);
    const summary = await archiveWith(config, store);
    expect(summary.tables[0]!.rowsArchived).toBe(ROWS);
    objects = (await inspectArchive(store)).objects;
    expect(objects.length).toBeGreaterThanOrEqual(6);
  });
  afterEach(async () => {
    await db?.drop();
  });

  const validate = (extra: Partial<ValidateOptions> = {}): Promise<ValidationReport> =>
    validateArchive({ config, store, databases: config.databases, deepThreshold: 100, concurrency: 4, checkDatabase: false, ...extra });

  const findings = (report: ValidationReport): { code: string; key: string }[] => report.tables.flatMap((t) => t.findings.map((f) => ({ code: f.code, key: f.key })));

  const readMeta = async (o: InspectedObject): Promise<BatchMetadata> => JSON.parse((await store.get(metadataKeyFor(o.key)))!.toString('utf8')) as BatchMetadata;
  const writeMeta = async (o: InspectedObject, meta: BatchMetadata): Promise<void> => {
    await store.put(metadataKeyFor(o.key), serializeMetadata(meta));
  };

  /** Rewrites an object's lines as a faulty writer would: new bytes, with matching size and compressed SHA-256 in the metadata. */
  async function rewriteLines(o: InspectedObject, edit: (lines: string[]) => string[], metaEdit: (m: BatchMetadata) => void = () => undefined): Promise<void> {
    const { lines } = await decodeBatch((await store.get(o.key))!);
    const body = gzipSync(Buffer.from(edit(lines).join('\n') + '\n'));
    await store.put(o.key, body);
    const meta = await readMeta(o);
    meta.compressed_bytes = body.length;
    meta.sha256_compressed = sha256Hex(body);
    metaEdit(meta);
    await writeMeta(o, meta);
  }

  it('finds a clean archive clean, with totals that match what was archived', async () => {
    const report = await validate();
    expect(findings(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.deep).toBe(true);
    expect(report.totals).toMatchObject({ tables: 1, objects: objects.length, rows: ROWS, problems: 0, warnings: 0, byCode: {} });
    expect(report.totals.bytes).toBe(objects.reduce((n, o) => n + o.meta.compressed_bytes, 0));
    const shallow = await validate({ deepThreshold: 0 });
    expect(shallow.deep).toBe(false);
    expect(findings(shallow)).toEqual([]);
  });

  it('flipped byte: SHA256_MISMATCH (deep), and nothing a listing could see', async () => {
    const o = objects[2]!;
    const body = Buffer.from((await store.get(o.key))!);
    body[Math.floor(body.length / 2)]! ^= 0x01;
    await store.put(o.key, body);
    expect(findings(await validate())).toEqual([{ code: 'SHA256_MISMATCH', key: o.key }]);
    expect(findings(await validate({ deepThreshold: 0 }))).toEqual([]);
    expect(findings(await validate({ deepThreshold: 0, deep: true }))).toEqual([{ code: 'SHA256_MISMATCH', key: o.key }]);
  });

  it('truncated object: SIZE_MISMATCH, even without reading contents', async () => {
    const o = objects[1]!;
    const body = (await store.get(o.key))!;
    await store.put(o.key, body.subarray(0, body.length - 5));
    expect(findings(await validate())).toEqual([{ code: 'SIZE_MISMATCH', key: o.key }]);
    expect(findings(await validate({ deepThreshold: 0 }))).toEqual([{ code: 'SIZE_MISMATCH', key: o.key }]);
  });

  /**
   * A store whose listing of the pending markers first runs `meanwhile`: what an archive run at
   * work does between validate's listing of the objects and its listing of the markers.
   */
  const storeActingBetweenListings = (meanwhile: () => Promise<void>): ObjectStore => {
    const spy = new ListSpyStore(store);
    const list = spy.list.bind(spy);
    spy.list = (prefix: string): AsyncIterable<ObjectInfo> =>
      prefix.includes('_auditlog/pending/')
        ? (async function* () {
            await meanwhile();
            yield* list(prefix);
          })()
        : list(prefix);
    return spy;
  };

  it('a batch committed between the listings (sidecar written, marker removed) is checked as committed, not MISSING_METADATA', async () => {
    const o = objects[objects.length - 1]!;
    const sidecar = (await store.get(metadataKeyFor(o.key)))!;
    const marker = pendingMarkerKey(PREFIX, o.meta.min_timestamp.slice(0, 10), o.key.slice(o.key.lastIndexOf('/') + 1, -'.jsonl.gz'.length));
    // In flight when the objects are listed: marker and data, no sidecar yet.
    await store.delete(metadataKeyFor(o.key));
    await store.put(marker, Buffer.from('{}'));
    const acting = storeActingBetweenListings(async () => {
      await store.put(metadataKeyFor(o.key), sidecar);
      await store.delete(marker);
    });
    const report = await validate({ store: acting });
    expect(findings(report)).toEqual([]);
    expect(report.totals).toMatchObject({ objects: objects.length, rows: ROWS, problems: 0 });
  });

  it('a batch given up between the listings (data, sidecar, marker deleted) is no finding; one still in flight is UNCOMMITTED_OBJECT', async () => {
    const [gone, flying] = [objects[1]!, objects[2]!];
    const markerOf = (o: InspectedObject): string => pendingMarkerKey(PREFIX, o.meta.min_timestamp.slice(0, 10), o.key.slice(o.key.lastIndexOf('/') + 1, -'.jsonl.gz'.length));
    await store.put(markerOf(gone), Buffer.from('{}'));
    await store.delete(metadataKeyFor(flying.key));
    const acting = storeActingBetweenListings(async () => {
      await store.delete(gone.key);
      await store.delete(metadataKeyFor(gone.key));
      await store.delete(markerOf(gone));
      // Its marker written only now: the listing of the objects saw data without a sidecar and no marker.
      await store.put(markerOf(flying), Buffer.from('{}'));
    });
    const report = await validate({ store: acting });
    expect(findings(report)).toEqual([{ code: 'UNCOMMITTED_OBJECT', key: flying.key }]);
    expect(report.ok).toBe(true);
    // With nothing acting, the same gap with no marker is a problem.
    await store.delete(markerOf(flying));
    expect(findings(await validate())).toEqual([{ code: 'MISSING_METADATA', key: flying.key }]);
  });

  it('metadata deleted: MISSING_METADATA; data deleted: ORPHAN_METADATA', async () => {
    const [a, b] = [objects[0]!, objects[3]!];
    await store.delete(metadataKeyFor(a.key));
    await store.delete(b.key);
    const report = await validate();
    expect(findings(report)).toEqual([
      { code: 'MISSING_METADATA', key: a.key },
      { code: 'ORPHAN_METADATA', key: metadataKeyFor(b.key) },
    ]);
    expect(report.ok).toBe(false);
    expect(report.totals.byCode).toEqual({ MISSING_METADATA: 1, ORPHAN_METADATA: 1 });
  });

  it('record count edited: RECORD_COUNT_MISMATCH', async () => {
    const o = objects[2]!;
    const meta = await readMeta(o);
    meta.record_count += 1;
    await writeMeta(o, meta);
    expect(findings(await validate())).toEqual([{ code: 'RECORD_COUNT_MISMATCH', key: o.key }]);
  });

  it('manifest edited: MANIFEST_MISMATCH', async () => {
    const o = objects[2]!;
    const meta = await readMeta(o);
    meta.primary_keys[1] = ['987654321'];
    await writeMeta(o, meta);
    const report = await validate();
    expect(findings(report)).toEqual([{ code: 'MANIFEST_MISMATCH', key: o.key }]);
    expect(report.tables[0]!.findings[0]!.message).toContain('987654321');
  });

  it('metadata unreadable or of an unknown format version: METADATA_INVALID / UNKNOWN_FORMAT_VERSION', async () => {
    const [a, b] = [objects[0]!, objects[1]!];
    await store.put(metadataKeyFor(a.key), Buffer.from('{"format": "auditlog-archive", "format_version": 1, '));
    const meta = await readMeta(b);
    (meta as { format_version: number }).format_version = 2;
    await writeMeta(b, meta);
    expect(findings(await validate())).toEqual([
      { code: 'METADATA_INVALID', key: metadataKeyFor(a.key) },
      { code: 'UNKNOWN_FORMAT_VERSION', key: metadataKeyFor(b.key) },
    ]);
  });

  it('stray files under the table prefix and among the pending markers: STRAY_OBJECT', async () => {
    const day = objects[0]!.key.slice(0, objects[0]!.key.lastIndexOf('/') + 1);
    await store.put(`${day}notes.txt`, Buffer.from('hello'));
    await store.put(`${PREFIX}README`, Buffer.from('hello'));
    await store.put(`_auditlog/pending/${PREFIX}garbage`, Buffer.from('{}'));
    expect(findings(await validate())).toEqual([
      { code: 'STRAY_OBJECT', key: `_auditlog/pending/${PREFIX}garbage` },
      { code: 'STRAY_OBJECT', key: `${PREFIX}README` },
      { code: 'STRAY_OBJECT', key: `${day}notes.txt` },
    ]);
  });

  it('a batch duplicated under another key: DUPLICATE_KEY on the copy', async () => {
    const o = objects[1]!;
    const copy = o.key.replace(/\/([^/]+)$/, '/zz-copy-$1');
    await store.put(copy, (await store.get(o.key))!);
    await store.put(metadataKeyFor(copy), (await store.get(metadataKeyFor(o.key)))!);
    const report = await validate();
    // Copied verbatim, the sidecar still names the original object.
    expect(findings(report)).toEqual([
      { code: 'DUPLICATE_KEY', key: copy },
      { code: 'DATA_OBJECT_MISMATCH', key: metadataKeyFor(copy) },
    ]);
    expect(report.tables[0]!.findings[0]!.count).toBe(o.meta.record_count);
    expect(report.tables[0]!.findings[0]!.message).toContain(o.key);
  });

  it('a sidecar whose data_object names another object, or none: DATA_OBJECT_MISMATCH on the sidecar, the rest still checked (found by probing)', async () => {
    const [a, b, c, d] = [objects[0]!, objects[1]!, objects[2]!, objects[3]!];
    const name = (key: string): string => key.slice(key.lastIndexOf('/') + 1);
    const edit = async (o: InspectedObject, change: (m: Record<string, unknown>) => void): Promise<void> => {
      const meta = (await readMeta(o)) as unknown as Record<string, unknown>;
      change(meta);
      await writeMeta(o, meta as unknown as BatchMetadata);
    };
    await edit(a, (m) => (m.data_object = name(b.key)));
    await edit(b, (m) => delete m.data_object);
    await edit(c, (m) => (m.data_object = 7));
    // A sidecar that names another object and also describes other bytes: both are said.
    await edit(d, (m) => {
      m.data_object = name(a.key);
      m.compressed_bytes = (m.compressed_bytes as number) + 1;
    });
    for (const deep of [true, false]) {
      const report = await validate(deep ? {} : { deepThreshold: 0 });
      expect(report.deep).toBe(deep);
      expect(findings(report)).toEqual([
        { code: 'DATA_OBJECT_MISMATCH', key: metadataKeyFor(a.key) },
        { code: 'DATA_OBJECT_MISMATCH', key: metadataKeyFor(b.key) },
        { code: 'DATA_OBJECT_MISMATCH', key: metadataKeyFor(c.key) },
        { code: 'SIZE_MISMATCH', key: d.key },
        { code: 'DATA_OBJECT_MISMATCH', key: metadataKeyFor(d.key) },
      ]);
      expect(report.ok).toBe(false);
      expect(report.totals).toMatchObject({ problems: 5, warnings: 0, byCode: { DATA_OBJECT_MISMATCH: 4, SIZE_MISMATCH: 1 } });
      // The rest of each sidecar was still checked and its rows counted.
      expect(report.totals.rows).toBe(ROWS);
      const messages = report.tables[0]!.findings.filter((f) => f.code === 'DATA_OBJECT_MISMATCH').map((f) => f.message);
      expect(messages[0]).toContain(`data_object is "${name(b.key)}", expected "${name(a.key)}" (the data object ${a.key} this sidecar sits beside)`);
      expect(messages[1]).toContain(`data_object is missing, expected "${name(b.key)}"`);
      expect(messages[2]).toContain(`data_object is a number, not a file name, expected "${name(c.key)}"`);
      for (const m of messages) expect(m).toContain("restore this object's own sidecar from a backup");
    }
  });

  it('content a faulty writer could produce: unparseable line, timestamps outside the partition or range, wrong uncompressed SHA-256', async () => {
    const [a, b, c, d] = [objects[0]!, objects[1]!, objects[2]!, objects[3]!];
    await rewriteLines(a, (lines) => lines.map((l, i) => (i === 2 ? l.slice(0, -3) : l)), (m) => (m.sha256_uncompressed = sha256Hex(Buffer.from('x'))));
    // Another UTC day for one line: same length, so only the timestamp changes.
    const otherDay = (l: string): string => l.replace(/"happened_at":"(\d{4})-(\d{2})-(\d{2})/, (_m, y: string, mo: string, d: string) => `"happened_at":"${y}-${mo}-${d === '01' ? '02' : '01'}`);
    let bLines: string[] = [];
    await rewriteLines(
      b,
      (lines) => (bLines = lines.map((l, i) => (i === 0 ? otherDay(l) : l))),
      (m) => (m.sha256_uncompressed = sha256Hex(Buffer.from(bLines.join('\n') + '\n'))),
    );
    // The metadata claims a narrower range than the rows have.
    await rewriteLines(c, (lines) => lines, (m) => (m.max_timestamp = m.min_timestamp));
    await rewriteLines(d, (lines) => lines, (m) => (m.sha256_uncompressed = '0'.repeat(64)));
    const report = await validate();
    expect(findings(report)).toEqual(
      [
        { code: 'LINE_UNPARSEABLE', key: a.key },
        { code: 'SHA256_UNCOMPRESSED_MISMATCH', key: a.key },
        { code: 'TIMESTAMP_OUT_OF_PARTITION', key: b.key },
        ...(c.meta.record_count > 1 ? [{ code: 'TIMESTAMP_OUT_OF_RANGE', key: c.key }] : []),
        { code: 'SHA256_UNCOMPRESSED_MISMATCH', key: d.key },
      ].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.code < y.code ? -1 : 1)),
    );
  });

  it('bytes that match the metadata but do not decompress: DECOMPRESS_FAILED', async () => {
    const o = objects[0]!;
    const body = Buffer.from('definitely not gzip');
    await store.put(o.key, body);
    const meta = await readMeta(o);
    meta.compressed_bytes = body.length;
    meta.sha256_compressed = sha256Hex(body);
    await writeMeta(o, meta);
    expect(findings(await validate())).toEqual([{ code: 'DECOMPRESS_FAILED', key: o.key }]);
  });

  it('--from/--to: only that range is listed and checked', async () => {
    const days = [...new Set(objects.map((o) => /year=(\d{4})\/month=(\d{2})\/day=(\d{2})/.exec(o.key)!.slice(1).join('-')))].sort();
    expect(days.length).toBeGreaterThanOrEqual(3);
    const day = days[1]!;
    const inDay = objects.filter((o) => o.key.includes(`year=${day.slice(0, 4)}/month=${day.slice(5, 7)}/day=${day.slice(8)}/`));
    // Damage outside the range must not show.
    await store.delete(metadataKeyFor(objects.find((o) => !inDay.includes(o))!.key));
    const spy = new ListSpyStore(store);
    const report = await validateArchive({ config, store: spy, databases: config.databases, range: { from: day, to: day }, deepThreshold: 100, concurrency: 2, checkDatabase: false });
    expect(findings(report)).toEqual([]);
    expect(report.totals.objects).toBe(inDay.length);
    expect(report.totals.rows).toBe(inDay.reduce((n, o) => n + o.meta.record_count, 0));
    expect(spy.listed).toEqual([`${PREFIX}year=${day.slice(0, 4)}/month=${day.slice(5, 7)}/day=${day.slice(8)}/`, `_auditlog/pending/${PREFIX}`]);
  });

  it('an open range (listed as the whole table) reports the strays inside the range, as a closed range does (found by probing)', async () => {
    const days = [...new Set(objects.map((o) => /(year=\d{4}\/month=\d{2}\/day=\d{2}\/)/.exec(o.key)![1]!))].sort();
    const [first, last] = [days[0]!, days.at(-1)!];
    const dayOf = (partition: string): string => /year=(\d{4})\/month=(\d{2})\/day=(\d{2})/.exec(partition)!.slice(1).join('-');
    await store.put(`${PREFIX}${last}notes.txt`, Buffer.from('in the range'));
    await store.put(`${PREFIX}${first}notes.txt`, Buffer.from('before the range'));
    await store.put(`${PREFIX}README`, Buffer.from('in no partition'));
    const from = dayOf(last);
    for (const range of [
      { from, to: '9999-12-31' },
      { from, to: from },
    ]) {
      expect(findings(await validate({ range })), JSON.stringify(range)).toEqual([{ code: 'STRAY_OBJECT', key: `${PREFIX}${last}notes.txt` }]);
    }
  });

  it('--check-database: ROW_STILL_IN_TABLE for archived rows back in the table in the archived version; an archived key in another version is a warning', async () => {
    expect(findings(await validate({ checkDatabase: true }))).toEqual([]);
    // A row under an archived key in another version (restored, or the key reused): a warning
    // (found in the issue audit: it used to pass unseen), the run still clean.
    const reused = objects[0]!.meta.primary_keys[0]![0]!;
    await db.query(`INSERT INTO events (id, happened_at) VALUES ($1, now() - interval '20 days')`, [reused]);
    const again = await validate({ checkDatabase: true });
    expect(findings(again)).toEqual([{ code: 'KEY_IN_TABLE_AGAIN', key: objects[0]!.key }]);
    expect(again.tables[0]!.findings[0]!.severity).toBe('warning');
    expect(again.tables[0]!.problems).toBe(0);
    expect(again.tables[0]!.findings[0]!.message).toContain(`(e.g. key ("${reused}"))`);
    // The archived version itself still in the table: claim the new row's version in the manifest.
    const xmin = (await db.query<{ x: string }>('SELECT xmin::text AS x FROM events WHERE id = $1', [reused])).rows[0]!.x;
    const meta = await readMeta(objects[0]!);
    meta.xmins[0] = xmin;
    await writeMeta(objects[0]!, meta);
    const report = await validate({ checkDatabase: true });
    expect(findings(report)).toEqual([{ code: 'ROW_STILL_IN_TABLE', key: objects[0]!.key }]);
    expect(report.tables[0]!.findings[0]!.count).toBe(1);
    expect(report.tables[0]!.findings[0]!.severity).toBe('problem');
    // Key values quoted, as everywhere a key is shown: a text key may hold commas or nothing.
    expect(report.tables[0]!.findings[0]!.message).toContain(`(e.g. key ("${reused}"))`);
  });

  it('--check-database checks a table that gained a DELETE trigger, a rule ON DELETE and a cascading reference since it was archived: those only refuse deletes (found in review)', async () => {
    await db.query(`CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN old; END $$`);
    await db.query(`CREATE TRIGGER log_del AFTER DELETE ON events FOR EACH ROW EXECUTE FUNCTION noop()`);
    await db.query(`CREATE RULE keep AS ON DELETE TO events DO INSTEAD NOTHING`);
    await db.query(`CREATE TABLE child (id bigint REFERENCES events (id) ON DELETE CASCADE)`);
    const report = await validate({ checkDatabase: true });
    expect(report.ok).toBe(true);
    expect(findings(report)).toEqual([]);
    expect(report.tables[0]!.rows).toBe(ROWS);
  });

  it('an uncommitted object (pending marker) is a warning, listed apart, and not checked as corruption', async () => {
    const o = objects[4]!;
    // As a crash after the upload leaves it: the marker, the data object, no sidecar yet.
    await store.delete(metadataKeyFor(o.key));
    const day = /year=(\d{4})\/month=(\d{2})\/day=(\d{2})/.exec(o.key)!.slice(1).join('-');
    const name = o.key.slice(o.key.lastIndexOf('/') + 1, -'.jsonl.gz'.length);
    await store.put(pendingMarkerKey(PREFIX, day, name), Buffer.from('{}'));
    const report = await validate();
    expect(findings(report)).toEqual([{ code: 'UNCOMMITTED_OBJECT', key: o.key }]);
    expect(report.ok).toBe(true);
    expect(report.totals).toMatchObject({ problems: 0, warnings: 1, rows: ROWS - o.meta.record_count });
  });
});

describe('validate a table with a composite key, a quoted name and timestamp keys (local backend)', () => {
  it('is clean after archiving, and still finds a manifest edit and a row back in the table', async () => {
    const db = await createTestDatabase();
    try {
      await db.query(`CREATE SCHEMA "Odd schema"`);
      await db.query(`CREATE TABLE "Odd schema"."weird ""name"";" (tenant text, seen timestamptz, id bigint, PRIMARY KEY (tenant, seen, id), body jsonb)`);
      await db.query(
        `INSERT INTO "Odd schema"."weird ""name"";" SELECT 't' || (g % 3), now() - interval '20 days' - make_interval(mins => g * 37), 9007199254740993 + g, jsonb_build_object('g', g) FROM generate_series(1, 30) g`,
      );
      const config = buildConfig({
        local: { path: join(dir, `composite-${Date.now()}`) },
        defaults: { retention_days: 10, batch_size: 6 },
        databases: [{ name: 'app', url: db.url, tables: [{ name: 'weird "name";', schema: 'Odd schema', timestamp_column: 'seen' }] }],
      });
      const store = new LocalObjectStore(config.local!);
      expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(30);
      const options = { config, store, databases: config.databases, deepThreshold: 100, concurrency: 3, checkDatabase: true };
      const clean = await validateArchive(options);
      expect(clean.tables[0]!.findings).toEqual([]);
      expect(clean.totals.rows).toBe(30);

      const objects = (await inspectArchive(store)).objects;
      // Two lines at least (line 2 is edited below). Which object that is depends on the time of
      // day: a UTC day boundary can leave a one-row batch anywhere (objects[1] was one at 14:16).
      const o = objects.filter((x) => x.meta.record_count >= 2)[1]!;
      const meta = JSON.parse((await store.get(metadataKeyFor(o.key)))!.toString('utf8')) as BatchMetadata;
      // Put one archived row back in exactly its archived version's key, and claim that version in the manifest.
      const line = JSON.parse(o.lines[0]!) as { tenant: string; seen: string; id: number };
      const key = meta.primary_keys[0]!;
      await db.query(`INSERT INTO "Odd schema"."weird ""name"";" (tenant, seen, id) VALUES ($1, $2, $3)`, key);
      const xmin = (await db.query<{ x: string }>(`SELECT xmin::text AS x FROM "Odd schema"."weird ""name"";" WHERE tenant = $1 AND seen = $2 AND id = $3`, key)).rows[0]!.x;
      meta.xmins[0] = xmin;
      // And make the manifest disagree with line 2 in its bigint column beyond 2^53 only by the last digit.
      meta.primary_keys[1] = [meta.primary_keys[1]![0]!, meta.primary_keys[1]![1]!, String(BigInt(meta.primary_keys[1]![2]!) + 1n)];
      await store.put(metadataKeyFor(o.key), serializeMetadata(meta));
      expect(line.tenant).toBe(key[0]);
      const report = await validateArchive(options);
      expect(report.tables[0]!.findings.map((f) => [f.code, f.key])).toEqual([
        ['MANIFEST_MISMATCH', o.key],
        ['ROW_STILL_IN_TABLE', o.key],
      ]);
    } finally {
      await db.drop();
    }
  });
});

describe('validate (s3 backend): keys the tool never writes', () => {
  it('a pair named with a backslash (which no store call may read) is two STRAY_OBJECTs, and the rest is validated', async () => {
    const db = await createTestDatabase();
    try {
      await createEventsTable(db, { rows: 12, stepMinutes: 120, endDaysAgo: 11 });
      const prefix = `bs-${Date.now()}/`;
      const config = buildConfig({ s3: s3.s3Config({ prefix }), defaults: { retention_days: 10, batch_size: 7 }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] });
      const store = new S3ObjectStore(config.s3!);
      expect((await archiveWith(config, store)).tables[0]!.rowsArchived).toBe(12);
      const day = `${prefix}${PREFIX}year=2025/month=10/day=26/`;
      await s3.seedObjects([
        { key: `${day}copy\\of.jsonl.gz`, body: Buffer.from('x') },
        { key: `${day}copy\\of.metadata.json`, body: Buffer.from('{}') },
      ]);
      const report = await validateArchive({ config, store, databases: config.databases, deepThreshold: 100, concurrency: 4, checkDatabase: false });
      expect(report.tables[0]!.findings.map((f) => [f.code, f.key])).toEqual([
        ['STRAY_OBJECT', `${PREFIX}year=2025/month=10/day=26/copy\\of.jsonl.gz`],
        ['STRAY_OBJECT', `${PREFIX}year=2025/month=10/day=26/copy\\of.metadata.json`],
      ]);
      expect(report.totals.rows).toBe(12);
    } finally {
      await db.drop();
    }
  });
});
