/**
 * Integrity before loading: an object with one flipped byte, one rewritten with only its stored
 * SHA-256 updated, a truncated object, an object whose
 * metadata is missing, one whose record count is wrong (checksums consistent), and one whose
 * manifest names other keys than its lines hold are each caught by key before any of its rows
 * is loaded; --on-corrupt fail stops the run, --on-corrupt skip restores the others.
 * Uncommitted objects (pending marker) are reported and never restored.
 */
import { describe, expect, it } from 'vitest';
import { gunzipSync, gzipSync } from 'node:zlib';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { archiveWith } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable } from '../helpers/events-table.js';
import { restoreWith } from '../helpers/restore-run.js';
import { metadataKeyFor, tablePrefix, pendingMarkerKey } from '../../src/core/archive-layout.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import { dayOfKey } from '../../src/restore/select-objects.js';

const f = useArchiveFixture();

type Corruption = { name: string; check: RegExp; apply: (key: string) => Promise<void> };

const corruptions: Corruption[] = [
  {
    name: 'one flipped byte',
    check: /SHA-256 of the stored bytes/,
    async apply(key) {
      const body = (await f.store.get(key))!;
      const at = Math.floor(body.length / 2);
      body[at] = body[at]! ^ 0x01;
      await f.store.put(key, body);
    },
  },
  {
    name: 'content rewritten with the stored SHA-256 updated but not the decompressed one',
    check: /SHA-256 of the decompressed bytes/,
    async apply(key) {
      const lines = gunzipSync((await f.store.get(key))!).toString('utf8').replace('"kind', '"KIND');
      const body = gzipSync(Buffer.from(lines, 'utf8'));
      const meta = JSON.parse((await f.store.get(metadataKeyFor(key)))!.toString('utf8'));
      meta.sha256_compressed = sha256Hex(body);
      meta.compressed_bytes = body.length;
      await f.store.put(key, body);
      await f.store.put(metadataKeyFor(key), Buffer.from(JSON.stringify(meta)));
    },
  },
  {
    name: 'truncated object',
    check: /SHA-256 of the stored bytes/,
    async apply(key) {
      const body = (await f.store.get(key))!;
      await f.store.put(key, body.subarray(0, Math.floor(body.length / 2)));
    },
  },
  {
    name: 'metadata missing',
    check: /metadata sidecar is missing/,
    async apply(key) {
      await f.store.delete(metadataKeyFor(key));
    },
  },
  {
    name: 'record count wrong (checksums consistent)',
    check: /holds 6 lines but record_count is 7/,
    async apply(key) {
      const meta = JSON.parse((await f.store.get(metadataKeyFor(key)))!.toString('utf8'));
      const { lines } = (await inspectArchive(f.store)).objects.find((o) => o.key === key)!;
      const raw = Buffer.from(lines.slice(1).join('\n') + '\n');
      const body = gzipSync(raw);
      await f.store.put(key, body);
      await f.store.put(metadataKeyFor(key), Buffer.from(JSON.stringify({ ...meta, sha256_uncompressed: sha256Hex(raw), sha256_compressed: sha256Hex(body) })));
    },
  },
  {
    // Found by probing: the error named the batch's first object, not the damaged one, and --on-corrupt skip could not leave it out.
    name: 'a line that is not JSON (checksums consistent)',
    check: /line 2 is not a JSON line restore can load/,
    async apply(key) {
      const meta = JSON.parse((await f.store.get(metadataKeyFor(key)))!.toString('utf8'));
      const { lines } = (await inspectArchive(f.store)).objects.find((o) => o.key === key)!;
      const raw = Buffer.from([lines[0], 'not json', ...lines.slice(2)].join('\n') + '\n');
      const body = gzipSync(raw);
      await f.store.put(key, body);
      await f.store.put(
        metadataKeyFor(key),
        Buffer.from(JSON.stringify({ ...meta, sha256_uncompressed: sha256Hex(raw), sha256_compressed: sha256Hex(body), uncompressed_bytes: raw.length, compressed_bytes: body.length })),
      );
    },
  },
  {
    name: 'manifest naming other keys than the lines hold',
    check: /line 1 holds a row whose key is not the manifest's key/,
    async apply(key) {
      const meta = JSON.parse((await f.store.get(metadataKeyFor(key)))!.toString('utf8'));
      meta.primary_keys[0] = ['999'];
      await f.store.put(metadataKeyFor(key), Buffer.from(JSON.stringify(meta)));
    },
  },
];

