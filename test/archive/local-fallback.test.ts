/**
 * local_fallback_dir (issue #3 item 6): batches that fail because storage is down are spooled
 * locally with their rows kept in the table; the next run archives them first through the normal
 * pipeline, deleting only rows still in the spooled version; stale or mismatched spools are discarded.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { runCli } from '../helpers/run-cli.js';
import pino from 'pino';
import { createHash } from 'node:crypto';
import { spooledIndexText } from '../../src/archive/local-fallback.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { buildConfig } from '../helpers/archive-run.js';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import type { FallbackBatch } from '../../src/archive/local-fallback.js';
import type { Config } from '../../src/config/schema.js';

const fx = useArchiveFixture();
let proxy: FaultProxy;
let spoolDir: string;
beforeEach(async () => {
  proxy = await startFaultProxy(fx.s3.endpoint);
  spoolDir = await mkdtemp(join(tmpdir(), 'spool-'));
});
afterEach(async () => {
  await proxy.stop();
});

function config(extra: Partial<Config> = {}): Config {
  const c = fx.configFor([eventsTable], { batch_size: 6 });
  return { ...c, s3: { ...c.s3!, endpoint: proxy.endpoint, retry: { ...c.s3!.retry, max_attempts: 2, base_delay_ms: 1, max_delay_ms: 2 } }, local_fallback_dir: spoolDir, ...extra };
}

/** Storage stops accepting writes after `n` data objects. */
function storageDownAfter(n: number): void {
  let dataPuts = 0;
  proxy.rule = ({ method, path }) => {
    if (method === 'PUT' && path.includes('.jsonl.gz')) dataPuts++;
    return method === 'PUT' && dataPuts > n ? { status: 503, code: 'ServiceUnavailable' } : 'pass';
  };
}

async function spooled(): Promise<{ file: string; doc: FallbackBatch }[]> {
  // The spool's own files only (the tests below put foreign files next to them).
  const files = (await readdir(spoolDir, { recursive: true })).filter((f) => /^[^/]+\/[^/]+\/\d{4}-\d{2}-\d{2}-\d{12}-[0-9a-f]{16}\.json$/.test(f));
  return Promise.all(files.map(async (f) => ({ file: join(spoolDir, f), doc: JSON.parse(await readFile(join(spoolDir, f), 'utf8')) as FallbackBatch })));
}

async function oldIds(): Promise<string[]> {
  const r = await fx.db.query<{ id: string }>(`SELECT id::text AS id FROM events WHERE happened_at < now() - interval '10 days' ORDER BY id`);
  return r.rows.map((x) => x.id);
}

const spooledIds = (items: { doc: FallbackBatch }[]): string[] => items.flatMap((i) => i.doc.rows.keys.map((k) => k[0]!));

