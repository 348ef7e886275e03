/**
 * A run is killed (SIGKILL, the real CLI) with a batch in flight, then the table's `compression`
 * is changed and the next run reconciles that batch. The pending marker's name alone must lead
 * reconciliation to the object of the codec it was written with (archive-layout.ts), whatever the
 * new configuration says: otherwise an uncommitted object of the old codec would stay behind as
 * an archive of rows that are still in the table, or a committed one be taken for nothing written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '../helpers/postgres.js';
import { createEventsTable } from '../helpers/events-table.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { runCli } from '../helpers/run-cli.js';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { expectNothingLostYet } from './finish-and-check.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'codec-switch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MARKER_SUFFIX = { gzip: /\d{4}-\d{2}-\d{2}-[^/]+\.json$/, zstd: /\.zst\.pending$/ } as const;
const DATA_SUFFIX = { gzip: '.jsonl.gz', zstd: '.jsonl.zst' } as const;

describe.each([
  ['gzip', 'zstd'],
  ['zstd', 'gzip'],
] as const)('killed with %s, rerun with %s', (first, then) => {
  it.each([
    ['after-upload', 'removed'],
    ['after-metadata', 'removed'],
    ['after-commit', 'committed'],
  ] as const)('SIGKILL at %s of the third batch: the in-flight batch is reconciled as %s, every row archived once', async (phase, outcome) => {
    const db = await createTestDatabase();
    try {
      const local = { path: join(dir, `${first}-${phase}`) };
      const file = join(dir, `${first}-${phase}.json`);
      const write = (compression: string): Promise<void> =>
        writeFile(file, JSON.stringify({ local, defaults: { retention_days: 10, batch_size: 8, batches_in_flight: 1, compression }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] }));
      await createEventsTable(db, { rows: 40, stepMinutes: 30, endDaysAgo: 11 });
      const expected = await expectRowsOf(db, { table: 'events' });
      await write(first);
      const crashed = await runCli(['archive', '--config', file, '--quiet'], { AUDITLOG_FAULT: `${phase}:3` });
      expect(crashed.signal).toBe('SIGKILL');
      expectNothingLostYet(await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local }, expected }));
      const store = new LocalObjectStore(local);
      const mid = await inspectArchive(store);
      // The batch in flight has the first codec's marker, and only objects of that codec exist.
      const inFlight = mid.pendingMarkers.filter((m) => MARKER_SUFFIX[first].test(m));
      expect(inFlight.length).toBeGreaterThanOrEqual(1);
      expect(mid.allKeys.filter((k) => k.endsWith(DATA_SUFFIX[then]))).toEqual([]);

      await write(then);
      const rerun = await runCli(['archive', '--config', file, '--json']);
      expect(rerun.code, rerun.stderr).toBe(0);
      const table = (JSON.parse(rerun.stdout) as { tables: { reconciled?: { committed: number; removed: number } }[] }).tables[0]!;
      expect(table.reconciled?.[outcome]).toBeGreaterThanOrEqual(1);

      const report = await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local }, expected });
      expect(report.problems).toEqual([]);
      expect(report.rowsArchived).toBe(40);
      expect(report.rowsInTable).toBe(0);
      const after = await inspectArchive(store);
      expect(after.pendingMarkers).toEqual([]);
      expect(after.withoutMetadata).toEqual([]);
      // Every object's sidecar names its own codec; both codecs are there (batches before the kill, and after).
      for (const o of after.objects) expect(o.key.endsWith(DATA_SUFFIX[o.meta.compression])).toBe(true);
      const codecs = new Set(after.objects.map((o) => o.meta.compression));
      expect(codecs).toEqual(new Set([first, then]));
      // The batch that committed before the kill stays in the first codec: 3 batches of it, else 2.
      expect(after.objects.filter((o) => o.meta.compression === first)).toHaveLength(outcome === 'committed' ? 3 : 2);
    } finally {
      await db.drop();
    }
  });
});
