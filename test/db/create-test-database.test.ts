import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, getTestServerUrl } from '../helpers/postgres.js';

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: await getTestServerUrl() });
  await client.connect();
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

describe('createTestDatabase', () => {
  it('gives each call its own database and drops it even with sessions still open', async () => {
    const a = await createTestDatabase();
    const b = await createTestDatabase();
    try {
      expect(a.name).not.toBe(b.name);
      await a.query('CREATE TABLE t (v int)');
      await a.query('INSERT INTO t VALUES ($1)', [42]);
      expect((await a.query<{ v: number }>('SELECT v FROM t')).rows).toEqual([{ v: 42 }]);
      await expect(b.query('SELECT v FROM t')).rejects.toThrow(/does not exist/);

      const stray = new pg.Client({ connectionString: a.url });
      stray.on('error', () => undefined);
      await stray.connect();
      await a.drop();
      expect(await databaseExists(a.name)).toBe(false);
      await stray.end().catch(() => undefined);
    } finally {
      await a.drop();
      await b.drop();
    }
  });
});
