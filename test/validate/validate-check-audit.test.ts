/**
 * `auditlog validate --check-audit`: a batch removed whole (data object and sidecar) leaves nothing
 * under the table's prefix, so the object checks pass; the audit trail still names it. Through
 * the real executable, against real PostgreSQL and a local directory or s3rver; the audit trail
 * in storage or in the database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_PREFIX, buildAuditRecord, serializeAuditRecord, type AuditEntry } from '../../src/compliance/audit-record.js';
import type { Config } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load-config.js';
import { legacyTablePrefix, metadataKeyFor, tablePrefix } from '../../src/core/archive-layout.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { AuditTrailSource } from '../../src/validate/check-audit.js';
import { validateArchive } from '../../src/validate/validate-archive.js';
import type { ReportedFinding, ValidationReport } from '../../src/validate/validate-report.js';
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
  dir = await mkdtemp(join(tmpdir(), 'validate-audit-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * A fresh table of 30 rows over three UTC days (batch_size 7: five objects, two days with two) and
 * a config file for it (JSON is YAML).
 */
async function setup(table: string, storage: Record<string, unknown>, audit: Record<string, unknown> = {}): Promise<string> {
  await createEventsTable(db, { table, rows: 30, stepMinutes: 120, endDaysAgo: 11 });
  const file = join(dir, `${table}.json`);
  const config = {
    ...storage,
    defaults: { retention_days: 10, batch_size: 7 },
    compliance: { audit },
    databases: [{ name: 'app', url: db.url, tables: [{ name: table, timestamp_column: 'happened_at' }] }],
  };
  await writeFile(file, JSON.stringify(config));
  return file;
}

/** Archives the table; returns its committed objects (keys and days) and the run id. */
async function archive(file: string, store: ObjectStore): Promise<{ objects: { key: string; day: string }[]; runId: string }> {
  const run = await runCli(['archive', '--config', file, '--quiet', '--json']);
  expect(run.code, run.stderr).toBe(0);
  const objects = (await inspectArchive(store)).objects.map((o) => ({ key: o.key, day: /year=(\d{4})\/month=(\d{2})\/day=(\d{2})/.exec(o.key)!.slice(1).join('-'), runId: o.meta.run_id }));
  expect(objects).toHaveLength(5);
  return { objects, runId: objects[0]!.runId };
}

/** An object of a day that holds another one too: that day's partition still exists once it is removed. */
function victimOf(objects: { key: string; day: string }[]): { key: string; day: string } {
  return objects.find((o) => objects.filter((x) => x.day === o.day).length > 1)!;
}

const missing = (report: ValidationReport): ReportedFinding[] => report.tables.flatMap((t) => t.findings.filter((f) => f.code === 'MISSING_OBJECT'));

