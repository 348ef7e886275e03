/**
 * A pending marker under this table's prefix that belongs to another table (before schema dots
 * were escaped, schema `a.b` table `c` and schema `a` table `b.c` shared one directory): its rows
 * are not in this table, so reconciliation would find "no archived version left", decide the
 * delete never ran and remove the object — the other archiver then deleted its rows against
 * nothing (test/archive/prefix-collision.test.ts). Such a marker is left alone, with its objects,
 * and reported; so is one of an older version (no table in it) whose sidecar names another table.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { dataKey, metadataKeyFor, pendingMarkerKey, tablePrefix } from '../../src/core/archive-layout.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import { serializeMarker, type PendingMarker } from '../../src/archive/pending-marker.js';

const fx = useArchiveFixture();

async function allKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of fx.store.list('')) keys.push(o.key);
  return keys;
}

const OTHER = { database: 'app', schema: 'elsewhere', table: 'events' };

/** Another table's in-flight batch (sidecar written, no delete started) planted under public.events' prefix. */
async function plantOtherTablesBatch(name: string, marker: Partial<PendingMarker>, withSidecar = true): Promise<string[]> {
  const prefix = tablePrefix('app', 'public', 'events');
  const day = '2020-01-01';
  const key = dataKey(prefix, day, name);
  const metaKey = metadataKeyFor(key);
  const markerKey = pendingMarkerKey(prefix, day, name);
  const data = Buffer.from('not this table\'s rows\n');
  const createdAt = '2020-01-02T00:00:00.000Z';
  await fx.store.put(markerKey, serializeMarker({ data_object: key, metadata_object: metaKey, run_id: 'other-run', created_at: createdAt, delete_txid: null, ...marker }));
  await fx.store.put(key, data);
  // Keys 1..3 are not in public.events in these versions: without the identity checks this is
  // "no delete started, every row changed meanwhile", and the object would be removed.
  if (withSidecar) {
    const meta = { ...OTHER, run_id: 'other-run', created_at: createdAt, sha256_compressed: sha256Hex(data), primary_keys: [['1'], ['2'], ['3']], xmins: ['1', '1', '1'] };
    await fx.store.put(metaKey, Buffer.from(JSON.stringify(meta)));
  }
  return withSidecar ? [key, metaKey, markerKey] : [key, markerKey];
}

describe('reconciliation and a marker of another table', () => {
  it('leaves a marker naming another table, and its objects, alone; the table archives as usual', async () => {
    await createEventsTable(fx.db, { rows: 4, stepMinutes: 60, endDaysAgo: 11 });
    const planted = [
      ...(await plantOtherTablesBatch('000000000000-aaaaaaaaaaaaaaaa', { table: OTHER, origin: undefined })),
      // No sidecar yet (uploaded, metadata not written): reconciliation would take it for "nothing written".
      ...(await plantOtherTablesBatch('000000000000-bbbbbbbbbbbbbbbb', { table: OTHER }, false)),
    ];
    const run = await archiveWith(fx.configFor([eventsTable], { batch_size: 50 }), fx.store);
    const keys = await allKeys();
    for (const k of planted) expect(keys).toContain(k);
    expect(run.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 4, otherTablesMarkers: 2 });
    expect(run.tables[0]!.reconciled).toBeUndefined();
    expect(await rowIds(fx.db)).toEqual([]);
  });

  it('leaves an older marker (no table in it) alone when its sidecar names another table', async () => {
    await createEventsTable(fx.db, { rows: 2, stepMinutes: 60, endDaysAgo: 11 });
    const planted = await plantOtherTablesBatch('000000000000-cccccccccccccccc', {});
    const run = await archiveWith(fx.configFor([eventsTable], { batch_size: 50 }), fx.store);
    const keys = await allKeys();
    for (const k of planted) expect(keys).toContain(k);
    expect(run.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 2, otherTablesMarkers: 1 });
  });

  it('still reconciles this table\'s own marker (with its identity) as before', async () => {
    await createEventsTable(fx.db, { rows: 2, stepMinutes: 60, endDaysAgo: 11 });
    const prefix = tablePrefix('app', 'public', 'events');
    const key = dataKey(prefix, '2020-01-01', '000000000000-dddddddddddddddd');
    await fx.store.put(pendingMarkerKey(prefix, '2020-01-01', '000000000000-dddddddddddddddd'), serializeMarker({ data_object: key, metadata_object: metadataKeyFor(key), run_id: 'r', created_at: '2020-01-02T00:00:00.000Z', delete_txid: null, table: { database: 'app', schema: 'public', table: 'events' } }));
    await fx.store.put(key, Buffer.from('x\n'));
    const run = await archiveWith(fx.configFor([eventsTable], { batch_size: 50 }), fx.store);
    expect(run.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 2, reconciled: { committed: 0, removed: 1 } });
    expect(run.tables[0]!.otherTablesMarkers).toBeUndefined();
    expect(await allKeys()).not.toContain(key);
  });
});
