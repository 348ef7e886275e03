/**
 * Large batches through the real CLI: killed with SIGKILL in the middle of a multipart upload
 * (AUDITLOG_FAULT=mid-multipart), the rerun resumes that upload from its record and archives
 * every row exactly once; orphaned uploads of earlier runs are aborted at the start of a run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import { recordScenario } from '../resilience/figures.js';
import { MULTIPART_STATE_PREFIX } from '../../src/storage/multipart-state.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let raw: S3Client;
let dir: string;

beforeAll(async () => {
  s3 = await startS3Server();
  raw = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  dir = await mkdtemp(join(tmpdir(), 'multipart-crash-'));
});

afterAll(async () => {
  raw.destroy();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function uploadsUnder(prefix: string): Promise<string[]> {
  const out = await raw.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

/** `rows` rows of ~1 MB of hex each (gzip keeps about half), all on one UTC day 20 days ago. */
async function createBigTable(db: TestDatabase, rows: number): Promise<Map<string, string>> {
  await db.query(`CREATE TABLE big_events (id bigint PRIMARY KEY, happened_at timestamptz NOT NULL, payload text NOT NULL)`);
  await db.query(
    `INSERT INTO big_events
     SELECT g, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '20 days' + make_interval(mins => g),
            (SELECT string_agg(md5(g::text || ':' || i::text || ':' || random()::text), '') FROM generate_series(1, 32768) i)
       FROM generate_series(1, $1) g`,
    [rows],
  );
  const r = await db.query<{ id: string; line: string }>(`SELECT id::text AS id, row_to_json(t)::text AS line FROM big_events t`);
  return new Map(r.rows.map((x) => [x.id, x.line]));
}

describe('SIGKILL in the middle of a multipart upload', () => {
  it('resumes the upload on the rerun and archives every row exactly once', async () => {
    const db = await createTestDatabase();
    try {
      const old = await createBigTable(db, 40);
      const expected = await expectRowsOf(db, { table: 'big_events' });
      const prefix = `mp-crash-${Date.now()}/`;
      const s3Config = s3.s3Config({ prefix, multipart_threshold_mb: 5, multipart_part_size_mb: 5 });
      const file = join(dir, 'crash.json');
      await writeFile(
        file,
        JSON.stringify({
          s3: s3Config,
          defaults: { retention_days: 10, batch_size: 20, batches_in_flight: 1, max_batch_bytes: 64 * 1024 * 1024 }, // 20 rows of 1 MB a batch: objects past the multipart threshold
          databases: [{ name: 'app', url: db.url, tables: [{ name: 'big_events', timestamp_column: 'happened_at' }] }],
        }),
      );
      const store = new S3ObjectStore(s3Config);
      try {
        const crashed = await runCli(['archive', '--config', file, '--quiet'], { AUDITLOG_FAULT: 'mid-multipart:1' });
        expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
        // The kill left the upload and its resume record; nothing was deleted from the table.
        expect(await uploadsUnder(prefix)).toHaveLength(1);
        const records: string[] = [];
        for await (const o of store.list(MULTIPART_STATE_PREFIX)) records.push(o.key);
        expect(records).toHaveLength(1);
        expect((await db.query(`SELECT count(*)::int AS n FROM big_events`)).rows[0].n).toBe(40);
        const atCrash = await checkArchiveInvariant({ db, table: { table: 'big_events' }, source: { s3: s3Config }, expected });
        expect(atCrash.rowsLost + atCrash.rowsDuplicated + atCrash.staleCopies, atCrash.problems.join('\n')).toBe(0);

        const rerun = await runCli(['archive', '--config', file, '--json']);
        expect(rerun.code, rerun.stderr).toBe(0);
        const resumed = rerun.stderr
          .split('\n')
          .filter((line) => line.includes('resumed an interrupted multipart upload'))
          .map((line) => JSON.parse(line) as { parts_reused: number; parts_uploaded: number });
        expect(resumed).toHaveLength(1);
        expect(resumed[0]!.parts_reused).toBeGreaterThanOrEqual(1);
        expect(resumed[0]!.parts_reused + resumed[0]!.parts_uploaded).toBe(3);

        const archive = await inspectArchive(store);
        expect(archive.pendingMarkers).toEqual([]);
        expect(archive.withoutMetadata).toEqual([]);
        expect(archive.allKeys.filter((k) => k.startsWith(MULTIPART_STATE_PREFIX))).toEqual([]);
        const seen = new Map<string, number>();
        for (const o of archive.objects) {
          o.meta.primary_keys.forEach((k, i) => {
            seen.set(k[0]!, (seen.get(k[0]!) ?? 0) + 1);
            expect(o.lines[i] === old.get(k[0]!), `row ${k[0]} differs from the original`).toBe(true);
          });
        }
        expect([...seen.keys()].sort()).toEqual([...old.keys()].sort());
        expect([...seen.values()].every((n) => n === 1)).toBe(true);
        expect((await db.query(`SELECT count(*)::int AS n FROM big_events`)).rows[0].n).toBe(0);
        expect(await uploadsUnder(prefix)).toEqual([]);
        // The independent checker of the fault-injection suite, and its figures (docs/reliability.md).
        const report = await checkArchiveInvariant({ db, table: { table: 'big_events' }, source: { s3: s3Config }, expected });
        expect(report.problems).toEqual([]);
        expect(report.rowsArchived).toBe(40);
        await recordScenario('SIGKILL mid-multipart upload (AUDITLOG_FAULT=mid-multipart:1), resumed by the rerun', 'archiver process (SIGKILL after the first part of a 3-part upload), s3 storage', report);
      } finally {
        store.destroy();
      }
    } finally {
      await db.drop();
    }
  });
});

describe('cleanup at the start of archive', () => {
  it('aborts an orphaned upload older than multipart_orphan_age_hours and says so in the log', async () => {
    const db = await createTestDatabase();
    try {
      await createEventsTable(db, { rows: 4, stepMinutes: 30, endDaysAgo: 11 });
      const prefix = `mp-start-${Date.now()}/`;
      const orphanKey = `${prefix}app/public.events/year=2020/month=01/day=01/000000000000-orphan.jsonl.gz`;
      await raw.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: orphanKey }));
      await s3.backdateUploads(30);
      const file = join(dir, 'start.json');
      await writeFile(
        file,
        JSON.stringify({
          s3: s3.s3Config({ prefix }),
          defaults: { retention_days: 10 },
          databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }],
        }),
      );
      const run = await runCli(['archive', '--config', file, '--json']);
      expect(run.code, run.stderr).toBe(0);
      const aborted = run.stderr.split('\n').filter((line) => line.includes('aborted an orphaned multipart upload'));
      expect(aborted).toHaveLength(1);
      expect(JSON.parse(aborted[0]!)).toMatchObject({ key: orphanKey.slice(prefix.length), older_than_hours: 24 });
      expect(await uploadsUnder(prefix)).toEqual([]);
    } finally {
      await db.drop();
    }
  });
});
