/**
 * The record-level hold is in the guarded DELETE too, not only in the SELECT: a row that came
 * under hold after it was read (a hold placed mid-run) is still never deleted.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { loadTablePlan } from '../../src/db/catalog.js';
import { deleteArchivedRows, selectCutoff, selectPage } from '../../src/db/archive-queries.js';
import { defaultsSchema, tableSchema } from '../../src/config/schema.js';
import { findFilterScopeProblem, findFilterTextProblem } from '../../src/compliance/hold-filter-text.js';

let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db.drop();
});

describe('record-level holds in SQL', () => {
  it('rows read before a hold was placed are not deleted once the plan carries the hold; the rest are', async () => {
    await createEventsTable(db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    try {
      const plan = await loadTablePlan(pool, 'app', tableSchema.parse({ name: 'events', timestamp_column: 'happened_at' }), defaultsSchema.parse({ retention_days: 10 }));
      const cutoff = await selectCutoff(pool, plan);
      const pages = await selectPage(pool, plan, cutoff, null, 100);
      const rows = { xmins: pages.flatMap((p) => p.xmins), keys: pages.flatMap((p) => p.keys), firstTs: pages[0]!.firstTs, lastTs: pages[pages.length - 1]!.lastTs };
      expect(rows.keys).toHaveLength(10);
      const held = { ...plan, holdFilters: [{ where: "kind = 'kind2'" }] };
      const deleted = await deleteArchivedRows(pool, held, rows, cutoff);
      expect(deleted.count).toBe(8);
      expect((await rowIds(db)).sort()).toEqual(['2', '7']);
      // And the SELECT of the same plan no longer returns them.
      expect(await selectPage(pool, held, cutoff, null, 100)).toEqual([]);
    } finally {
      await pool.end();
    }
  });
});

describe('findFilterTextProblem', () => {
  it.each([
    "kind = 'it''s fine; really -- not a comment'",
    'id IN (1, 2, 3) AND (note IS NULL OR note <> \'x\')',
    '"weird ""col"" name" = 1',
    'payload->>\'case\' = \'2026-114\'',
    'a$b = 1 AND c$d = 2',
  ])('accepts %s (semicolons, dashes and quotes inside literals and quoted identifiers are text)', (text) => {
    expect(findFilterTextProblem(text)).toBeUndefined();
  });

  it.each([
    ['', 'empty'],
    ['id = 1; DROP TABLE events', ';'],
    ['id = 1) OR (true', 'parenthesis'],
    ['(id = 1', 'unclosed'],
    ['id = 1 -- rest', 'comment'],
    ['id = 1 /* */', 'comment'],
    ["kind = 'open", 'unterminated'],
    ['"open = 1', 'unterminated'],
    ["kind = E'\\' OR true --'", 'backslash'],
    ['kind = $x$a$x$', 'dollar'],
    ['id = $1', 'bind parameter'],
    ['kind = $$x$$', 'dollar'],
    ['kind = $', 'dollar'],
  ])('refuses %j (%s)', (text, expected) => {
    expect(findFilterTextProblem(text)).toContain(expected);
  });
});

describe('findFilterScopeProblem', () => {
  it.each([
    ['id IN (SELECT 1)', 'SELECT'],
    ['EXISTS (select 1 from pg_class)', 'SELECT'],
    // Found in review: TABLE reads another relation without the word SELECT.
    ['id IN (TABLE secret_ids)', 'TABLE'],
    ['EXISTS (table b)', 'TABLE'],
  ])('refuses the subquery in %j', (text, keyword) => {
    expect(findFilterScopeProblem(text)).toContain(`subquery (${keyword})`);
  });

  it.each(['"select" = 1 AND "table" = \'x\'', "note = 'select from table'", 'kind IN (\'a\', \'b\')'])('accepts %j: quoted names and literals are not keywords', (text) => {
    expect(findFilterScopeProblem(text)).toBeUndefined();
  });
});
