/**
 * The checker the whole suite relies on must itself catch each violation it reports: an archive
 * damaged by hand after a clean run is judged, and every kind of damage shows in its figures.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable } from '../helpers/events-table.js';
import { expectRowsOf, type ExpectedRows } from '../helpers/invariant-checker.js';
import { checkNow, events, healthyRun } from './finish-and-check.js';

const fx = useArchiveFixture();
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** 20 archived rows (batch_size 7: three objects), and the first committed object's keys. */
async function archivedTable(): Promise<{ expected: ExpectedRows; data: string; meta: string }> {
  await createEventsTable(fx.db, { rows: 20, stepMinutes: 20, endDaysAgo: 11 });
  const expected = await expectRowsOf(fx.db, events);
  expect((await healthyRun(fx)).tables[0]!.rowsArchived).toBe(20);
  const keys: string[] = [];
  for await (const o of fx.store.list('')) keys.push(o.key);
  const data = keys.filter((k) => k.endsWith('.jsonl.gz')).sort()[0]!;
  const clean = await checkNow(fx, expected);
  expect(clean.problems).toEqual([]);
  return { expected, data, meta: data.replace(/\.jsonl\.gz$/, '.metadata.json') };
}

async function readMeta(key: string): Promise<Record<string, unknown> & { record_count: number; primary_keys: string[][] }> {
  return JSON.parse((await fx.store.get(key))!.toString('utf8'));
}

describe('the invariant checker', () => {
  it('counts the rows of a vanished object as lost', async () => {
    const { expected, data, meta } = await archivedTable();
    const { record_count } = await readMeta(meta);
    await fx.store.delete(data);
    await fx.store.delete(meta);
    const report = await checkNow(fx, expected);
    expect(report.rowsLost).toBe(record_count);
    expect(report.rowsArchived).toBe(20 - record_count);
  });

  it('counts the rows of an object copied under another key as duplicated', async () => {
    const { expected, data, meta } = await archivedTable();
    const { record_count } = await readMeta(meta);
    await fx.store.put(data.replace('.jsonl.gz', '-copy.jsonl.gz'), (await fx.store.get(data))!);
    await fx.store.put(meta.replace('.metadata.json', '-copy.metadata.json'), (await fx.store.get(meta))!);
    expect((await checkNow(fx, expected)).rowsDuplicated).toBe(record_count);
  });

  it('counts an archived row put back into the table', async () => {
    const { expected, meta } = await archivedTable();
    const [id] = (await readMeta(meta)).primary_keys[0]!;
    await fx.db.query(`INSERT INTO events SELECT * FROM json_populate_record(NULL::events, $1::json)`, [expected.lines.get(JSON.stringify([id]))]);
    const report = await checkNow(fx, expected);
    expect(report.rowsInTableAndArchive).toBe(1);
    expect(report.rowsLost).toBe(0);
  });

  it('counts a consistently rewritten line (checksums updated) as a stale copy', async () => {
    const { expected, data, meta } = await archivedTable();
    const lines = gunzipSync((await fx.store.get(data))!).toString('utf8').split('\n');
    lines[0] = lines[0]!.replace('"kind', '"KIND');
    const raw = Buffer.from(lines.join('\n'));
    const body = gzipSync(raw);
    await fx.store.put(data, body);
    const m = await readMeta(meta);
    await fx.store.put(meta, Buffer.from(JSON.stringify({ ...m, sha256_compressed: sha256(body), sha256_uncompressed: sha256(raw), compressed_bytes: body.length })));
    const report = await checkNow(fx, expected);
    expect(report.staleCopies).toBe(1);
    expect(report.rowsLost).toBe(0);
  });

  it('reports an object whose bytes no longer match its metadata, and does not count its rows as archived', async () => {
    const { expected, data, meta } = await archivedTable();
    const { record_count } = await readMeta(meta);
    const body = (await fx.store.get(data))!;
    body[body.length >> 1]! ^= 0x40;
    await fx.store.put(data, body);
    const report = await checkNow(fx, expected);
    expect(report.problems[0]).toContain('stored bytes do not match the metadata');
    expect(report.rowsLost).toBe(record_count);
  });
});