describe('local fallback', () => {
  it('spools batches while storage is down without deleting their rows, and archives them first once it is back', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const old = await oldIds();
    storageDownAfter(2);
    const down = await archiveWith(config(), new S3ObjectStore(config().s3!));
    expect(down.tables[0]!.status).toBe('failed');
    expect(down.tables[0]!.spooledBatches).toBeGreaterThan(0);
    const items = await spooled();
    expect(items).toHaveLength(down.tables[0]!.spooledBatches!);
    // A spooled batch is a copy, not an archive: every one of its rows is still in the table.
    const left = new Set(await rowIds(fx.db));
    for (const id of spooledIds(items)) expect(left.has(id), `row ${id}`).toBe(true);

    const file = join(await mkdtemp(join(tmpdir(), 'spool-cfg-')), 'c.json');
    await writeFile(file, JSON.stringify(config()));
    const status = await runCli(['status', '--config', file]);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`spooled:    ${items.length} batch(es) in local_fallback_dir`);

    proxy.rule = () => 'pass';
    const back = await archiveWith(config(), new S3ObjectStore(config().s3!));
    expect(back.tables[0]!.status).toBe('archived');
    expect(back.tables[0]!.replayedBatches).toBe(items.length);
    expect(await spooled()).toEqual([]);
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect([...counts.keys()].sort()).toEqual([...old].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect((await rowIds(fx.db)).some((id) => old.includes(id))).toBe(false);
  });

  it('never spools a table that must be encrypted at rest: its rows wait in the table, nothing is written to the local disk', async () => {
    // Found in review: a critical table's rows were written in clear to local_fallback_dir.
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    storageDownAfter(0);
    const base = config();
    const c: Config = { ...base, s3: { ...base.s3!, sse: 'AES256' }, databases: [{ ...base.databases[0]!, tables: [{ ...base.databases[0]!.tables[0]!, critical: true }] }] };
    const down = await archiveWith(c, new S3ObjectStore(c.s3!));
    expect(down.tables[0]!.status).toBe('failed');
    expect(down.tables[0]!.spooledBatches).toBeUndefined();
    expect(await spooled()).toEqual([]);
    expect(await rowIds(fx.db)).toHaveLength(20);
  });

  it('leaves out of the replay the rows a legal hold placed since the spool now matches: never uploaded, still in the table (found in review)', async () => {
    await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
    storageDownAfter(0);
    const down = await archiveWith(config(), new S3ObjectStore(config().s3!));
    expect(down.tables[0]!.spooledBatches).toBeGreaterThan(0);
    expect(spooledIds(await spooled())).toContain('3');

    proxy.rule = () => 'pass';
    const held: Config = { ...config(), legal_holds: { ...config().legal_holds, enabled: true, holds: [{ table: 'events', where: 'id = 3', reason: 'Case 7' }] } };
    const inner = new S3ObjectStore(held.s3!);
    const uploaded: string[] = [];
    const recording = Object.assign(Object.create(Object.getPrototypeOf(inner) as object) as S3ObjectStore, inner, {
      put: async (key: string, body: Buffer, options?: Parameters<S3ObjectStore['put']>[2]) => {
        if (key.endsWith('.jsonl.gz')) uploaded.push(...gunzipSync(body).toString('utf8').split('\n').filter((l) => l !== ''));
        return inner.put(key, body, options);
      },
    });
    const back = await archiveWith(held, recording);
    expect(back.tables[0]!.error).toBeUndefined();
    expect(uploaded.length).toBeGreaterThan(0);
    expect(uploaded.map((l) => (JSON.parse(l) as { id: number }).id)).not.toContain(3);
    expect(await rowIds(fx.db)).toEqual(['3']);
    expect(await spooled()).toEqual([]);
  });

  it('deletes only rows still in the spooled version: a row updated meanwhile is archived in its new version', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    storageDownAfter(0);
    await archiveWith(config(), new S3ObjectStore(config().s3!));
    const items = await spooled();
    const changed = spooledIds(items)[1]!;
    await fx.db.query(`UPDATE events SET note = 'changed after spooling' WHERE id = $1`, [changed]);
    const newVersion = (await fx.db.query<{ line: string }>('SELECT row_to_json(t)::text AS line FROM events t WHERE id = $1', [changed])).rows[0]!.line;

    proxy.rule = () => 'pass';
    const back = await archiveWith(config(), new S3ObjectStore(config().s3!));
    expect(back.tables[0]!.status).toBe('archived');
    const archive = await inspectArchive(fx.store);
    const lines = archive.objects.flatMap((o) => o.meta.primary_keys.map((k, i) => [k[0]!, o.lines[i]!] as const)).filter(([k]) => k === changed);
    expect(lines).toEqual([[changed, newVersion]]);
  });

  it('discards a spooled batch that is too old or was written for other columns; its rows are archived as read now', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const oldBefore = await oldIds();
    storageDownAfter(0);
    await archiveWith(config(), new S3ObjectStore(config().s3!));
    const items = await spooled();
    expect(items.length).toBeGreaterThan(0);
    // Make them look three days old; with a one-day retention they are discarded.
    for (const { file, doc } of items) await writeFile(file, JSON.stringify({ ...doc, created_at: new Date(Date.now() - 3 * 86_400_000).toISOString() }));
    proxy.rule = () => 'pass';
    const r1 = await archiveWith(config({ local_fallback_retention_days: 1 }), new S3ObjectStore(config().s3!));
    expect(r1.tables[0]!.replayedBatches).toBeUndefined();
    expect(r1.tables[0]!.rowsArchived).toBe(oldBefore.length);
    expect(await oldIds()).toEqual([]);
    expect(await spooled()).toEqual([]);

    // A column added after spooling (xmin unchanged by ADD COLUMN): the spool's lines lack it.
    await createEventsTable(fx.db, { table: 'events2', rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const c2 = (): Config => ({ ...config(), databases: [{ ...config().databases[0]!, tables: [{ name: 'events2', schema: 'public', timestamp_column: 'happened_at' }] }] });
    storageDownAfter(0);
    await archiveWith(c2(), new S3ObjectStore(config().s3!));
    expect((await spooled()).length).toBeGreaterThan(0);
    await fx.db.query(`ALTER TABLE events2 ADD COLUMN source text DEFAULT 'added'`);
    proxy.rule = () => 'pass';
    const r2 = await archiveWith(c2(), new S3ObjectStore(config().s3!));
    expect(r2.tables[0]!.replayedBatches).toBeUndefined();
    expect(r2.tables[0]!.rowsArchived).toBe(20);
    const archive = await inspectArchive(fx.store);
    const events2 = archive.objects.filter((o) => o.meta.table === 'events2');
    expect(events2.flatMap((o) => o.lines).every((l) => (JSON.parse(l) as { source: string }).source === 'added')).toBe(true);
  });

  it('a replay with local_fallback_dir equal to local.path keeps every committed sidecar (found in review: it deleted them all)', async () => {
    // The config schema refuses this now; the spool must be safe on its own anyway (a symlink,
    // a config written before the check): it touches only files named as it names its own.
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const expected = await expectRowsOf(fx.db, { table: 'events' });
    const dir = await mkdtemp(join(tmpdir(), 'archive-and-spool-'));
    const c: Config = { ...buildConfig({ local: { path: dir }, defaults: { retention_days: 10, batch_size: 6 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] }), local_fallback_dir: dir };
    const sidecars = async (): Promise<string[]> => (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.metadata.json')).sort();
    const r1 = await archiveWith(c, new LocalObjectStore(c.local!));
    expect(r1.tables[0]!.status).toBe('archived');
    const committed = await sidecars();
    expect(committed.length).toBeGreaterThan(0);

    const r2 = await archiveWith(c, new LocalObjectStore(c.local!));
    expect(r2.tables[0]!.error).toBeUndefined();
    expect(await sidecars()).toEqual(committed);
    const report = await checkArchiveInvariant({ db: fx.db, table: { table: 'events' }, source: { local: { path: dir } }, expected });
    expect(report.problems).toEqual([]);
    expect(report.rowsArchived).toBe(30);
  });

  it('lists, counts and deletes only its own files: foreign files in the spool directory are left alone and not counted by status', async () => {
    await createEventsTable(fx.db, { rows: 12, stepMinutes: 60, endDaysAgo: 11 });
    storageDownAfter(0);
    const down = await archiveWith(config(), new S3ObjectStore(config().s3!));
    const items = await spooled();
    expect(items.length).toBeGreaterThan(0);
    expect(down.tables[0]!.spooledBatches).toBe(items.length);
    const tableDir = join(spoolDir, 'app', 'public.events');
    const foreign = [
      join(tableDir, 'year=2025', 'month=01', 'day=01', '000000000000-0123456789abcdef.metadata.json'),
      join(tableDir, 'notes.json'),
      join(tableDir, '2025-01-01-000000000000-0123456789abcdef.json.bak'),
      join(tableDir, 'sub', '2025-01-01-000000000000-0123456789abcdef.json'),
    ];
    for (const f of foreign) {
      await mkdir(join(f, '..'), { recursive: true });
      await writeFile(f, 'null\n');
    }

    const file = join(await mkdtemp(join(tmpdir(), 'spool-cfg-')), 'c.json');
    await writeFile(file, JSON.stringify(config()));
    const status = await runCli(['status', '--config', file]);
    expect(status.stdout).toContain(`spooled:    ${items.length} batch(es) in local_fallback_dir`);

    proxy.rule = () => 'pass';
    const back = await archiveWith(config(), new S3ObjectStore(config().s3!));
    expect(back.tables[0]!.status).toBe('archived');
    expect(back.tables[0]!.replayedBatches).toBe(items.length);
    expect(await spooled()).toEqual([]);
    for (const f of foreign) expect(await readFile(f, 'utf8'), f).toBe('null\n');
  });
});