describe('auditlog validate --check-audit', () => {
  it('a batch removed whole (object and sidecar): plain validate still says OK; --check-audit exits 1 naming exactly that key and its run, in text and JSON (local, trail in storage)', async () => {
    const path = join(dir, 'whole');
    const file = await setup('whole', { local: { path } });
    const store = new LocalObjectStore({ path });
    const { objects, runId } = await archive(file, store);

    // Untouched: the trail and the store agree.
    const clean = await runCli(['validate', '--config', file, '--check-audit', '--json']);
    expect(clean.code, clean.stderr).toBe(0);
    const cleanReport = JSON.parse(clean.stdout) as ValidationReport;
    expect(cleanReport).toMatchObject({ ok: true, checkAudit: true, audit: { unreadable: 0 } });
    // Each object is named by its progress record and by the table's end record.
    expect(cleanReport.audit!.recordedObjects).toBe(2 * objects.length);
    expect(cleanReport.audit!.sources).toEqual([expect.stringMatching(/^storage /)]);

    const victim = victimOf(objects);
    await store.delete(victim.key);
    await store.delete(metadataKeyFor(victim.key));

    // The limitation the option closes: nothing is left under the prefix to check.
    const plain = await runCli(['validate', '--config', file, '--deep']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain('result: OK');

    const json = await runCli(['validate', '--config', file, '--check-audit', '--json']);
    expect(json.code, json.stderr).toBe(1);
    const report = JSON.parse(json.stdout) as ValidationReport;
    expect(report.ok).toBe(false);
    expect(report.totals).toMatchObject({ problems: 1, byCode: { MISSING_OBJECT: 1 } });
    const [finding] = missing(report);
    expect(finding).toMatchObject({ code: 'MISSING_OBJECT', key: victim.key, runId, severity: 'problem' });
    expect(finding!.message).toContain(`run ${runId}`);
    expect(finding!.message).toMatch(/restore the object and its sidecar from a backup or a versioned bucket/);

    const text = await runCli(['validate', '--config', file, '--check-audit']);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('; audit trail checked');
    expect(text.stdout).toMatch(new RegExp(`audit trail \\(storage .*\\): \\d+ record\\(s\\) read, ${2 * objects.length} committed object\\(s\\) recorded in the selection`));
    expect(text.stdout).toContain(`PROBLEM MISSING_OBJECT ${victim.key}: ${finding!.message}`);
    expect(text.stdout).toContain('1 problem(s), 0 warning(s) (MISSING_OBJECT 1)');
    expect(text.stdout).toContain('result: PROBLEMS FOUND');

    // --from/--to: only the days validated. Outside the removed batch's day it is not reported; on it, it is.
    const others = [...new Set(objects.map((o) => o.day))].filter((d) => d !== victim.day).sort();
    const before = others.filter((d) => d < victim.day);
    const after = others.filter((d) => d > victim.day);
    const ranges: [string, string][] = [];
    if (before.length > 0) ranges.push([before[0]!, before[before.length - 1]!]);
    if (after.length > 0) ranges.push([after[0]!, after[after.length - 1]!]);
    expect(ranges.length).toBeGreaterThan(0);
    for (const [from, to] of ranges) {
      const outside = await runCli(['validate', '--config', file, '--check-audit', '--from', from, '--to', to]);
      expect(outside.code, outside.stdout + outside.stderr).toBe(0);
      expect(outside.stdout).not.toContain('MISSING_OBJECT');
    }
    const open = await runCli(['validate', '--config', file, '--check-audit', '--json', '--from', victim.day]);
    expect(open.code).toBe(1);
    expect(missing(JSON.parse(open.stdout) as ValidationReport).map((f) => f.key)).toEqual([victim.key]);
    const onDay = await runCli(['validate', '--config', file, '--check-audit', '--json', '--from', victim.day, '--to', victim.day]);
    expect(onDay.code).toBe(1);
    expect(missing(JSON.parse(onDay.stdout) as ValidationReport).map((f) => f.key)).toEqual([victim.key]);
  });

  it('a sidecar left without its data object is ORPHAN_METADATA only, never reported twice; an object without its sidecar is not missing', async () => {
    const path = join(dir, 'halves');
    const file = await setup('halves', { local: { path } });
    const store = new LocalObjectStore({ path });
    const { objects } = await archive(file, store);
    await store.delete(objects[0]!.key);
    await store.delete(metadataKeyFor(objects[1]!.key));
    const r = await runCli(['validate', '--config', file, '--check-audit', '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as ValidationReport;
    expect(report.tables[0]!.findings.map((f) => [f.code, f.key])).toEqual(
      [
        ['ORPHAN_METADATA', metadataKeyFor(objects[0]!.key)],
        ['MISSING_METADATA', objects[1]!.key],
      ].sort((a, b) => (a[1]! < b[1]! ? -1 : 1)),
    );
  });

  it('audit backend database (s3rver archive): the removed batch is named from the audit table', async () => {
    const s3cfg = s3.s3Config({ prefix: `audit-db-${Date.now()}/` });
    const file = await setup('dbtrail', { s3: s3cfg }, { backend: 'database' });
    const store = new S3ObjectStore(s3cfg);
    const { objects, runId } = await archive(file, store);
    // Nothing of the trail in the bucket: only the audit table can name the batch.
    for await (const info of store.list(AUDIT_PREFIX)) throw new Error(`unexpected ${info.key}`);
    const clean = await runCli(['validate', '--config', file, '--check-audit']);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toContain('audit trail (table public.auditlog_audit_trail)');

    const victim = victimOf(objects);
    await store.delete(victim.key);
    await store.delete(metadataKeyFor(victim.key));
    expect((await runCli(['validate', '--config', file])).code).toBe(0);
    const r = await runCli(['validate', '--config', file, '--check-audit', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const found = missing(JSON.parse(r.stdout) as ValidationReport);
    expect(found.map((f) => [f.key, f.runId])).toEqual([[victim.key, runId]]);
    expect(found[0]!.message).toContain('table public.auditlog_audit_trail');
  });

  it('backend none is refused with one CONFIG_INVALID line (exit 2); a trail that cannot be read is one line, exit 1; --help names the option', async () => {
    const path = join(dir, 'none');
    const file = await setup('none', { local: { path } }, { backend: 'none' });
    expect((await runCli(['archive', '--config', file, '--quiet'])).code).toBe(0);
    const r = await runCli(['validate', '--config', file, '--check-audit']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--check-audit .*compliance\.audit\.backend is none.*configure compliance\.audit.*\[CONFIG_INVALID\]$/m);
    // Without the option the same archive validates as before.
    expect((await runCli(['validate', '--config', file])).code).toBe(0);

    // The audit database is down: the trail cannot be read.
    const down = join(dir, 'down.json');
    await writeFile(
      down,
      JSON.stringify({
        local: { path },
        compliance: { audit: { backend: 'database' } },
        databases: [{ name: 'app', url: 'postgres://postgres@127.0.0.1:9/nowhere', tables: [{ name: 'none', timestamp_column: 'happened_at' }] }],
      }),
    );
    const unreadable = await runCli(['validate', '--config', down, '--check-audit']);
    expect(unreadable.code, unreadable.stderr).toBe(1);
    expect(unreadable.stdout).toBe('');
    expect(unreadable.stderr.trim().split('\n')).toHaveLength(1);
    expect(unreadable.stderr).toMatch(/^auditlog: --check-audit: the audit trail \(table public\.auditlog_audit_trail\) could not be read: .*\[DB_CONNECT\]$/m);

    const help = await runCli(['validate', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--check-audit');
  });

  it('an audit record that cannot be read fails the check (exit 1) and says to run audit verify', async () => {
    const path = join(dir, 'garbled');
    const file = await setup('garbled', { local: { path } });
    const store = new LocalObjectStore({ path });
    await archive(file, store);
    await store.put(`${AUDIT_PREFIX}2099/01/01/20990101T000000000Z-x-000001-ARCHIVE_PROGRESS.json`, Buffer.from('{"not":"a record"'));
    const r = await runCli(['validate', '--config', file, '--check-audit']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('PROBLEM 1 audit record(s) could not be read');
    expect(r.stdout).toContain('auditlog audit verify');
    expect(r.stdout).toContain('result: PROBLEMS FOUND');
    // Counted in the totals, which a script may read instead of ok (found in review).
    const json = await runCli(['validate', '--config', file, '--check-audit', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, audit: { unreadable: 1 }, totals: { problems: 1 } });
  });
});

describe('validateArchive with audit sources: which records name committed objects', () => {
  /** The trail as `audit list` streams it, from entries. */
  function source(entries: AuditEntry[]): AuditTrailSource {
    return {
      name: 'storage test',
      read: async function* () {
        let i = 0;
        for (const e of entries) yield { key: `r${String(++i).padStart(6, '0')}`, body: serializeAuditRecord(buildAuditRecord(e, new Date(Date.UTC(2026, 0, 1, 0, 0, i)), 'test', null)) };
      },
    };
  }

  it('progress, reconciled and table-level success/failure records count; run-level, restore and other tables\' records do not; old-layout keys are looked for where they were moved and where they were written', async () => {
    const path = join(dir, 'unit');
    const store = new LocalObjectStore({ path });
    const file = join(dir, 'unit.json');
    await writeFile(
      file,
      JSON.stringify({
        local: { path },
        databases: [{ name: 'app', url: db.url, tables: [{ name: 'c', schema: 'a.b', timestamp_column: 'happened_at' }, { name: 'other', timestamp_column: 'happened_at' }] }],
      }),
    );
    const config: Config = await loadConfig(file, {});
    const prefix = tablePrefix('app', 'a.b', 'c');
    const legacy = legacyTablePrefix('app', 'a.b', 'c')!;
    const key = (p: string, n: number): string => `${p}year=2025/month=01/day=0${n}/000000000000-${n}.jsonl.gz`;
    // Present objects (their contents do not matter here: only MISSING_OBJECT is looked at).
    await store.put(key(prefix, 1), Buffer.from('x'));
    await store.put(key(prefix, 7), Buffer.from('x')); // moved from the old layout
    await store.put(key(legacy, 8), Buffer.from('x')); // still where an old version wrote it
    const t = { database: 'app', schema: 'a.b', table: 'c' };
    const entries: AuditEntry[] = [
      { event: 'ARCHIVE_START', runId: 'r1', status: 'started', objectKeys: [key(prefix, 9)] },
      { event: 'ARCHIVE_PROGRESS', runId: 'r1', ...t, status: 'committed', objectKeys: [key(prefix, 1), key(prefix, 2)] },
      { event: 'ARCHIVE_FAILURE', runId: 'r1', ...t, status: 'failed', objectKeys: [key(prefix, 1), key(prefix, 2), key(prefix, 3)] },
      { event: 'ARCHIVE_RECONCILED', runId: 'r2', ...t, status: 'committed', objectKeys: [key(prefix, 4)], details: { batch_run_id: 'r0' } },
      { event: 'ARCHIVE_SUCCESS', runId: 'r2', ...t, status: 'archived', objectKeys: [key(prefix, 5)] },
      { event: 'ARCHIVE_SUCCESS', runId: 'r2', status: 'ok', objectKeys: [key(prefix, 9)] },
      { event: 'RESTORE_SUCCESS', runId: 'r3', ...t, status: 'ok', objectKeys: [key(prefix, 9)] },
      { event: 'ARCHIVE_SUCCESS', runId: 'r4', database: 'app', schema: 'public', table: 'other', status: 'archived', objectKeys: [key(prefix, 9)] },
      { event: 'ARCHIVE_SUCCESS', runId: 'r5', ...t, status: 'archived', objectKeys: [key(legacy, 6), key(legacy, 7), key(legacy, 8)] },
    ];
    const report = await validateArchive({ config, store, databases: config.databases, deepThreshold: 0, concurrency: 2, checkDatabase: false, auditSources: [source(entries)] });
    const found = missing(report);
    expect(found.map((f) => [f.key, f.runId])).toEqual([
      [key(prefix, 2), 'r1'],
      [key(prefix, 3), 'r1'],
      [key(prefix, 4), 'r2'],
      [key(prefix, 5), 'r2'],
      [key(prefix, 6), 'r5'],
    ]);
    expect(found[2]!.message).toContain('run r2 (written by run r0)');
    expect(found[4]!.message).toContain(`written as ${key(legacy, 6)}`);
    // A range keeps only its days.
    const ranged = await validateArchive({ config, store, databases: config.databases, range: { from: '2025-01-03', to: '2025-01-04' }, deepThreshold: 0, concurrency: 2, checkDatabase: false, auditSources: [source(entries)] });
    expect(missing(ranged).map((f) => f.key)).toEqual([key(prefix, 3), key(prefix, 4)]);
    // Without sources, nothing of the kind.
    const plain = await validateArchive({ config, store, databases: config.databases, deepThreshold: 0, concurrency: 2, checkDatabase: false });
    expect(missing(plain)).toEqual([]);
    expect(plain.checkAudit).toBe(false);
  });

  it('a batch committed after the listing (its record read later) is asked of the store again, not reported missing', async () => {
    const path = join(dir, 'late');
    const store = new LocalObjectStore({ path });
    const file = join(dir, 'late.json');
    await writeFile(file, JSON.stringify({ local: { path }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'late', timestamp_column: 'happened_at' }] }] }));
    const config: Config = await loadConfig(file, {});
    const late = `${tablePrefix('app', 'public', 'late')}year=2025/month=02/day=01/000000000000-late.jsonl.gz`;
    const gone = `${tablePrefix('app', 'public', 'late')}year=2025/month=02/day=02/000000000000-gone.jsonl.gz`;
    const trail = source([{ event: 'ARCHIVE_PROGRESS', runId: 'r9', database: 'app', schema: 'public', table: 'late', status: 'committed', objectKeys: [late, gone] }]);
    const racing: AuditTrailSource = {
      name: trail.name,
      read: async function* () {
        // An archive run commits the batch between validate's listing and its reading of the trail.
        await store.put(late, Buffer.from('x'));
        await store.put(metadataKeyFor(late), Buffer.from('{}'));
        yield* trail.read();
      },
    };
    const report = await validateArchive({ config, store, databases: config.databases, deepThreshold: 0, concurrency: 2, checkDatabase: false, auditSources: [racing] });
    expect(missing(report).map((f) => f.key)).toEqual([gone]);
  });
});