async function archiveEvents(): Promise<{ keys: string[]; config: ReturnType<typeof f.configFor> }> {
  await createEventsTable(f.db, { rows: 21, stepMinutes: 30, endDaysAgo: 20 });
  const config = f.configFor([eventsTable]);
  expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(21);
  const keys = (await inspectArchive(f.store)).objects.map((o) => o.key).sort();
  expect(keys.length).toBeGreaterThanOrEqual(3);
  return { keys, config };
}

const ids = async (): Promise<string[]> => (await f.db.query<{ id: string }>('SELECT id::text AS id FROM events ORDER BY events.id')).rows.map((r) => r.id);

describe.each(corruptions)('restore of an archive with an object corrupted by: $name', (c) => {
  it('fails by key before loading a row of it (--on-corrupt fail)', async () => {
    const { keys, config } = await archiveEvents();
    await c.apply(keys[0]!);
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('RESTORE_CORRUPT_OBJECT');
    expect(s.error?.message).toContain(keys[0]!);
    expect(s.error?.message).toMatch(c.check);
    expect(await ids()).toEqual([]);
  });

  it('skips it by key and restores every other object exactly (--on-corrupt skip)', async () => {
    const { keys, config } = await archiveEvents();
    const inspected = (await inspectArchive(f.store)).objects;
    const corruptIds = inspected.find((o) => o.key === keys[0])!.meta.primary_keys.map((k) => k[0]!);
    await c.apply(keys[0]!);
    const s = await restoreWith(config, f.store, { table: 'events', onCorrupt: 'skip' });
    expect(s.status).toBe('failed');
    expect(s.corrupt.map((x) => x.key)).toEqual([keys[0]]);
    expect(s.corrupt[0]!.message).toMatch(c.check);
    const expected = Array.from({ length: 21 }, (_, i) => String(i + 1)).filter((id) => !corruptIds.includes(id));
    expect(await ids()).toEqual(expected);
  });
});

describe('restore of an archive with an object copied under another name (the same rows twice in one run)', () => {
  /** A byte-identical copy of `key` beside it, named to sort after it, with a sidecar that names the copy. */
  const copyBeside = async (key: string): Promise<string> => {
    const copy = key.replace(/-[0-9a-f]+\.jsonl\.gz$/, '-ffffffffffffffff.jsonl.gz');
    expect(copy).not.toBe(key);
    const meta = JSON.parse((await f.store.get(metadataKeyFor(key)))!.toString('utf8'));
    await f.store.put(copy, (await f.store.get(key))!);
    await f.store.put(metadataKeyFor(copy), Buffer.from(JSON.stringify({ ...meta, data_object: copy, batch_id: 'ffffffffffffffff' })));
    return copy;
  };

  it('names the copy and loads nothing of the batch (--on-corrupt fail); with skip, restores every row once', async () => {
    const { keys, config } = await archiveEvents();
    const copy = await copyBeside(keys[0]!);
    // Found by probing: the INSERT kept one line per key, counted the other as a conflict "(none allowed)", and exited 0.
    const failed = await restoreWith(config, f.store, { table: 'events' });
    expect(failed.status).toBe('failed');
    expect(failed.error?.code).toBe('RESTORE_CORRUPT_OBJECT');
    expect(failed.error?.message).toContain(`archive object ${copy}: line 1 holds the same row (key and version) as line 1 of archive object ${keys[0]}`);
    expect(await ids()).toEqual([]);

    const skipped = await restoreWith(config, f.store, { table: 'events', onCorrupt: 'skip' });
    expect(skipped.status).toBe('failed');
    expect(skipped.corrupt.map((c) => c.key)).toEqual([copy]);
    expect(skipped.rows.conflicts).toBe(0);
    expect(await ids()).toEqual(Array.from({ length: 21 }, (_, i) => String(i + 1)));
  });
});

