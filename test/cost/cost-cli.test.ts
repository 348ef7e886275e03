import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';
import { PRICE_TABLE_DATE } from '../../src/cost/price-table.js';

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'auditlog-cost-'));
  await db.query(`CREATE TABLE audit (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text, payload jsonb)`);
  // 3000 rows past a 90-day retention spread over 30 UTC days (100 a day), and 500 recent ones.
  await db.query(
    `INSERT INTO audit SELECT i, date_trunc('day', now()) - interval '100 days' - (i % 30) * interval '1 day' + interval '1 hour',
            'user' || (i % 7) || '@example.com', jsonb_build_object('action', 'login', 'n', i)
       FROM generate_series(0, 2999) i`,
  );
  await db.query(`INSERT INTO audit SELECT i, now() - interval '1 day', 'new@example.com', '{}' FROM generate_series(3000, 3499) i`);
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('auditlog cost', () => {
  it('--config measures rows past retention, batches per UTC day and the compression of real rows', async () => {
    const config = join(dir, 'cost.yaml');
    await writeFile(
      config,
      `s3:\n  bucket: audit-archive\n  region: eu-central-1\ndefaults:\n  batch_size: 40\ndatabases:\n  - name: app\n    url: \${APP_URL}\n    tables:\n      - name: audit\n        timestamp_column: created_at\n`,
    );
    const result = await runCli(['cost', '--config', config, '--format', 'json'], { APP_URL: db.url });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      region: string; priceDate: string; records: number; objects: number; uncompressedGb: number; compressionRatio: number;
      classes: { storageClass: string }[]; measured: { rowsPastRetention: number; sampleRows: number; sampleUncompressedBytes: number; sampleCompressedBytes: number }[];
    };
    expect(report.region).toBe('eu-central-1');
    expect(report.priceDate).toBe(PRICE_TABLE_DATE);
    expect(report.records).toBe(3000);
    // 100 rows a day in batches of 40: 3 objects a day, 30 days.
    expect(report.objects).toBe(90);
    expect(report.measured[0]!.sampleRows).toBe(3000);
    // The JSON lines are about the size PostgreSQL renders the rows; the ratio is what gzip gives on them.
    const sql = await db.query<{ bytes: string }>(`SELECT sum(octet_length(row_to_json(a)::text) + 1)::text AS bytes FROM audit a WHERE created_at < now() - interval '90 days'`);
    const expectedBytes = Number(sql.rows[0]!.bytes);
    expect(report.uncompressedGb * 1024 ** 3).toBeGreaterThan(expectedBytes * 0.9);
    expect(report.uncompressedGb * 1024 ** 3).toBeLessThan(expectedBytes * 1.1);
    const lines = await db.query<{ line: string }>(`SELECT row_to_json(a)::text AS line FROM audit a WHERE created_at < now() - interval '90 days' ORDER BY created_at, id`);
    const gzipRatio = expectedBytes / gzipSync(lines.rows.map((r) => r.line).join('\n') + '\n', { level: 6 }).length;
    // Compressed per UTC day (as the archiver writes), so a little worse than one stream of everything.
    expect(report.compressionRatio).toBeGreaterThan(gzipRatio * 0.5);
    expect(report.compressionRatio).toBeLessThanOrEqual(gzipRatio * 1.1);
    expect(report.classes).toHaveLength(7);
  });

  it('--config on a table `archive` would refuse (a rule ON DELETE) says so in one line, exit 1, no estimate', async () => {
    await db.query(`CREATE TABLE soft_audit (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, deleted boolean NOT NULL DEFAULT false)`);
    await db.query(`CREATE RULE soft_audit_delete AS ON DELETE TO soft_audit DO INSTEAD UPDATE soft_audit SET deleted = true WHERE id = OLD.id`);
    await db.query(`INSERT INTO soft_audit SELECT i, now() - interval '200 days' FROM generate_series(1, 10) i`);
    const config = join(dir, 'cost-refused.yaml');
    await writeFile(config, `s3:\n  bucket: audit-archive\n  region: eu-central-1\ndatabases:\n  - name: app\n    url: \${APP_URL}\n    tables:\n      - name: soft_audit\n        timestamp_column: created_at\n`);
    const result = await runCli(['cost', '--config', config], { APP_URL: db.url });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^auditlog: public\.soft_audit \(database "app"\) has rule\(s\) ON DELETE public\.soft_audit\.soft_audit_delete: .*refused before any row was read.* \[TABLE_NOT_SUPPORTED\]\n$/);
    await db.query(`DROP TABLE soft_audit`);
  });

  it('--config leaves out what legal holds keep: rows of record-level holds, and a table under a table-level hold', async () => {
    await db.query(`CREATE TABLE IF NOT EXISTS audit_case (LIKE audit INCLUDING ALL)`);
    await db.query(`INSERT INTO audit_case SELECT * FROM audit ON CONFLICT DO NOTHING`);
    const config = join(dir, 'cost-holds.yaml');
    await writeFile(
      config,
      `s3:\n  bucket: audit-archive\n  region: eu-central-1\ndefaults:\n  batch_size: 40\n` +
        `legal_holds:\n  enabled: true\n  holds:\n    - { table: audit, where: "actor = 'user3@example.com'", reason: Case 12 }\n    - { table: audit_case, reason: Case 13 }\n` +
        `databases:\n  - name: app\n    url: \${APP_URL}\n    tables:\n      - name: audit\n        timestamp_column: created_at\n      - name: audit_case\n        timestamp_column: created_at\n`,
    );
    const result = await runCli(['cost', '--config', config, '--format', 'json'], { APP_URL: db.url });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { records: number; objects: number; measured: { table: string; rowsPastRetention: number; objects: number; sampleRows: number; holds?: string }[] };
    const free = await db.query<{ n: string; objects: string }>(
      `SELECT sum(n)::text AS n, sum(ceil(n / 40.0))::text AS objects FROM (SELECT count(*) AS n FROM audit WHERE created_at < now() - interval '90 days' AND actor <> 'user3@example.com' GROUP BY (created_at AT TIME ZONE 'UTC')::date) d`,
    );
    expect(Number(free.rows[0]!.n)).toBeLessThan(3000);
    expect(report.measured).toEqual([
      expect.objectContaining({ table: 'public.audit', rowsPastRetention: Number(free.rows[0]!.n), objects: Number(free.rows[0]!.objects), sampleRows: Number(free.rows[0]!.n), holds: 'records' }),
      expect.objectContaining({ table: 'public.audit_case', rowsPastRetention: 0, objects: 0, sampleRows: 0, holds: 'table' }),
    ]);
    expect(report.records).toBe(Number(free.rows[0]!.n));
    expect(report.objects).toBe(Number(free.rows[0]!.objects));
    const text = await runCli(['cost', '--config', config], { APP_URL: db.url });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('public.audit: ' + Number(free.rows[0]!.n).toLocaleString('en-US') + ' rows past retention');
    expect(text.stdout).toContain('(rows under record-level legal holds left out)');
    expect(text.stdout).toMatch(/public\.audit_case: 0 rows past retention.*table-level legal hold/);
  });

  it('--config on wide rows: the sample stays within its bytes, and objects are counted as the archiver writes them (max_batch_bytes)', async () => {
    // Found by probing: 5,000 rows of 200 KB were sampled whole (1.3 GB of memory), and a day of
    // wide rows counted as one object where the archiver wrote fifty.
    await db.query(`CREATE TABLE wide_audit (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, body text)`);
    // 400 rows of ~50 KB (20 MB of JSON lines), all on one UTC day 100 days back.
    await db.query(
      `INSERT INTO wide_audit SELECT i, date_trunc('day', now()) - interval '100 days' + i * interval '1 second',
              (SELECT string_agg(md5(i::text || '-' || j::text), '') FROM generate_series(1, 1560) j) FROM generate_series(1, 400) i`,
    );
    const archive = join(dir, 'wide-archive');
    const config = join(dir, 'cost-wide.yaml');
    await writeFile(
      config,
      `local:
  path: ${archive}
defaults:
  retention_days: 90
  max_batch_bytes: 1048576
databases:
  - name: app
    url: \${APP_URL}
    tables:
      - name: wide_audit
        timestamp_column: created_at
`,
    );
    const result = await runCli(['cost', '--config', config, '--region', 'us-east-1', '--json'], { APP_URL: db.url });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { objects: number; batchSize: number | null; measured: { rowsPastRetention: number; objects: number; rowsPerObject: number; sampleRows: number }[] };
    const measured = report.measured[0]!;
    expect(measured.rowsPastRetention).toBe(400);
    // The sample: at most 8 MiB of ~50 KB lines, not all 400 rows.
    expect(measured.sampleRows).toBeLessThan(400);
    expect(measured.sampleRows).toBeGreaterThan(100);
    // 1 MiB holds 20 lines of ~50 KB: 20 objects.
    expect(measured.rowsPerObject).toBe(20);
    expect(report.batchSize).toBe(20);

    // What the archiver writes is what was counted.
    const archived = await runCli(['archive', '--config', config, '--json'], { APP_URL: db.url });
    expect(archived.code).toBe(0);
    const summary = JSON.parse(archived.stdout) as { tables: { rowsArchived: number; batches: number }[] };
    expect(summary.tables[0]!.rowsArchived).toBe(400);
    expect(measured.objects).toBe(summary.tables[0]!.batches);
    expect(report.objects).toBe(summary.tables[0]!.batches);
    await db.query(`DROP TABLE wide_audit`);
  });

  it('--json with --format json, or either alone, prints JSON; the largest size accepted still estimates', async () => {
    for (const args of [['--json'], ['--format', 'json'], ['--json', '--format', 'json']]) {
      const result = await runCli(['cost', '--size', '1TB', ...args]);
      expect(result.code).toBe(0);
      expect((JSON.parse(result.stdout) as { records: number }).records).toBeGreaterThan(0);
    }
    const largest = await runCli(['cost', '--size', '9007199254740991', '--json']);
    expect(largest.code).toBe(0);
    expect(JSON.parse(largest.stdout) as { records: number }).toMatchObject({ records: Math.ceil(9007199254740991 / 500) });
  });

  it('prints a text table with the price date and the recommendation', async () => {
    const result = await runCli(['cost', '--size', '500GB', '--region', 'eu-west-1', '--months', '24']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`region eu-west-1, prices of ${PRICE_TABLE_DATE}`);
    expect(result.stdout).toMatch(/Cheapest sensible class over 24 months, one full restore included: [A-Z_]+/);
    expect(result.stdout).toMatch(/^DEEP_ARCHIVE .*not readable without a restore/m);
  });

  it('names the config key when the configured region is not in the price table (exit 2, before connecting)', async () => {
    const config = join(dir, 'far.yaml');
    await writeFile(config, `s3:\n  bucket: audit-archive\n  region: ap-nowhere-1\ndatabases:\n  - name: app\n    url: postgresql://nobody@127.0.0.1:1/none\n    tables:\n      - name: audit\n        timestamp_column: created_at\n`);
    const result = await runCli(['cost', '--config', config]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/s3\.region "ap-nowhere-1" of .*far\.yaml is not in the price table .*: pass --region/);
  });

  it.each([
    [['--size', '-5GB'], /--size "-5GB" is negative/],
    [['--size', '500XB'], /--size "500XB" is not a size/],
    [['--size', '1TB', '--region', 'atlantis-1'], /--region "atlantis-1" is not in the price table/],
    [['--records', '1000', '--class', 'GLACIAL'], /--class "GLACIAL" is not an S3 storage class/],
    [['--records', '-3'], /--records expects a whole number/],
    [['--size', '1TB', '--records', '5'], /exactly one of --config/],
    [['--size', '1TB', '--format', 'xml'], /argument 'xml' is invalid/],
    // Found in review: --batch-size was silently ignored with --config.
    [['--config', 'auditlog.yaml', '--batch-size', '500'], /--batch-size applies to --size and --records; with --config each table's own batch_size/],
    [['--config', 'auditlog.yaml', '--avg-row-bytes', '300'], /--avg-row-bytes applies to --size and --records/],
    // Found in review: one of the two silently won.
    [['--size', '1TB', '--json', '--format', 'text'], /--json and --format text contradict each other: pass one of them/],
    [['--size', '1TB', '--format', 'text', '--json'], /--json and --format text contradict each other/],
    // Found in review: no upper bound, so a typo gave a confident estimate with rounded counts.
    [['--size', '2EB'], /--size "2EB" is not a size/],
    [['--size', '500000PB'], /--size "500000PB" is too large: expected at most 9007199254740991 bytes \(just under 8PB\)/],
    [['--size', '8PB'], /--size "8PB" is too large/],
    [['--size', '9'.repeat(20)], /is too large/],
    [['--records', '9007199254740991'], /--records 9007199254740991 of --avg-row-bytes 500 is .* bytes, too large: expected at most 9007199254740991 bytes/],
    // Found by probing: an estimate of ∞ rows and ∞ objects, exit 0.
    [['--size', '1GB', '--avg-row-bytes', '1e-300'], /--avg-row-bytes expects a number of bytes of at least 1, got "1e-300"/],
    [['--size', '1GB', '--avg-row-bytes', '0'], /--avg-row-bytes expects a number of bytes of at least 1, got "0"/],
    // Found by probing: the storage is summed month by month, so this ran for hours instead of answering.
    [['--size', '1GB', '--months', '999999999999'], /--months expects a whole number from 1 to 1200, got "999999999999"/],
  ])('bad input %j: one-line error, exit 2', async (args, message) => {
    const result = await runCli(['cost', ...args]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n').filter((l) => !l.startsWith('(run with --help')).length).toBe(1);
  });
});
