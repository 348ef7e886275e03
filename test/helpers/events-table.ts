/** A small audit table for pipeline tests: `rows` rows, one every `stepMinutes`, the newest at noon UTC `endDaysAgo` days ago. */
import type { TestDatabase } from './postgres.js';

export interface EventsTableOptions {
  schema?: string;
  table?: string;
  rows: number;
  stepMinutes: number;
  endDaysAgo: number;
}

export async function createEventsTable(db: TestDatabase, o: EventsTableOptions): Promise<void> {
  const schema = o.schema ?? 'public';
  const table = o.table ?? 'events';
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  await db.query(`CREATE SCHEMA IF NOT EXISTS ${q(schema)}`);
  await db.query(`CREATE TABLE ${q(schema)}.${q(table)} (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, kind text, body jsonb, note text)`);
  await db.query(
    `INSERT INTO ${q(schema)}.${q(table)} (id, happened_at, kind, body, note)
     SELECT g, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - make_interval(days => $2, hours => -12) - make_interval(mins => ($1 - g) * $3),
            'kind' || (g % 5), jsonb_build_object('g', g), E'note "' || g || E'" \\\\ line\\nbreak'
       FROM generate_series(1, $1) g`,
    [o.rows, o.endDaysAgo, o.stepMinutes],
  );
}

export async function rowIds(db: TestDatabase, schema = 'public', table = 'events'): Promise<string[]> {
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const r = await db.query<{ id: string }>(`SELECT id::text AS id FROM ${q(schema)}.${q(table)} ORDER BY id`);
  return r.rows.map((x) => x.id);
}