describe('restore of a key archived twice by one run (deleted, inserted again with an old timestamp, archived again)', () => {
  it('is no corrupt object: the restore loads the version archived last', async () => {
    await createEventsTable(f.db, { rows: 21, stepMinutes: 30, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 1, batches_in_flight: 1 });
    let reinserted = false;
    const summary = await archiveWith(config, f.store, {
      onPhase: async (phase) => {
        if (phase !== 'after-commit' || reinserted) return;
        reinserted = true;
        // Row 1 was just deleted; the application inserts a row under its key, dated after the run's position.
        await f.db.query(`INSERT INTO events (id, happened_at, kind) SELECT 1, max(happened_at) - interval '1 minute', 'reinserted' FROM events`);
      },
    });
    expect(summary.tables[0]!.rowsArchived).toBe(22);
    const archived = (await inspectArchive(f.store)).objects.flatMap((o) => o.meta.primary_keys.map((k, i) => [k[0], o.meta.xmins[i]]));
    expect(archived.filter(([id]) => id === '1')).toHaveLength(2);
    // Found in review: the same key twice in one run's objects was called a copy (RESTORE_CORRUPT_OBJECT).
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.error, JSON.stringify(s.error)).toBeUndefined();
    expect(s.corrupt).toEqual([]);
    expect(await ids()).toEqual(Array.from({ length: 21 }, (_, i) => String(i + 1)));
    const kind = await f.db.query<{ kind: string }>('SELECT kind FROM events WHERE id = 1');
    expect(kind.rows[0]!.kind).toBe('reinserted');
  });
});

describe('restore of an archive with a batch in flight', () => {
  it('reports the uncommitted object, does not restore it, and fails the run (exit 1): its rows may exist nowhere else until reconciled', async () => {
    const { keys, config } = await archiveEvents();
    const key = keys[1]!;
    const prefix = tablePrefix('app', 'public', 'events');
    const name = key.slice(key.lastIndexOf('/') + 1).replace(/\.jsonl\.gz$/, '');
    await f.store.put(pendingMarkerKey(prefix, dayOfKey(key)!, name), Buffer.from('{}'));
    const meta = (await inspectArchive(f.store)).objects.find((o) => o.key === key)!.meta;
    const s = await restoreWith(config, f.store, { table: 'events' });
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('RESTORE_INCOMPLETE');
    expect(s.error?.message).toContain('auditlog archive');
    expect(s.uncommitted).toEqual([key]);
    const restored = await ids();
    expect(restored).toHaveLength(21 - meta.record_count);
    for (const k of meta.primary_keys) expect(restored).not.toContain(k[0]);
  });
});

/**
 * The restore lists the objects, then the pending markers. An archive run working in between can
 * write a sidecar and commit (the object was listed without it), or give a batch up (data, sidecar
 * and marker deleted after they were listed). Neither is a corrupt object (found by probing a
 * restore alongside an archive run); a sidecar missing for good still is.
 */
describe('objects that change between the restore\'s listings', () => {
  /** The fixture's store, except that its listing shows `extra` keys and hides `hidden` ones: the listing of a moment earlier. */
  const listedEarlier = (o: { hidden?: string[]; extra?: string[] }) => {
    const store = Object.create(f.store) as typeof f.store;
    store.list = async function* (prefix: string) {
      for await (const info of f.store.list(prefix)) if (!(o.hidden ?? []).includes(info.key)) yield info;
      for (const key of o.extra ?? []) if (key.startsWith(prefix)) yield { key, size: 1 };
    };
    return store;
  };

  it('restores an object whose sidecar was written after the listing, and reports a batch given up meanwhile as in flight, not corrupt', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 180, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 100 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    const objects = (await inspectArchive(f.store)).objects;
    expect(objects.length).toBeGreaterThan(1);
    const late = objects[0]!.key;
    const prefix = tablePrefix('app', 'public', 'events');
    const gone = `${prefix}year=2001/month=01/day=01/000000000000-0000000000000000.jsonl.gz`;
    await f.db.query('CREATE TABLE copy (LIKE events INCLUDING ALL)');

    const s = await restoreWith(config, listedEarlier({ hidden: [metadataKeyFor(late)], extra: [gone, metadataKeyFor(gone)] }), {
      table: 'events',
      target: { schema: 'public', table: 'copy' },
      onCorrupt: 'fail',
    });
    expect(s.corrupt).toEqual([]);
    expect(s.uncommitted).toEqual([gone]);
    expect(s.error?.code).toBe('RESTORE_INCOMPLETE');
    expect(s.rows.inserted).toBe(20);
    expect(Number((await f.db.query('SELECT count(*) AS c FROM copy')).rows[0].c)).toBe(20);
  });

  it('still reports a sidecar that is missing for good as corrupt', async () => {
    await createEventsTable(f.db, { rows: 20, stepMinutes: 180, endDaysAgo: 20 });
    const config = f.configFor([eventsTable], { batch_size: 100 });
    expect((await archiveWith(config, f.store)).tables[0]!.rowsArchived).toBe(20);
    const key = (await inspectArchive(f.store)).objects[0]!.key;
    await f.store.delete(metadataKeyFor(key));
    const s = await restoreWith(config, f.store, { table: 'events', target: { schema: 'public', table: 'copy' }, onCorrupt: 'skip' });
    expect(s.corrupt.map((c) => c.key)).toEqual([key]);
    expect(s.corrupt[0]!.message).toContain('metadata sidecar is missing');
    expect(s.uncommitted).toEqual([]);
  });
});

