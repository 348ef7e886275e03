/**
 * A run killed after some batches committed, then rerun (real CLI from dist/, real PostgreSQL,
 * S3 server): the trail must account for every committed object and row — the rerun records the
 * batches it confirmed as committed for the earlier run — and `audit verify` must flag the killed
 * run's ARCHIVE_START, which has no end record, once a later run proves it is over.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { AUDIT_PREFIX, type AuditRecord } from '../../src/compliance/audit-record.js';
import { readAuditRecords } from '../../src/compliance/audit-trail.js';
import type { BatchMetadata } from '../../src/core/batch-metadata.js';

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

async function writeConfig(defaults: Record<string, number> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-interrupted-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(file, JSON.stringify({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 8, batches_in_flight: 1, ...defaults }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] }));
  return file;
}

/** Table-level archive records: what an auditor sums to learn what was archived. */
function archiveRecordsOfTable(all: AuditRecord[]): AuditRecord[] {
  return all.filter((r) => r.table === 'events' && r.event.startsWith('ARCHIVE_'));
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
    const tableRecords = archiveRecordsOfTable(all);
    // Every committed object is in exactly one record, and the rows add up.
    const recorded = tableRecords.flatMap((r) => r.object_keys);
    expect([...recorded].sort()).toEqual([...objects.keys()].sort());
    expect(tableRecords.reduce((n, r) => n + (r.records ?? 0), 0)).toBe(40);
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
    expect(verify.stdout).toMatch(new RegExp(`UNFINISHED: .*run ${killedRunId} has no end record, and a later run of the same table`));
    // --since after the killed run leaves it out of the report: how an operator sets aside an interruption once reviewed.
    expect((await runCli(['audit', 'verify', '-c', file, '--since', '2999-01-01'])).code).toBe(0);
  });

  it('markers the killed run had already swept: their objects are in no record (documented limit), and verify flags the run', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    // A pause longer than the sweeper's 2 s age limit: batch 2's marker sweeps batch 1's and its own.
    const file = await writeConfig({ pause_between_batches_ms: 2_200 });
    expect((await runCli(['archive', '-c', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:3' })).signal).toBe('SIGKILL');
    const killedRunId = (await records()).find((r) => r.event === 'ARCHIVE_START')!.run_id;
    const rerun = await runCli(['archive', '-c', file, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect((JSON.parse(rerun.stdout) as { tables: { reconciled?: { committed: number } }[] }).tables[0]!.reconciled?.committed).toBe(1);
    const all = await records();
    const objects = await archivedObjects();
    const recorded = new Set(archiveRecordsOfTable(all).flatMap((r) => r.object_keys));
    const unrecorded = [...objects].filter(([k]) => !recorded.has(k));
    expect(unrecorded).toHaveLength(2);
    expect(unrecorded.every(([, o]) => o.runId === killedRunId)).toBe(true);
    const verify = await runCli(['audit', 'verify', '-c', file]);
    expect(verify.code, verify.stdout).toBe(1);
    expect(verify.stdout).toMatch(new RegExp(`UNFINISHED: .*run ${killedRunId} has no end record, and run \\S+ later confirmed batches`));
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
  });
});
