/**
 * Schema `a.b` table `c` and schema `a` table `b.c`: found by probing, both were archived under
 * `app/a.b.c/` and so shared pending markers. With the two tables in two configurations (the
 * config check refused them only inside one), X's reconciliation took Y's in-flight marker for
 * its own, found none of Y's keys in X's table, and removed Y's object; Y then deleted its rows
 * and committed — they existed nowhere. Schema dots are now escaped, so the tables have separate
 * directories, and a marker or sidecar naming another table is never decided on
 * (test/archive/other-table-marker.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import type { RunSummary } from '../../src/archive/table-summary.js';
import { selectTargets } from '../../src/archive/run-archive.js';
import { buildConfig } from '../helpers/archive-run.js';

const fx = useArchiveFixture();

const X = { schema: 'a.b', name: 'c', timestamp_column: 'happened_at' };
const Y = { schema: 'a', name: 'b.c', timestamp_column: 'happened_at' };

describe('schema a.b table c and schema a table b.c archived at the same time', () => {
  it('loses no row: each table keeps its own directory and markers', async () => {
    await fx.db.query(`CREATE SCHEMA "a.b"; CREATE SCHEMA a;
      CREATE TABLE "a.b".c (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, src text);
      CREATE TABLE a."b.c" (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, src text);
      INSERT INTO "a.b".c SELECT g, now() - interval '30 days' + g * interval '1 second', 'X' FROM generate_series(1, 5) g;
      INSERT INTO a."b.c" SELECT g, now() - interval '30 days' + g * interval '1 second', 'Y' FROM generate_series(1, 5) g;`);
    // Two configurations, one table each, one archive prefix: as two cron jobs would run them.
    const configX = fx.configFor([X], { batch_size: 50 });
    const configY = fx.configFor([Y], { batch_size: 50 });

    let x: RunSummary | undefined;
    const y = await archiveWith(configY, fx.store, {
      runId: 'run-y',
      onPhase: async (phase) => {
        // Y's batch is uploaded and its sidecar written, its delete not yet run: X starts now.
        if (phase === 'after-metadata' && x === undefined) x = await archiveWith(configX, fx.store, { runId: 'run-x' });
      },
    });
    expect(x?.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 5 });
    expect(y.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 5 });

    const archive = await inspectArchive(fx.store);
    expect(archive.pendingMarkers).toEqual([]);
    const archivedIds = (schema: string, table: string): string[] =>
      archive.objects
        .filter((o) => o.meta.schema === schema && o.meta.table === table)
        .flatMap((o) => o.meta.primary_keys.map((k) => k[0]!))
        .sort();
    const left = async (qualified: string): Promise<string[]> => (await fx.db.query<{ id: string }>(`SELECT id::text FROM ${qualified} ORDER BY id`)).rows.map((r) => r.id);
    // Every row is in its table or archived exactly once (here: all archived).
    expect([...(await left('"a.b".c')), ...archivedIds('a.b', 'c')].sort()).toEqual(['1', '2', '3', '4', '5']);
    expect([...(await left('a."b.c"')), ...archivedIds('a', 'b.c')].sort()).toEqual(['1', '2', '3', '4', '5']);
    // …each in its own directory: the schema's dot is escaped, the table's is not.
    for (const o of archive.objects) {
      expect(o.key.startsWith(o.meta.schema === 'a.b' ? 'app/a%2Eb.c/' : 'app/a.b.c/')).toBe(true);
      expect(o.lines.every((l) => (JSON.parse(l) as { src: string }).src === (o.meta.schema === 'a.b' ? 'X' : 'Y'))).toBe(true);
    }
  });
});

describe('--table with both tables in one configuration', () => {
  // The configuration check no longer refuses the pair (their prefixes differ), so `a.b.c` names both.
  const config = buildConfig({ local: { path: '/tmp/unused' }, databases: [{ name: 'app', url: 'postgresql://localhost/app', tables: [X, Y] }] });
  const picked = (table: string): string[][] => selectTargets({ config, table }).flatMap((d) => d.tables.map((t) => [t.schema, t.name]));

  it('selects both for the dotted name, and exactly one with quotes', () => {
    expect(picked('a.b.c')).toEqual([['a.b', 'c'], ['a', 'b.c']]);
    expect(picked('"a.b".c')).toEqual([['a.b', 'c']]);
    expect(picked('a."b.c"')).toEqual([['a', 'b.c']]);
    expect(picked('"b.c"')).toEqual([['a', 'b.c']]);
  });
});
