/**
 * Data safety by breaking things (I1, I4): the real CLI is killed with SIGKILL at every point of a
 * batch's life, then rerun. At every moment each old row is in the table or in a verified object;
 * after the rerun each is in exactly one committed object, byte-identical to the original row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { runCli } from '../helpers/run-cli.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

let s3: S3TestServer;
let dir: string;
beforeAll(async () => {
  s3 = await startS3Server();
  dir = await mkdtemp(join(tmpdir(), 'crash-'));
});
afterAll(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function snapshot(db: TestDatabase): Promise<Map<string, string>> {
  const r = await db.query<{ id: string; line: string }>(`SELECT id::text AS id, row_to_json(t)::text AS line FROM events t WHERE happened_at < now() - interval '10 days'`);
  return new Map(r.rows.map((x) => [x.id, x.line]));
}

/** I1 at an arbitrary instant: each old row is in the table, or in an object whose bytes match its metadata. */
async function expectNoLoss(db: TestDatabase, store: ObjectStore, old: Map<string, string>): Promise<void> {
  const inTable = new Set(await rowIds(db));
  const archive = await inspectArchive(store);
  const archived = new Map<string, string>();
  for (const o of archive.objects) o.meta.primary_keys.forEach((k, i) => archived.set(k[0]!, o.lines[i]!));
  for (const [id, line] of old) {
    if (inTable.has(id)) continue;
    expect(archived.get(id), `row ${id} is neither in the table nor archived`).toBe(line);
  }
}

async function expectExactlyOnce(db: TestDatabase, store: ObjectStore, old: Map<string, string>, total: number): Promise<void> {
  const archive = await inspectArchive(store);
  expect(archive.pendingMarkers).toEqual([]);
  expect(archive.withoutMetadata).toEqual([]);
  const seen = new Map<string, number>();
  for (const o of archive.objects) {
    o.meta.primary_keys.forEach((k, i) => {
      seen.set(k[0]!, (seen.get(k[0]!) ?? 0) + 1);
      expect(o.lines[i]).toBe(old.get(k[0]!));
    });
  }
  expect([...seen.keys()].sort()).toEqual([...old.keys()].sort());
  expect([...seen.values()].every((n) => n === 1)).toBe(true);
  const left = await rowIds(db);
  expect(left).toHaveLength(total - old.size);
  expect(left.some((id) => old.has(id))).toBe(false);
}

/**
 * Seeds `rows` old events, writes a config for `storage` (JSON is YAML), and runs the real CLI
 * until AUDITLOG_FAULT kills it. Returns the original lines of the old rows and the config file.
 */
async function crashRun(
  db: TestDatabase,
  options: { name: string; rows: number; storage: Record<string, unknown>; defaults?: Record<string, number>; fault: string },
): Promise<{ old: Map<string, string>; file: string }> {
  await createEventsTable(db, { rows: options.rows, stepMinutes: 30, endDaysAgo: 11 });
  const old = await snapshot(db);
  const file = join(dir, `${options.name}.json`);
  const config = { ...options.storage, defaults: { retention_days: 10, batch_size: 8, ...options.defaults }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] };
  await writeFile(file, JSON.stringify(config));
  const crashed = await runCli(['archive', '--config', file, '--quiet'], { AUDITLOG_FAULT: options.fault });
  expect(crashed.signal).toBe('SIGKILL');
  return { old, file };
}

const PHASES = ['after-marker', 'after-upload', 'after-metadata', 'before-commit', 'after-commit', 'after-batch'] as const;

describe.each(PHASES)('SIGKILL at %s of the third batch, then a rerun', (phase) => {
  it.each(['s3', 'local'] as const)('loses nothing and archives every row exactly once (%s)', async (backend) => {
    const db = await createTestDatabase();
    try {
      const storage =
        backend === 's3'
          ? { s3: s3.s3Config({ prefix: `crash-${phase}-${Date.now()}/` }) }
          : { local: { path: join(dir, `${phase}-${Date.now()}`) } };
      const store: ObjectStore = backend === 's3' ? new S3ObjectStore(storage.s3!) : new LocalObjectStore(storage.local!);
      const { old, file } = await crashRun(db, { name: `${phase}-${backend}`, rows: 60, storage, fault: `${phase}:3` });
      await expectNoLoss(db, store, old);
      // Up to batches_in_flight (3) batches run at once, so only a commit phase proves deletes
      // happened before the kill: three batches committed, of at least one row each.
      if (phase === 'after-commit' || phase === 'after-batch') expect((await rowIds(db)).length).toBeLessThanOrEqual(60 - 3);

      const rerun = await runCli(['archive', '--config', file, '--json']);
      expect(rerun.code, rerun.stderr).toBe(0);
      const summary = JSON.parse(rerun.stdout) as { tables: { rowsArchived: number; reconciled?: Record<string, number> }[] };
      if (phase !== 'after-batch') expect(summary.tables[0]!.reconciled).toBeDefined();
      await expectExactlyOnce(db, store, old, 60);
    } finally {
      await db.drop();
    }
  });
});

describe('an unreadable pending marker (a store that kept a torn write)', () => {
  it('is reconciled from its key alone', async () => {
    const db = await createTestDatabase();
    try {
      const path = join(dir, `torn-${Date.now()}`);
      const store = new LocalObjectStore({ path });
      const { old, file } = await crashRun(db, { name: 'torn', rows: 30, storage: { local: { path } }, defaults: { batches_in_flight: 1 }, fault: 'after-metadata:2' });
      const markers = (await inspectArchive(store)).pendingMarkers;
      expect(markers).toHaveLength(1);
      await store.put(markers[0]!, Buffer.from('{"data_obj'));
      const rerun = await runCli(['archive', '--config', file]);
      expect(rerun.code, rerun.stderr).toBe(0);
      await expectExactlyOnce(db, store, old, 30);
    } finally {
      await db.drop();
    }
  });
});

describe('a key reused after a committed batch whose marker was left behind', () => {
  it('keeps the archived version: the new row under the same key is another row', async () => {
    const db = await createTestDatabase();
    try {
      const path = join(dir, `reuse-${Date.now()}`);
      const store = new LocalObjectStore({ path });
      const { old, file } = await crashRun(db, { name: 'reuse', rows: 16, storage: { local: { path } }, defaults: { batches_in_flight: 1 }, fault: 'after-commit:1' });
      const inFlight = await inspectArchive(store);
      expect(inFlight.pendingMarkers).toHaveLength(1);
      const committed = inFlight.objects[0]!;
      const reusedId = committed.meta.primary_keys[0]![0]!;
      expect(await rowIds(db)).not.toContain(reusedId);
      // The application inserts a new, recent row under a key the committed batch deleted.
      await db.query(`INSERT INTO events (id, happened_at, kind) VALUES ($1, now(), 'reused key')`, [reusedId]);

      const rerun = await runCli(['archive', '--config', file]);
      expect(rerun.code, rerun.stderr).toBe(0);
      const after = await inspectArchive(store);
      expect(after.pendingMarkers).toEqual([]);
      const lines = after.objects.flatMap((o) => o.meta.primary_keys.map((k, i) => [k[0], o.lines[i]]));
      expect(lines.filter(([id]) => id === reusedId)).toEqual([[reusedId, old.get(reusedId)]]);
      expect(lines).toHaveLength(16);
      expect(await rowIds(db)).toEqual([reusedId]);
    } finally {
      await db.drop();
    }
  });
});

