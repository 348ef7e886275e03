/**
 * The binary COPY reader the archive's page query uses: values come back as exactly the bytes
 * PostgreSQL sends (UTF-8 text), NULL stays NULL, and malformed output is refused, never guessed at.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { copyOutBinary, CopyBuffer, FieldTooLargeError, parseBinaryCopy } from '../../src/db/binary-copy.js';

let db: TestDatabase;
let client: pg.Client;
beforeAll(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  await db.drop();
});

const VALUES = ['plain', '', 'Grüße, 東京 🚀', 'quote " backslash \\ tab \t', 'line\nbreak', 'x'.repeat(100_000)];

describe('binary COPY', () => {
  it('returns each text field as its UTF-8 bytes, NULL as NULL, rows in order', async () => {
    expect((await copyOutBinary(client, `SELECT 'a'::text, 'b'::text, 'c'::text WHERE false`, 3)).count).toBe(0);
    await client.query('CREATE TEMP TABLE vals (i int, v text)');
    await client.query('INSERT INTO vals SELECT i, v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i)', [VALUES]);
    const read = await copyOutBinary(client, 'SELECT v, CASE WHEN i % 2 = 0 THEN NULL ELSE i::text END, i::text FROM vals ORDER BY vals.i', 3);
    expect(read.count).toBe(VALUES.length);
    VALUES.forEach((value, r) => {
      expect(read.text(r, 0)).toBe(value);
      expect(read.length(r, 0)).toBe(Buffer.byteLength(value));
      const target = Buffer.alloc(read.length(r, 0));
      expect(read.copy(r, 0, target, 0)).toBe(target.length);
      expect(target.equals(Buffer.from(value, 'utf8'))).toBe(true);
      expect(read.isNull(r, 1)).toBe((r + 1) % 2 === 0);
      if (!read.isNull(r, 1)) expect(read.text(r, 1)).toBe(String(r + 1));
      expect(read.text(r, 2)).toBe(String(r + 1));
    });
    expect(read.sameField(0, 0, 0)).toBe(true);
    expect(read.sameField(0, 1, 0)).toBe(false);
  });

  it('successive reads into one CopyBuffer each see exactly their own rows, however the sizes go', async () => {
    const into = new CopyBuffer();
    // 2,000 rows of ~300 kB, 3 rows, then ~1 MB: the buffer grows, is reused smaller, grows again.
    for (const [rows, width] of [[2_000, 150], [3, 5], [1_000, 1_000]] as const) {
      const read = await copyOutBinary(client, `SELECT i::text, repeat(chr(65 + i % 26), ${width}) FROM generate_series(1, ${rows}) AS i`, 2, into);
      expect(read.count).toBe(rows);
      expect(read.data.length).toBe(into.contents().length);
      for (const r of [0, Math.floor(rows / 2), rows - 1]) {
        expect(read.text(r, 0)).toBe(String(r + 1));
        expect(read.text(r, 1)).toBe(String.fromCharCode(65 + ((r + 1) % 26)).repeat(width));
      }
    }
  });

  it('with a limit, stops at the length header of a field over it, naming its row; fields at the limit pass', async () => {
    // NULLs and short fields before it, so the header walk must skip them right; the big field is
    // sent in many CopyData messages, and the read stops before the rest of it arrives.
    const query = `SELECT CASE WHEN g = 4 THEN repeat('y', 5000000) WHEN g % 2 = 0 THEN NULL ELSE repeat('x', 1000) END, g::text FROM generate_series(1, 6) g`;
    const error = await copyOutBinary(client, query, 2, new CopyBuffer(), { field: 0, maxBytes: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FieldTooLargeError);
    expect(error).toMatchObject({ row: 3, field: 0, bytes: 5_000_000 });
    // The abandoned COPY leaves the connection unusable: a fresh one for what follows.
    await client.end().catch(() => undefined);
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const read = await copyOutBinary(client, `SELECT repeat('x', 1000), g::text FROM generate_series(1, 3) g`, 2, new CopyBuffer(), { field: 0, maxBytes: 1000 });
    expect(read.count).toBe(3);
    // Only the watched field is limited.
    expect((await copyOutBinary(client, `SELECT 'a', repeat('z', 5000)`, 2, new CopyBuffer(), { field: 0, maxBytes: 1000 })).length(0, 1)).toBe(5000);
  });

  it('fields of rows with the same bytes compare equal, others not', async () => {
    const read = await copyOutBinary(client, `SELECT d FROM (VALUES ('2024-01-01'), ('2024-01-01'), ('2024-01-02')) AS t(d)`, 1);
    expect(read.sameField(0, 1, 0)).toBe(true);
    expect(read.sameField(1, 2, 0)).toBe(false);
  });

  it('refuses malformed output: a bad signature, a truncated stream, rows of another width', async () => {
    // The raw stream of a small result, to damage in the ways below.
    const stream = (await copyOutBinary(client, `SELECT 'abc'::text, 'de'::text`, 2)).data;
    expect(parseBinaryCopy(stream, 2).text(0, 1)).toBe('de');
    const badSignature = Buffer.from(stream);
    badSignature[0] = 0x51;
    expect(() => parseBinaryCopy(badSignature, 2)).toThrow(/malformed binary COPY output.*signature/);
    for (const cut of [stream.length - 2, stream.length - 5, 25]) {
      expect(() => parseBinaryCopy(stream.subarray(0, cut), 2)).toThrow(/malformed binary COPY output/);
    }
    expect(() => parseBinaryCopy(stream, 3)).toThrow(/2 fields in a row, expected 3/);
    expect(() => parseBinaryCopy(Buffer.concat([stream, Buffer.from([0])]), 2)).toThrow(/data after the trailer/);
  });
});
