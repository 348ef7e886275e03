import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';

async function queryOnce<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('startEmbeddedPostgres', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'auditlog-embedded-test-'));
    // When the tests run as root the server runs as the postgres user, who must be able to enter here.
    await chmod(root, 0o711);
  });

  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('initialises a data directory, serves queries, and reuses the directory on a second start', async () => {
    const dataDir = join(root, 'cluster');
    const first = await startEmbeddedPostgres({ dataDir });
    try {
      const [row] = await queryOnce<{ major: string }>(first.url, "SELECT current_setting('server_version_num')::int / 10000 AS major");
      expect(Number(row?.major)).toBeGreaterThanOrEqual(15);
      await queryOnce(first.url, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('survives a restart')");
    } finally {
      await first.stop();
    }

    const second = await startEmbeddedPostgres({ dataDir });
    try {
      const rows = await queryOnce<{ note: string }>(second.url, 'SELECT note FROM kept');
      expect(rows).toEqual([{ note: 'survives a restart' }]);
    } finally {
      await second.stop();
    }
  });

  it('refuses a non-empty directory that is not a PostgreSQL data directory', async () => {
    const dataDir = join(root, 'not-a-cluster');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'precious.txt'), 'do not touch');
    await expect(startEmbeddedPostgres({ dataDir })).rejects.toMatchObject({
      code: 'EMBEDDED_POSTGRES',
      message: expect.stringContaining('neither empty nor a PostgreSQL data directory'),
    });
  });

  it.runIf(process.getuid?.() === 0)('as root, names the directory the postgres user cannot enter', async () => {
    const closed = join(root, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    await expect(startEmbeddedPostgres({ dataDir: join(closed, 'cluster') })).rejects.toMatchObject({
      code: 'EMBEDDED_POSTGRES',
      message: expect.stringContaining(`chmod o+x ${closed}`),
    });
  });
});
