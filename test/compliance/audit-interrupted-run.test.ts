/**
 * A run killed after some batches committed, then rerun (real CLI from dist/, real PostgreSQL,
 * S3 server): the trail must account for every committed object and row — the rerun records the
 * batches it confirmed as committed for the earlier run — and `audit verify` must flag the killed
 * run's ARCHIVE_START, which has no end record, once a later run proves it is over. Batches whose
 * markers the killed run had already removed are in its ARCHIVE_PROGRESS records, written before
 * each removal; a removal whose record failed kept its markers for the rerun to record.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { AUDIT_PREFIX, type AuditRecord } from '../../src/compliance/audit-record.js';
import { readAuditRecords } from '../../src/compliance/audit-trail.js';
import type { BatchMetadata } from '../../src/core/batch-metadata.js';
import { readDatabaseAuditRecords } from '../../src/compliance/database-audit-trail.js';
import { buildCreateAuditTableSql } from '../../src/db/audit-queries.js';

const fx = useArchiveFixture();

async function records(): Promise<(AuditRecord & { key: string })[]> {
  return (await readAuditRecords(fx.store, AUDIT_PREFIX)).map((r) => ({ key: r.key, ...(JSON.parse(r.body.toString('utf8')) as AuditRecord) }));
}

/** Every data object of the archive with its row count and the run that wrote it (from its sidecar). */
async function archivedObjects(): Promise<Map<string, { rows: number; runId: string }>> {
  const out = new Map<string, { rows: number; runId: string }>();
  for await (const o of fx.store.list('app/')) {
    if (!o.key.endsWith('.metadata.json')) continue;
    const meta = JSON.parse((await fx.store.get(o.key))!.toString('utf8')) as BatchMetadata;
    out.set(o.key.replace(/\.metadata\.json$/, '.jsonl.gz'), { rows: meta.record_count, runId: meta.run_id });
  }
  return out;
}

async function writeConfig(defaults: Record<string, number> = {}, audit?: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-interrupted-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(
    file,
    JSON.stringify({
      s3: fx.s3cfg,
      ...(audit === undefined ? {} : { compliance: { audit } }),
      defaults: { retention_days: 10, batch_size: 8, batches_in_flight: 1, ...defaults },
      databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }],
    }),
  );
  return file;
}

/** The records of the database backend (compliance.audit.backend: database), in write order. */
async function dbRecords(): Promise<AuditRecord[]> {
  const pool = new pg.Pool({ connectionString: fx.db.url, max: 1 });
  try {
    return (await readDatabaseAuditRecords(pool, 'public', 'audit_trail')).map((r) => JSON.parse(r.body.toString('utf8')) as AuditRecord);
  } finally {
    await pool.end();
  }
}

/** Table-level archive records: what an auditor sums to learn what was archived. */
function archiveRecordsOfTable(all: AuditRecord[]): AuditRecord[] {
  return all.filter((r) => r.table === 'events' && r.event.startsWith('ARCHIVE_'));
}

const isEnd = (r: AuditRecord): boolean => r.event === 'ARCHIVE_SUCCESS' || r.event === 'ARCHIVE_FAILURE';

/**
 * What the trail says was archived from the table, counted as docs/compliance.md ("Counting what
 * was archived") says: per run, its end record of the table when it wrote one, else its
 * ARCHIVE_PROGRESS records; then each ARCHIVE_RECONCILED object that no record taken so far names.
 * `twice`: keys named by two of the records taken before the reconciled ones (must be none).
 */
function tallyTrail(all: AuditRecord[]): { rows: number; keys: string[]; twice: string[] } {
  const table = archiveRecordsOfTable(all);
  const ended = new Set(table.filter(isEnd).map((r) => r.run_id));
  const taken = table.filter((r) => isEnd(r) || (r.event === 'ARCHIVE_PROGRESS' && !ended.has(r.run_id)));
  const named = taken.flatMap((r) => r.object_keys);
  const keys = new Set(named);
  let rows = taken.reduce((n, r) => n + (r.records ?? 0), 0);
  for (const r of table.filter((x) => x.event === 'ARCHIVE_RECONCILED')) {
    if (r.object_keys.every((k) => keys.has(k))) continue;
    r.object_keys.forEach((k) => keys.add(k));
    rows += r.records ?? 0;
  }
  return { rows, keys: [...keys].sort(), twice: named.filter((k, i) => named.indexOf(k) !== i) };
}