/** A logger that keeps the messages it is given (warnings and up), to check what a run said. */
function capturingLogger(): { logger: pino.Logger; warnings: () => { msg: string; file?: string; reason?: string }[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  return { logger, warnings: () => lines.map((l) => JSON.parse(l) as { msg: string; file?: string; reason?: string }).filter((l) => l.msg.startsWith('discarding a spooled batch')) };
}

/** Storage down for one run: the table's old rows are spooled (and still in the table). */
async function spoolAll(rows: number): Promise<{ file: string; doc: FallbackBatch }> {
  await createEventsTable(fx.db, { rows, stepMinutes: 60, endDaysAgo: 11 });
  storageDownAfter(0);
  const down = await archiveWith(config(), new S3ObjectStore(config().s3!));
  expect(down.tables[0]!.spooledBatches).toBe(1);
  const items = await spooled();
  expect(items).toHaveLength(1);
  return items[0]!;
}

/** Storage back: one run, then the table-or-archive invariant with exact content, and an empty spool. */
async function replayAndCheck(expected: Awaited<ReturnType<typeof expectRowsOf>>): Promise<{ warnings: ReturnType<ReturnType<typeof capturingLogger>['warnings']> }> {
  proxy.rule = () => 'pass';
  const log = capturingLogger();
  const back = await archiveWith(config(), new S3ObjectStore(config().s3!), { logger: log.logger });
  // Data first: every row in the table or archived exactly once, its archived line the row's own.
  const report = await checkArchiveInvariant({ db: fx.db, table: { table: 'events' }, source: { s3: fx.s3cfg }, expected });
  expect(report.problems).toEqual([]);
  expect(report.rowsArchived).toBe(expected.lines.size);
  expect(report.rowsInTable).toBe(0);
  expect(back.tables[0]!.error).toBeUndefined();
  expect(back.tables[0]!.status).toBe('archived');
  expect(back.tables[0]!.replayedBatches).toBeUndefined();
  expect(await spooled()).toEqual([]);
  return { warnings: log.warnings() };
}

describe('local fallback: a damaged spool file is discarded, never archived (found in review)', () => {
  it('one byte of the spooled lines changed: discarded with a warning, the rows are archived as they are in the table', async () => {
    const { file, doc } = await spoolAll(6);
    const expected = await expectRowsOf(fx.db, { table: 'events' });
    const lines = Buffer.from(doc.rows.lines_base64, 'base64');
    const at = lines.indexOf('"note":"note');
    expect(at).toBeGreaterThan(-1);
    lines[at + 9] = 'N'.charCodeAt(0);
    await writeFile(file, JSON.stringify({ ...doc, rows: { ...doc.rows, lines_base64: lines.toString('base64') } }));
    const { warnings } = await replayAndCheck(expected);
    expect(warnings).toEqual([expect.objectContaining({ file: expect.stringContaining('app/public.events/') as unknown, reason: expect.stringContaining('checksum') as unknown })]);
  });

  it('two keys of one transaction (same xmin) swapped: discarded, no row is deleted under another row\'s content', async () => {
    const { file, doc } = await spoolAll(6);
    expect(new Set(doc.rows.xmins).size).toBe(1);
    const expected = await expectRowsOf(fx.db, { table: 'events' });
    const keys = doc.rows.keys.map((k) => [...k]);
    [keys[1], keys[2]] = [keys[2]!, keys[1]!];
    await writeFile(file, JSON.stringify({ ...doc, rows: { ...doc.rows, keys } }));
    const { warnings } = await replayAndCheck(expected);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.reason).toContain('checksum');
  });

  it('a current-format file without its checksums, and an older (version 2) file, are discarded', async () => {
    const { file, doc } = await spoolAll(6);
    const expected = await expectRowsOf(fx.db, { table: 'events' });
    const { lines_sha256: _l, index_sha256: _i, ...unchecked } = doc;
    await writeFile(file, JSON.stringify(unchecked));
    const second = file.replace(/-[0-9a-f]{16}\.json$/, '-00000000000000ff.json');
    await writeFile(second, JSON.stringify({ ...unchecked, version: 2 }));
    const { warnings } = await replayAndCheck(expected);
    expect(warnings.map((w) => w.reason).sort()).toEqual([expect.stringContaining('checksum'), expect.stringContaining('checksum')]);
  });
});

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

