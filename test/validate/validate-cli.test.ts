/**
 * `auditlog validate` through the real executable: exit codes 0/1/2, the JSON report against the
 * text report, --output, progress on stderr only, and the uncommitted objects a killed run leaves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metadataKeyFor } from '../../src/core/archive-layout.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { ValidationReport } from '../../src/validate/validate-report.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  s3 = await startS3Server();
  dir = await mkdtemp(join(tmpdir(), 'validate-cli-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh table and a config file (JSON is YAML) for it; `table` keeps the tests' tables apart. */
async function setup(table: string, storage: Record<string, unknown>, defaults: Record<string, number> = {}): Promise<string> {
  await createEventsTable(db, { table, rows: 30, stepMinutes: 120, endDaysAgo: 11 });
  const file = join(dir, `${table}.json`);
  const config = { ...storage, defaults: { retention_days: 10, batch_size: 7, ...defaults }, databases: [{ name: 'app', url: db.url, tables: [{ name: table, timestamp_column: 'happened_at' }] }] };
  await writeFile(file, JSON.stringify(config));
  return file;
}

describe('auditlog validate (CLI)', () => {
  it('exit 0 on a clean archive, 1 once it is damaged; the JSON report has the same content as the text report', async () => {
    const path = join(dir, 'clean');
    const file = await setup('clean', { local: { path } });
    expect((await runCli(['archive', '--config', file, '--quiet'])).code).toBe(0);
    const clean = await runCli(['validate', '--config', file]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/app\/public\.clean: \d+ objects, 30 rows, .*0 problem\(s\), 0 warning\(s\)/);
    expect(clean.stdout).toContain('result: OK');

    const store = new LocalObjectStore({ path });
    const objects = (await inspectArchive(store)).objects;
    await store.delete(metadataKeyFor(objects[0]!.key));
    await store.put(objects[1]!.key, (await store.get(objects[1]!.key))!.subarray(0, 20));
    const text = await runCli(['validate', '--config', file, '--deep']);
    expect(text.code).toBe(1);
    const json = await runCli(['validate', '--config', file, '--deep', '--format', 'json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as ValidationReport;
    expect(report.ok).toBe(false);
    expect(report.totals).toMatchObject({ tables: 1, objects: objects.length, problems: 2, byCode: { MISSING_METADATA: 1, SIZE_MISMATCH: 1 } });
    const t = report.totals;
    expect(text.stdout).toContain(`total: 1 table(s), ${t.objects} objects, ${t.rows} rows`);
    expect(text.stdout).toContain('2 problem(s), 0 warning(s) (MISSING_METADATA 1, SIZE_MISMATCH 1)');
    for (const f of report.tables[0]!.findings) expect(text.stdout).toContain(`PROBLEM ${f.code} ${f.key}: ${f.message}`);
    expect(text.stdout).toContain('result: PROBLEMS FOUND');
    // --json is --format json; --output writes the report there and nothing to stdout.
    const out = join(dir, 'report.json');
    const toFile = await runCli(['validate', '--config', file, '--deep', '--json', '--output', out]);
    expect(toFile.code).toBe(1);
    expect(toFile.stdout).toBe('');
    const fromFile = JSON.parse(await readFile(out, 'utf8')) as ValidationReport;
    expect(fromFile.tables).toEqual(report.tables);
  });

  it('a sidecar whose data_object names another object fails the run (exit 1) with DATA_OBJECT_MISMATCH, in text and JSON (found by probing)', async () => {
    const path = join(dir, 'renamed');
    const file = await setup('renamed', { local: { path } });
    expect((await runCli(['archive', '--config', file, '--quiet'])).code).toBe(0);
    const store = new LocalObjectStore({ path });
    const [a, b] = (await inspectArchive(store)).objects;
    const meta = JSON.parse((await store.get(metadataKeyFor(a!.key)))!.toString('utf8')) as { data_object: string };
    meta.data_object = b!.meta.data_object;
    await store.put(metadataKeyFor(a!.key), Buffer.from(JSON.stringify(meta)));
    const text = await runCli(['validate', '--config', file]);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout).toContain(`PROBLEM DATA_OBJECT_MISMATCH ${metadataKeyFor(a!.key)}: data_object is "${b!.meta.data_object}", expected "${a!.meta.data_object}"`);
    expect(text.stdout).toContain('1 problem(s), 0 warning(s) (DATA_OBJECT_MISMATCH 1)');
    const json = await runCli(['validate', '--config', file, '--json']);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as ValidationReport).tables[0]!.findings.map((f) => [f.code, f.key, f.severity])).toEqual([['DATA_OBJECT_MISMATCH', metadataKeyFor(a!.key), 'problem']]);
  });

  it('a day directory moved to another volume and linked back is validated and restored; once its target is gone, exit 1, never "OK" (found by probing)', async () => {
    const path = join(dir, 'linked');
    const file = await setup('linked', { local: { path } });
    expect((await runCli(['archive', '--config', file, '--quiet'])).code).toBe(0);
    const objects = (await inspectArchive(new LocalObjectStore({ path }))).objects;
    const key = objects[0]!.key;
    const day = key.slice(0, key.lastIndexOf('/'));
    const inDay = objects.filter((o) => o.key.startsWith(`${day}/`));
    const cold = join(dir, 'linked-cold');
    await mkdir(cold);
    await rename(join(path, day), join(cold, 'day'));
    await symlink(join(cold, 'day'), join(path, day));
    const linked = await runCli(['validate', '--config', file, '--deep', '--json']);
    expect(linked.code, linked.stderr).toBe(0);
    expect((JSON.parse(linked.stdout) as ValidationReport).totals).toMatchObject({ objects: objects.length, rows: 30, problems: 0 });
    const restored = await runCli(['restore', '--config', file, '--table', 'linked', '--target-table', 'public.linked_back', '--quiet']);
    expect(restored.code, restored.stderr).toBe(0);
    expect((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM public.linked_back')).rows[0]!.n).toBe('30');

    await rm(join(cold, 'day'), { recursive: true });
    const broken = await runCli(['validate', '--config', file]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).not.toContain('result: OK');
    expect(broken.stderr.trim().split('\n')).toHaveLength(1);
    expect(broken.stderr).toContain(`${day} under `);
    expect(broken.stderr).toContain('STORAGE_IO');
    expect(inDay.length).toBeGreaterThan(0);
  });

  it('progress goes to stderr, never into the JSON on stdout', async () => {
    const file = await setup('progress', { local: { path: join(dir, 'progress') } });
    expect((await runCli(['archive', '--config', file, '--quiet'])).code).toBe(0);
    const r = await runCli(['validate', '--config', file, '--format', 'json', '--progress-interval', '0.000001']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
    expect(r.stderr).toMatch(/validate: \d+\/\d+ objects, .* read, [\d.]+ MB\/s/);
  });

  it('exit 2 with one line on usage errors: --from after --to, a bad day, an unknown format, an unknown table', async () => {
    const file = await setup('usage', { local: { path: join(dir, 'usage') } });
    const reversed = await runCli(['validate', '--config', file, '--from', '2025-03-02', '--to', '2025-03-01']);
    expect(reversed.code).toBe(2);
    expect(reversed.stderr.trim().split('\n')).toHaveLength(1);
    expect(reversed.stderr).toContain('--from 2025-03-02 is after --to 2025-03-01');
    const badDay = await runCli(['validate', '--config', file, '--from', '2025-02-30']);
    expect(badDay.code).toBe(2);
    expect(badDay.stderr).toContain('--from expects a calendar day as YYYY-MM-DD');
    for (const day of ['2026-13-01', '2026-00-01']) {
      const badMonth = await runCli(['validate', '--config', file, '--from', day]);
      expect(badMonth.code, badMonth.stderr).toBe(2);
      expect(badMonth.stderr.trim().split('\n')).toEqual([`auditlog: --from expects a calendar day as YYYY-MM-DD (UTC), got "${day}" [USAGE]`]);
    }
    expect((await runCli(['validate', '--config', file, '--format', 'xml'])).code).toBe(2);
    // One of the two silently won before.
    const contradiction = await runCli(['validate', '--config', file, '--json', '--format', 'text']);
    expect(contradiction.code).toBe(2);
    expect(contradiction.stderr.trim().split('\n')).toEqual(['auditlog: --json and --format text contradict each other: pass one of them (--json is the same as --format json) [USAGE]']);
    const table = await runCli(['validate', '--config', file, '--table', 'nope']);
    expect(table.code).toBe(2);
    expect(table.stderr).toContain('--table nope is not in the configuration');
    expect((await runCli(['validate', '--config', join(dir, 'missing.yaml')])).code).toBe(2);
    // No archive at local.path: a wrong path, not a clean archive.
    const nowhere = await runCli(['validate', '--config', file]);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain(`local.path ${join(dir, 'usage')} is not a directory`);
  });

  it('--help lists every flag; unreachable storage is exit 1 with one line that names the endpoint and no secret', async () => {
    const help = await runCli(['validate', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--config', '--database', '--table', '--from', '--to', '--deep', '--deep-threshold', '--concurrency', '--check-database', '--check-audit', '--format', '--json', '--output', '--progress-interval']) {
      expect(help.stdout).toContain(flag);
    }
    const file = join(dir, 'down.json');
    await writeFile(
      file,
      JSON.stringify({
        s3: { bucket: 'audit-archive', endpoint: 'http://127.0.0.1:9', force_path_style: true, access_key_id: 'AKIAEXAMPLE', secret_access_key: 's3cr3t-value-xyz', retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 20 } },
        databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }],
      }),
    );
    const r = await runCli(['validate', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('STORAGE_UNREACHABLE');
    expect(r.stderr).toContain('http://127.0.0.1:9');
    expect(r.stdout + r.stderr).not.toContain('s3cr3t-value-xyz');

    // An --output that cannot be written is refused before the storage is touched (the
    // unreachable endpoint would say STORAGE_UNREACHABLE): not after hours of reading (found by probing).
    for (const [output, why] of [
      [join(dir, 'no-such-dir', 'report.json'), /its directory .*no-such-dir/],
      [dir, /it is a directory/],
    ] as const) {
      const early = await runCli(['validate', '--config', file, '--output', output]);
      expect(early.code, early.stderr).toBe(2);
      expect(early.stderr.trim().split('\n')).toHaveLength(1);
      expect(early.stderr).toContain(`cannot write the report to ${output}`);
      expect(early.stderr).toMatch(why);
      expect(early.stderr).toContain('[USAGE]');
    }
  });

  it('a run killed after an upload leaves uncommitted objects: listed as warnings apart from corruption, exit 0 (s3rver)', async () => {
    const s3cfg = s3.s3Config({ prefix: `killed-${Date.now()}/` });
    const file = await setup('killed', { s3: s3cfg }, { batches_in_flight: 1 });
    const crashed = await runCli(['archive', '--config', file, '--quiet'], { AUDITLOG_FAULT: 'after-upload:3' });
    expect(crashed.signal).toBe('SIGKILL');
    const r = await runCli(['validate', '--config', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ValidationReport;
    const findings = report.tables[0]!.findings;
    // Batches 1 and 2 committed, but the process died before their markers' bulk removal: they are
    // listed as uncommitted too (the safe reading) until the next archive run reconciles them.
    expect(findings.map((f) => [f.code, f.severity])).toEqual(Array.from({ length: 3 }, () => ['UNCOMMITTED_OBJECT', 'warning']));
    const archive = await inspectArchive(new S3ObjectStore(s3cfg));
    expect(archive.withoutMetadata).toHaveLength(1);
    expect(findings.map((f) => f.key).sort()).toEqual([...archive.withoutMetadata, ...archive.objects.map((o) => o.key)].sort());
    expect(report.totals).toMatchObject({ problems: 0, warnings: 3 });
    const text = await runCli(['validate', '--config', file]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`warning UNCOMMITTED_OBJECT ${archive.withoutMetadata[0]!}`);
  });
});