describe('audit trail of an interrupted run', () => {
  it('after a kill with committed batches in flight and a rerun, the trail names every committed object and row, and verify flags the unfinished run', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const file = await writeConfig();
    const killed = await runCli(['archive', '-c', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' });
    expect(killed.signal).toBe('SIGKILL');
    // Batches never span two UTC days, so how many rows 3 batches held depends on the hour.
    const deletedByKilledRun = 40 - (await rowIds(fx.db)).length;
    expect(deletedByKilledRun).toBeGreaterThan(0);
    const killedRunId = (await records()).find((r) => r.event === 'ARCHIVE_START')!.run_id;

    // No later run yet: the killed run cannot be told from one still running; not a problem, but named.
    const before = await runCli(['audit', 'verify', '-c', file]);
    expect(before.code, before.stdout).toBe(0);
    expect(before.stdout).toContain(`run ${killedRunId}`);
    expect(before.stdout).toContain('no end record yet');

    const rerun = await runCli(['archive', '-c', file, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { tables: { reconciled?: { committed: number } }[] }).tables[0]!.reconciled?.committed).toBe(3);
    expect((await rowIds(fx.db)).length).toBe(0);

    const all = await records();
    const objects = await archivedObjects();
    expect([...objects.values()].reduce((n, o) => n + o.rows, 0)).toBe(40);
    // Every committed object is in the trail, and the rows add up, counted by object key.
    const tally = tallyTrail(all);
    expect(tally.keys).toEqual([...objects.keys()].sort());
    expect(tally.twice).toEqual([]);
    expect(tally.rows).toBe(40);
    // The killed run's objects are attributed to it.
    const reconciled = all.filter((r) => r.event === 'ARCHIVE_RECONCILED');
    expect(reconciled.length).toBeGreaterThan(0);
    for (const r of reconciled) expect(r.details).toMatchObject({ batch_run_id: killedRunId });
    const killedObjects = [...objects].filter(([, o]) => o.runId === killedRunId).map(([k]) => k);
    expect(killedObjects).toHaveLength(3);
    expect(reconciled.flatMap((r) => r.object_keys).sort()).toEqual(killedObjects.sort());
    expect(reconciled.reduce((n, r) => n + (r.records ?? 0), 0)).toBe(deletedByKilledRun);

    const list = await runCli(['audit', 'list', '-c', file, '--table', 'events']);
    expect(list.stdout).toMatch(new RegExp(`ARCHIVE_RECONCILED +app/public.events run=\\S+ batch_run=${killedRunId} `));

    const verify = await runCli(['audit', 'verify', '-c', file]);
    expect(verify.code, verify.stdout).toBe(1);
    expect(verify.stdout).toContain('1 problem(s)');
    expect(verify.stdout).toMatch(new RegExp(`UNFINISHED: .*ARCHIVE_START.*run ${killedRunId}`));
    const json = JSON.parse((await runCli(['audit', 'verify', '-c', file, '--json'])).stdout) as { ok: boolean; trails: { problems: { kind: string }[] }[] };
    expect(json.ok).toBe(false);
    expect(json.trails[0]!.problems.map((p) => p.kind)).toEqual(['unfinished-run']);
  });

  it('a run killed before anything committed is flagged once a later run of its table has finished', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const file = await writeConfig();
    expect((await runCli(['archive', '-c', file, '--quiet'], { AUDITLOG_FAULT: 'after-read:1' })).signal).toBe('SIGKILL');
    const killedRunId = (await records()).find((r) => r.event === 'ARCHIVE_START')!.run_id;
    expect((await runCli(['archive', '-c', file, '--quiet'])).code).toBe(0);
    expect((await records()).some((r) => r.event === 'ARCHIVE_RECONCILED')).toBe(false);
    const verify = await runCli(['audit', 'verify', '-c', file]);
    expect(verify.code, verify.stdout).toBe(1);
    expect(verify.stdout).toMatch(new RegExp(`UNFINISHED: .*run ${killedRunId} has no end record, and a later run \\([^)]*\\) started after it and archived one of its tables`));
    // --since after the killed run leaves it out of the report: how an operator sets aside an interruption once reviewed.
    expect((await runCli(['audit', 'verify', '-c', file, '--since', '2999-01-01'])).code).toBe(0);
    // --table of the killed run's table keeps it: its ARCHIVE_START (a run's record, no table of
    // its own) names the table. Found by probing: it was out of scope, and verify said ok.
    for (const table of ['events', 'public.events']) {
      const scoped = await runCli(['audit', 'verify', '-c', file, '--table', table]);
      expect(scoped.code, scoped.stdout).toBe(1);
      expect(scoped.stdout).toMatch(new RegExp(`UNFINISHED: .*run ${killedRunId} has no end record`));
    }
    expect((await runCli(['audit', 'verify', '-c', file, '--table', 'other_table'])).code).toBe(0);
  });

  it('markers the killed run had already swept: their objects were recorded (ARCHIVE_PROGRESS) before the markers went, and verify flags the run', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    // A pause longer than the sweeper's 2 s age limit: batch 2's marker sweeps batch 1's and its own.
    const file = await writeConfig({ pause_between_batches_ms: 2_200 });
    expect((await runCli(['archive', '-c', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' })).signal).toBe('SIGKILL');
    const killedRunId = (await records()).find((r) => r.event === 'ARCHIVE_START')!.run_id;
    const deletedByKilledRun = 40 - (await rowIds(fx.db)).length;
    const progress = (await records()).filter((r) => r.event === 'ARCHIVE_PROGRESS');
    expect(progress).toHaveLength(1);
    expect(progress[0]).toMatchObject({ run_id: killedRunId, table: 'events', status: 'committed', details: { batches: 2 } });
    const rerun = await runCli(['archive', '-c', file, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { tables: { reconciled?: { committed: number } }[] }).tables[0]!.reconciled?.committed).toBe(1);
    const all = await records();
    const objects = await archivedObjects();
    // Before the fix the two swept objects were in no record.
    const tally = tallyTrail(all);
    expect(tally.keys).toEqual([...objects.keys()].sort());
    expect(tally.twice).toEqual([]);
    expect(tally.rows).toBe(40);
    const killedObjects = [...objects].filter(([, o]) => o.runId === killedRunId);
    expect(killedObjects).toHaveLength(3);
    const killedRecords = archiveRecordsOfTable(all).filter((r) => r.run_id === killedRunId || r.details?.batch_run_id === killedRunId);
    expect(killedRecords.flatMap((r) => r.object_keys).sort()).toEqual(killedObjects.map(([k]) => k).sort());
    expect(killedRecords.reduce((n, r) => n + (r.records ?? 0), 0)).toBe(deletedByKilledRun);
    const list = await runCli(['audit', 'list', '-c', file, '--table', 'events']);
    expect(list.stdout).toMatch(new RegExp(`ARCHIVE_PROGRESS +app/public.events run=${killedRunId} .*status=committed records=${progress[0]!.records} `));
    const verify = await runCli(['audit', 'verify', '-c', file]);
    expect(verify.code, verify.stdout).toBe(1);
    expect(verify.stdout).toContain('1 problem(s)');
    expect(verify.stdout).toMatch(new RegExp(`UNFINISHED: .*run ${killedRunId} has no end record, and run \\S+ later confirmed batches`));
  });

  it('an audit record that cannot be written at the sweep keeps the markers: the next run reconciles the batches and records them', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const file = await writeConfig({ pause_between_batches_ms: 2_200 }, { backend: 'database', schema: 'public', table: 'audit_trail' });
    await fx.db.query(buildCreateAuditTableSql('public', 'audit_trail'));
    // The audit backend refuses progress records only (disk full, a revoked grant...), as database-audit-trail.test.ts does.
    await fx.db.query(`CREATE FUNCTION refuse_progress() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.event = 'ARCHIVE_PROGRESS' THEN RAISE EXCEPTION 'audit disk full'; END IF; RETURN NEW; END $$`);
    await fx.db.query('CREATE TRIGGER refuse_progress BEFORE INSERT ON public.audit_trail FOR EACH ROW EXECUTE FUNCTION refuse_progress()');
    const killed = await runCli(['archive', '-c', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' });
    expect(killed.signal).toBe('SIGKILL');
    const deletedByKilledRun = 40 - (await rowIds(fx.db)).length;
    // The sweep of batches 1 and 2 was not recorded, so it removed nothing: all three markers are left.
    const markers: string[] = [];
    for await (const o of fx.store.list('_auditlog/pending/')) markers.push(o.key);
    expect(markers).toHaveLength(3);
    expect(killed.stderr).toContain('their pending markers are kept');
    const killedRunId = (await dbRecords()).find((r) => r.event === 'ARCHIVE_START')!.run_id;
    expect((await dbRecords()).map((r) => r.event)).toEqual(['ARCHIVE_START']);

    await fx.db.query('DROP TRIGGER refuse_progress ON public.audit_trail');
    const rerun = await runCli(['archive', '-c', file, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { tables: { reconciled?: { committed: number } }[] }).tables[0]!.reconciled?.committed).toBe(3);
    const left: string[] = [];
    for await (const o of fx.store.list('_auditlog/pending/')) left.push(o.key);
    expect(left).toEqual([]);
    const all = await dbRecords();
    const reconciled = all.filter((r) => r.event === 'ARCHIVE_RECONCILED');
    expect(reconciled).toHaveLength(3);
    for (const r of reconciled) expect(r.details).toMatchObject({ batch_run_id: killedRunId });
    expect(reconciled.reduce((n, r) => n + (r.records ?? 0), 0)).toBe(deletedByKilledRun);
    const objects = await archivedObjects();
    const tally = tallyTrail(all);
    expect(tally.keys).toEqual([...objects.keys()].sort());
    expect(tally.rows).toBe(40);
  });

  it('a reconciled batch whose ARCHIVE_RECONCILED record cannot be written keeps its marker: a later run records it', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const file = await writeConfig({}, { backend: 'database', schema: 'public', table: 'audit_trail' });
    await fx.db.query(buildCreateAuditTableSql('public', 'audit_trail'));
    const killed = await runCli(['archive', '-c', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' });
    expect(killed.signal).toBe('SIGKILL');
    const killedRunId = (await dbRecords()).find((r) => r.event === 'ARCHIVE_START')!.run_id;
    const markersLeft = async (): Promise<string[]> => {
      const keys: string[] = [];
      for await (const o of fx.store.list('_auditlog/pending/')) keys.push(o.key);
      return keys;
    };
    expect(await markersLeft()).toHaveLength(3);

    // The audit backend refuses the reconciliation records only.
    await fx.db.query(`CREATE FUNCTION refuse_reconciled() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.event = 'ARCHIVE_RECONCILED' THEN RAISE EXCEPTION 'audit disk full'; END IF; RETURN NEW; END $$`);
    await fx.db.query('CREATE TRIGGER refuse_reconciled BEFORE INSERT ON public.audit_trail FOR EACH ROW EXECUTE FUNCTION refuse_reconciled()');
    const refused = await runCli(['archive', '-c', file, '--json']);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain('its pending marker is kept');
    // Not counted as reconciled while unrecorded: the run that records them counts them (found in review).
    expect((JSON.parse(refused.stdout) as { tables: { reconciled?: unknown }[] }).tables[0]!.reconciled).toBeUndefined();
    expect(await markersLeft()).toHaveLength(3);
    expect((await dbRecords()).some((r) => r.event === 'ARCHIVE_RECONCILED')).toBe(false);

    await fx.db.query('DROP TRIGGER refuse_reconciled ON public.audit_trail');
    const rerun = await runCli(['archive', '-c', file, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await markersLeft()).toEqual([]);
    const all = await dbRecords();
    const reconciled = all.filter((r) => r.event === 'ARCHIVE_RECONCILED');
    expect(reconciled).toHaveLength(3);
    for (const r of reconciled) expect(r.details).toMatchObject({ batch_run_id: killedRunId });
    const objects = await archivedObjects();
    const tally = tallyTrail(all);
    expect(tally.keys).toEqual([...objects.keys()].sort());
    expect(tally.rows).toBe(40);
  });

  it('a clean run after a clean run verifies with no problem and nothing open', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const file = await writeConfig();
    expect((await runCli(['archive', '-c', file, '--quiet'])).code).toBe(0);
    expect((await runCli(['archive', '-c', file, '--quiet'])).code).toBe(0);
    const verify = await runCli(['audit', 'verify', '-c', file]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toContain('0 problem(s)');
    expect(verify.stdout).not.toContain('no end record');
    // Records naming objects count them in the text form; the keys are in --json.
    const list = await runCli(['audit', 'list', '-c', file, '--table', 'events']);
    expect(list.stdout).toMatch(/ARCHIVE_SUCCESS +app\/public\.events run=\S+ operator=\S+ status=archived records=20 objects=\d+ /);
    const keys = (JSON.parse((await runCli(['audit', 'list', '-c', file, '--table', 'events', '--json'])).stdout) as { records: { event: string; object_keys: string[] }[] }).records
      .filter((r) => r.event === 'ARCHIVE_SUCCESS')
      .flatMap((r) => r.object_keys);
    expect(Number(/objects=(\d+)/.exec(list.stdout)![1])).toBe(keys.length);
  });
});
