/**
 * Every common PostgreSQL type and edge value survives archive → plain-SQL load
 * (json_populate_record, plus the documented JSON-null rule) as the identical row (`row::text`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { quoteIdent, quoteQualified } from '../../src/db/quote-ident.js';

const SCHEMA = 'Fidelity';
const TABLE = 'Every Type';

const FIXTURE = `
CREATE SCHEMA ${quoteIdent(SCHEMA)};
CREATE TYPE ${quoteIdent(SCHEMA)}.mood AS ENUM ('happy', 'it''s "complicated"', 'sad');
CREATE TABLE ${quoteQualified(SCHEMA, TABLE)} (
  id bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  si smallint, i integer, bi bigint, num numeric, num2 numeric(12,2), r real, d double precision,
  t text, vc varchar(10), ch char(5), b boolean,
  dt date, tsn timestamp, tstz timestamptz, tm time, ttz timetz, iv interval,
  u uuid, ip inet, cd cidr, mac macaddr, by bytea,
  j json, jb jsonb,
  arr int[], tarr text[], md int[], lb int[], jarr jsonb[],
  en ${quoteIdent(SCHEMA)}.mood, rg int4range, tsr tstzrange,
  "Mixed Case" text, "select" int, "a""quote" text
);
INSERT INTO ${quoteQualified(SCHEMA, TABLE)} VALUES
(1, '2001-02-03 04:05:06.789012+00',
 -32768, -2147483648, -9223372036854775808, '123456789012345678901234567890.123456789012345678901234567890', 1234567890.12, 'NaN', 'NaN',
 (SELECT string_agg(chr(g), '') FROM generate_series(1, 31) g) || E'"\\\\/ ü日本🎉 \\u2028\\u2029 \\'', 'a"b,c\\\\', 'ab', true,
 'infinity', '4713-01-01 00:00:00 BC', '-infinity', '24:00:00', '00:00:00+1559', '1 year 2 mons -3 days 04:05:06.789012',
 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1/64', '10.0.0.0/8', '08:00:2b:01:02:03',
 decode((SELECT string_agg(lpad(to_hex(g), 2, '0'), '') FROM generate_series(0, 255) g), 'hex'),
 E'{ "a" : 1 ,\\n\\t"a" : [ 1,2 ] ,"n":null }', 'null',
 '{1,NULL,3}', '{"a,b","c\\"d","{e}","NULL",NULL,""," sp "}', '{{1,2},{3,4}}', '[0:2]={7,8,9}', ARRAY['null'::jsonb, NULL, '{"x":null}'],
 'it''s "complicated"', '[1,10)', '[2020-01-01 00:00+00,infinity)',
 'mixed', 1, 'q'),
(2, '2001-02-03 23:59:59.999999+00',
 32767, 2147483647, 9223372036854775807, 'NaN', -0.01, 'Infinity', '-Infinity',
 repeat(E'x€"\\\\', 25000), '', 'abcde', false,
 '0044-03-15 BC', 'infinity', '1999-12-31 23:59:59.999999+00', '00:00:00', '12:00:00-1559', '-178000000 years',
 '00000000-0000-0000-0000-000000000000', '::ffff:1.2.3.4', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '',
 'null', E'{"k": null, "arr": [null, 1.0, 1e400], "s": "\\\\u00e9 \\\\ud83c\\\\udf89"}',
 '{}', '{}', '{{{1,2},{3,4}},{{5,6},{7,8}}}', '[0:1][2:3]={{1,2},{3,4}}', '{}',
 'sad', 'empty', '(,)',
 '', 0, ''),
(3, '-infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, '2001-02-05 00:00:00+00',
 0, 0, 0, 'Infinity', 0, 3.4028235e38, 1.7976931348623157e308,
 'plain', 'x', 'x', NULL,
 '2000-02-29', '2000-02-29 12:00:00.000001', '2000-02-29 12:00:00.000001+00', '12:34:56.789', '12:34:56.789+05:30', '-1 days -00:00:00.000001',
 '123e4567-e89b-12d3-a456-426614174000', '192.168.0.1', '192.168.0.0/24', '00:00:00:00:00:00', '\\x00',
 '[]', '{}',
 '{NULL}', '{NULL}', '{{NULL,NULL}}', '[-5:-5]={1}', '{NULL}',
 'happy', '[-2147483648,2147483647)', '["2001-01-01 00:00:00.000001+00","2001-01-02 00:00:00+00")',
 NULL, NULL, NULL),
(5, '2001-02-05 00:00:01+00',
 1, 1, 1, '-Infinity', NULL, 1.17549435e-38, 5e-324,
 E'line\\nbreak\\rcr\\ttab', NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 '"just a string"', '"null"', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(6, now(), 42, NULL, NULL, NULL, NULL, NULL, NULL, 'recent row: stays', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`;

interface Backend {
  name: string;
  make(): Promise<{ store: ObjectStore; storage: Record<string, unknown>; cleanup(): Promise<void> }>;
}

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.stop();
});

const backends: Backend[] = [
  {
    name: 'local directory',
    async make() {
      const dir = await mkdtemp(join(tmpdir(), 'fidelity-'));
      return { store: new LocalObjectStore({ path: dir }), storage: { local: { path: dir } }, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'S3-compatible server',
    async make() {
      const cfg = s3.s3Config({ prefix: `fidelity-${Date.now()}/` });
      return { store: new S3ObjectStore(cfg), storage: { s3: cfg }, cleanup: async () => undefined };
    },
  },
];

describe.each(backends)('type fidelity through the $name', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.query(FIXTURE);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('archives every old row and loads each back with json_populate_record into the identical row', async () => {
    const table = quoteQualified(SCHEMA, TABLE);
    const before = await db.query<{ id: string; row: string }>(`SELECT id::text AS id, t::text AS row FROM ${table} t WHERE id <> 6 ORDER BY id`);
    expect(before.rows).toHaveLength(5);
    const { store, storage, cleanup } = await backend.make();
    try {
      const config = buildConfig({
        ...storage,
        defaults: { retention_days: 30, batch_size: 2 },
        databases: [{ name: 'fidelity', url: db.url, tables: [{ schema: SCHEMA, name: TABLE, timestamp_column: 'at' }] }],
      });
      const summary = await archiveWith(config, store);
      expect(summary.tables[0]!.error).toBeUndefined();
      expect(summary.tables[0]!.rowsArchived).toBe(5);

      const left = await db.query<{ id: string }>(`SELECT id::text AS id FROM ${table} ORDER BY id`);
      expect(left.rows.map((r) => r.id)).toEqual(['6']);

      const archive = await inspectArchive(store);
      expect(archive.pendingMarkers).toEqual([]);
      // Row 3 has timestamp -infinity: no calendar day, so the documented 0000-00-00 partition.
      expect(archive.objects.some((o) => o.key.includes('/year=0000/month=00/day=00/'))).toBe(true);
      // Batches never span two UTC days: rows 1 and 2 share 2001-02-03, rows 4 and 5 share 2001-02-05.
      const byKey = new Map(archive.objects.map((o) => [o.key, o.meta.primary_keys.map((k) => k[0])]));
      expect([...byKey.values()].map((ids) => ids.join(',')).sort()).toEqual(['1,2', '3', '4,5']);

      // JSON null in json/jsonb is recorded per line; SQL NULL (row 3) is not.
      const jsonNulls = archive.objects.flatMap((o) => o.meta.json_null_values.map((j) => [o.meta.primary_keys[j.line]![0], j.columns.join(',')]));
      expect(jsonNulls.sort()).toEqual([['1', 'jb'], ['2', 'j']]);
      // Row 1's json has raw newlines in its whitespace: written as a string of its exact text.
      const jsonTexts = archive.objects.flatMap((o) => o.meta.json_text_values.map((j) => [o.meta.primary_keys[j.line]![0], j.columns.join(',')]));
      expect(jsonTexts).toEqual([['1', 'j']]);
      for (const o of archive.objects) expect(o.lines.every((l) => !l.includes('\n') && !l.includes('\r'))).toBe(true);
      const meta = archive.objects[0]!.meta;
      expect(meta.columns.find((c) => c.name === 'en')?.type).toBe('"Fidelity".mood');
      expect(meta.columns.map((c) => c.name)).toContain('a"quote');

      await db.query(`CREATE TABLE ${quoteQualified(SCHEMA, 'loaded')} (LIKE ${table})`);
      for (const o of archive.objects) {
        for (const [lineNo, line] of o.lines.entries()) {
          await db.query(`INSERT INTO ${quoteQualified(SCHEMA, 'loaded')} SELECT * FROM json_populate_record(NULL::${table}, $1::json)`, [line]);
          // The two documented json rules of docs/format.md, as plain SQL.
          const id = o.meta.primary_keys[lineNo]![0];
          for (const jn of o.meta.json_null_values.filter((x) => x.line === lineNo)) {
            for (const column of jn.columns) {
              await db.query(`UPDATE ${quoteQualified(SCHEMA, 'loaded')} SET ${quoteIdent(column)} = 'null' WHERE id = $1`, [id]);
            }
          }
          for (const jt of o.meta.json_text_values.filter((x) => x.line === lineNo)) {
            for (const column of jt.columns) {
              await db.query(`UPDATE ${quoteQualified(SCHEMA, 'loaded')} SET ${quoteIdent(column)} = ($2::json ->> $3)::json WHERE id = $1`, [id, line, column]);
            }
          }
        }
      }
      const after = await db.query<{ id: string; row: string }>(`SELECT id::text AS id, t::text AS row FROM ${quoteQualified(SCHEMA, 'loaded')} t ORDER BY id`);
      expect(after.rows).toEqual(before.rows);
    } finally {
      await db.query(`DROP TABLE IF EXISTS ${quoteQualified(SCHEMA, 'loaded')}`);
      await cleanup();
    }
  });
});