describe('local fallback: a spool file that cannot be used is discarded, never blocks the table (found in review)', () => {
  it('null, non-objects, missing fields, a missing line, a short key list: each discarded with a warning naming it, the rows archived from the table', async () => {
    const { file, doc } = await spoolAll(6);
    const expected = await expectRowsOf(fx.db, { table: 'events' });
    const dir = join(file, '..');
    const name = (i: number): string => join(dir, `2020-01-01-000000000000-${i.toString(16).padStart(16, '0')}.json`);
    // One line gone, with checksums that match (a writer's bug, not the disk): the shape must catch it.
    const lines = Buffer.from(doc.rows.lines_base64, 'base64').toString('utf8').split('\n');
    lines.splice(2, 1);
    const shortLines = Buffer.from(lines.join('\n'));
    const missingLine = { ...doc, rows: { ...doc.rows, lines_base64: shortLines.toString('base64') }, lines_sha256: sha256(shortLines) };
    const { lines_base64: _b, ...index } = doc.rows;
    const shortIndex = { ...index, keys: index.keys.slice(0, 5) };
    const shortKeys = { ...doc, rows: { ...doc.rows, keys: shortIndex.keys }, index_sha256: sha256(spooledIndexText(shortIndex)) };
    const bad: [string, string][] = [
      [file, JSON.stringify(missingLine)],
      [name(1), 'null\n'],
      [name(2), '[]'],
      [name(3), '"text"'],
      [name(4), '{}'],
      [name(5), JSON.stringify({ ...doc, rows: null })],
      [name(6), JSON.stringify(shortKeys)],
      [name(7), JSON.stringify({ ...doc, rows: { ...doc.rows, xmins: doc.rows.xmins.map(Number) } })],
      [name(8), '{"format": "auditlog-fallback-'],
    ];
    for (const [f, text] of bad) await writeFile(f, text);
    const { warnings } = await replayAndCheck(expected);
    expect(warnings.map((w) => join(spoolDir, w.file!)).sort()).toEqual(bad.map(([f]) => f).sort());
    expect(warnings.every((w) => typeof w.reason === 'string' && w.reason !== '')).toBe(true);
    // And the next run has nothing left to trip on.
    const again = await archiveWith(config(), new S3ObjectStore(config().s3!));
    expect(again.tables[0]!.error).toBeUndefined();
  });
});