/**
 * Selection keeps only a summary of each sidecar (no manifest: it grew the peak RSS with the
 * table) and the load reads the sidecar again. A sidecar that is not the same bytes at the second
 * read must never be trusted: the ordering, watermark and drift plan were made from the first.
 */
describe('a sidecar that changes between selection and load', () => {
  /** The fixture's store, except that `key`'s sidecar reads as `later` from its second GET on (after `onChange`). */
  const changedAfterSelection = (key: string, later: Buffer, onChange: () => Promise<void> = async () => undefined) => {
    const gets = new Map<string, number>();
    const store = Object.create(f.store) as typeof f.store;
    store.get = async (k: string) => {
      gets.set(k, (gets.get(k) ?? 0) + 1);
      if (k === metadataKeyFor(key) && gets.get(k)! > 1) {
        await onChange();
        return later;
      }
      return f.store.get(k);
    };
    return { store, gets };
  };
  const withOtherManifest = async (key: string): Promise<Buffer> => {
    const meta = JSON.parse((await f.store.get(metadataKeyFor(key)))!.toString('utf8'));
    meta.primary_keys[0] = ['999'];
    return Buffer.from(JSON.stringify(meta));
  };

  it('is reported corrupt by key and nothing of its object is loaded; the others load, each sidecar read twice', async () => {
    const { keys, config } = await archiveEvents();
    const inspected = (await inspectArchive(f.store)).objects;
    const changedIds = inspected.find((o) => o.key === keys[0])!.meta.primary_keys.map((k) => k[0]!);
    const { store, gets } = changedAfterSelection(keys[0]!, await withOtherManifest(keys[0]!));
    const s = await restoreWith(config, store, { table: 'events', onCorrupt: 'skip' });
    expect(s.status).toBe('failed');
    expect(s.corrupt.map((c) => c.key)).toEqual([keys[0]]);
    expect(s.corrupt[0]!.message).toMatch(/metadata sidecar changed between selection and load/);
    expect(s.uncommitted).toEqual([]);
    const expected = Array.from({ length: 21 }, (_, i) => String(i + 1)).filter((id) => !changedIds.includes(id));
    expect(await ids()).toEqual(expected);
    // The price of not holding the manifests: one more GET per object, no more.
    for (const key of keys) expect(gets.get(metadataKeyFor(key))).toBe(2);
  });

  it('is reported in flight, not corrupt, when an archive run is rewriting its batch (pending marker)', async () => {
    const { keys, config } = await archiveEvents();
    const key = keys[1]!;
    const prefix = tablePrefix('app', 'public', 'events');
    const name = key.slice(key.lastIndexOf('/') + 1).replace(/\.jsonl\.gz$/, '');
    const marker = () => f.store.put(pendingMarkerKey(prefix, dayOfKey(key)!, name), Buffer.from('{}')).then(() => undefined);
    const { store } = changedAfterSelection(key, await withOtherManifest(key), marker);
    const s = await restoreWith(config, store, { table: 'events' });
    expect(s.corrupt).toEqual([]);
    expect(s.uncommitted).toEqual([key]);
    expect(s.error?.code).toBe('RESTORE_INCOMPLETE');
    const meta = (await inspectArchive(f.store)).objects.find((o) => o.key === key)!.meta;
    const restored = await ids();
    expect(restored).toHaveLength(21 - meta.record_count);
    for (const k of meta.primary_keys) expect(restored).not.toContain(k[0]);
  });
});
