/**
 * The append-only audit trail, through the real CLI (dist/, `npm run build` first): every event
 * kind is recorded, records are only ever created (never rewritten), and `audit verify` finds an
 * edited or removed record by recomputing the chain.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable } from '../helpers/events-table.js';
import { AUDIT_PREFIX, type AuditRecord } from '../../src/compliance/audit-record.js';
import { StorageAuditTrail } from '../../src/compliance/audit-trail.js';
import { verifyAuditChain } from '../../src/compliance/verify-audit-chain.js';
import { readAuditRecords } from '../../src/compliance/audit-trail.js';

const fx = useArchiveFixture();

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args);
}

async function writeConfig(raw: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-audit-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(file, JSON.stringify(raw));
  return file;
}

async function auditKeys(): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of fx.store.list(AUDIT_PREFIX)) keys.push(o.key);
  return keys;
}

async function records(): Promise<(AuditRecord & { key: string })[]> {
  return (await readAuditRecords(fx.store, AUDIT_PREFIX)).map((r) => ({ key: r.key, ...(JSON.parse(r.body.toString('utf8')) as AuditRecord) }));
}

async function archiveAndRestore(): Promise<string> {
  await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
  await createEventsTable(fx.db, { rows: 5, stepMinutes: 60, endDaysAgo: 11, table: 'held_events' });
  await createEventsTable(fx.db, { rows: 5, stepMinutes: 60, endDaysAgo: 11, table: 'secret_events' });
  const file = await writeConfig({
    s3: fx.s3cfg,
    compliance: { operator: 'compliance-bot' },
    legal_holds: { holds: [{ table: 'held_events', reason: 'Case 77' }] },
    defaults: { retention_days: 10, batch_size: 8 },
    databases: [
      {
        name: 'app',
        url: fx.db.url,
        tables: [eventsTable, { name: 'missing_table', timestamp_column: 'happened_at' }, { name: 'held_events', timestamp_column: 'happened_at' }, { name: 'secret_events', timestamp_column: 'happened_at', critical: true }],
      },
    ],
  });
  const archive = await cli(['archive', '-c', file, '--quiet', '--json']);
  expect(archive.code).toBe(1);
  expect((await cli(['restore', '-c', file, '--table', 'events', '--quiet'])).code).toBe(0);
  // The same objects again, into rows that are there now: conflicts, a failed restore.
  expect((await cli(['restore', '-c', file, '--table', 'events', '--ignore-watermark', '--quiet'])).code).toBe(1);
  // A restore that stops before it starts (unknown table) leaves an ERROR record.
  expect((await cli(['restore', '-c', file, '--table', 'nope', '--quiet'])).code).toBe(2);
  return file;
}

describe('audit trail', () => {
  it('records every event kind with run id, operator, table, counts and object keys; each record is created once and never rewritten', async () => {
    const file = await archiveAndRestore();
    const all = await records();
    expect(new Set(all.map((r) => r.event))).toEqual(
      new Set(['ARCHIVE_START', 'ARCHIVE_PROGRESS', 'ARCHIVE_SUCCESS', 'ARCHIVE_FAILURE', 'LEGAL_HOLD_SKIP', 'POLICY_VIOLATION', 'RESTORE_START', 'RESTORE_SUCCESS', 'RESTORE_FAILURE', 'ERROR']),
    );
    expect(all.every((r) => r.operator === 'compliance-bot')).toBe(true);
    const success = all.find((r) => r.event === 'ARCHIVE_SUCCESS' && r.table === 'events')!;
    expect(success).toMatchObject({ database: 'app', schema: 'public', records: 20, status: 'archived' });
    expect(success.object_keys).toHaveLength(3);
    expect(success.bytes).toBeGreaterThan(0);
    // The same objects, recorded before their pending markers went; the end record lists them again.
    const progress = all.filter((r) => r.event === 'ARCHIVE_PROGRESS' && r.table === 'events');
    expect(progress.flatMap((r) => r.object_keys).sort()).toEqual([...success.object_keys].sort());
    expect(progress.reduce((n, r) => n + (r.records ?? 0), 0)).toBe(20);
    expect(all.find((r) => r.event === 'ARCHIVE_FAILURE' && r.table === 'missing_table')?.error?.code).toBe('TABLE_NOT_FOUND');
    expect(all.find((r) => r.event === 'LEGAL_HOLD_SKIP')).toMatchObject({ table: 'held_events', details: { holds: [{ source: 'config', reason: 'Case 77' }] } });
    expect(all.find((r) => r.event === 'POLICY_VIOLATION')).toMatchObject({ table: 'secret_events', error: { code: 'ENCRYPTION_REQUIRED' } });
    expect(all.find((r) => r.event === 'RESTORE_SUCCESS')).toMatchObject({ table: 'events', records: 20 });
    expect(all.find((r) => r.event === 'RESTORE_FAILURE')?.error?.code).toBe('RESTORE_CONFLICT');
    expect(all.find((r) => r.event === 'ERROR')?.error?.code).toBe('USAGE');
    // The chain: each record links to the one before it.
    all.forEach((r, i) => expect(r.prev_sha256 === null).toBe(i === 0));
    // Never overwritten: the server saw exactly one write per audit key, and no delete.
    const keys = await auditKeys();
    const auditEvents = fx.s3.events.filter((e) => e.key.includes('_auditlog/audit/'));
    expect(auditEvents.filter((e) => e.eventName.startsWith('ObjectCreated')).map((e) => e.key.slice(e.key.indexOf('_auditlog/'))).sort()).toEqual(keys.sort());
    expect(auditEvents.some((e) => e.eventName.startsWith('ObjectRemoved'))).toBe(false);

    const verify = await cli(['audit', 'verify', '-c', file]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain(`${all.length} record(s), 0 problem(s)`);
    const listed = JSON.parse((await cli(['audit', 'list', '-c', file, '--table', 'events', '--json'])).stdout) as { records: AuditRecord[] };
    // The run's ARCHIVE_START names the table (details.tables): listed with it, as verify --table scopes it.
    expect(listed.records.map((r) => r.event).filter((e) => e !== 'ARCHIVE_PROGRESS')).toEqual(['ARCHIVE_START', 'ARCHIVE_SUCCESS', 'RESTORE_START', 'RESTORE_SUCCESS', 'RESTORE_START', 'RESTORE_FAILURE']);
    const future = JSON.parse((await cli(['audit', 'list', '-c', file, '--since', '2999-01-01', '--json'])).stdout) as { records: AuditRecord[] };
    expect(future.records).toEqual([]);
  });

  it('audit verify exits 1 and names the record after one that was edited', async () => {
    const file = await archiveAndRestore();
    const keys = (await auditKeys()).sort();
    const victim = keys[2]!;
    const body = (await fx.store.get(victim))!.toString('utf8');
    await fx.store.put(victim, Buffer.from(body.replace(/"records":(\d+|null)/, '"records":999')));
    const verify = await cli(['audit', 'verify', '-c', file]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`BROKEN: ${keys[3]}`);
    expect(verify.stdout).toContain(`the record just before it is ${victim}`);
  });

  it('a record replaced by JSON that is no record (null, {}) is unreadable to list as to verify: counted, exit 1, the others listed', async () => {
    // Found by probing: text mode crashed with a stack trace, --json listed {"key":…} as a record and exited 0.
    const file = await archiveAndRestore();
    const keys = (await auditKeys()).sort();
    await fx.store.put(keys[1]!, Buffer.from('null'));
    await fx.store.put(keys[2]!, Buffer.from('{}'));
    const text = await cli(['audit', 'list', '-c', file]);
    expect(text.code).toBe(1);
    expect(text.stderr).toBe('');
    expect(text.stdout.trimEnd().split('\n')).toHaveLength(keys.length - 2 + 1);
    expect(text.stdout).toMatch(/\n2 record\(s\) could not be read: run `auditlog audit verify`\n$/);
    const json = await cli(['audit', 'list', '-c', file, '--json']);
    expect(json.code).toBe(1);
    const listed = JSON.parse(json.stdout) as { records: { key: string }[]; unreadable: number };
    expect(listed.unreadable).toBe(2);
    expect(listed.records.map((r) => r.key)).toEqual(keys.filter((_, i) => i !== 1 && i !== 2));
    expect((await cli(['audit', 'verify', '-c', file])).code).toBe(1);
  });

  it('audit verify --since / --table narrow the report, never the chain: a break before --since or at another table is not reported', async () => {
    const file = await archiveAndRestore();
    const keys = (await auditKeys()).sort();
    const victim = keys[2]!;
    const broken = keys[3]!;
    const body = (await fx.store.get(victim))!.toString('utf8');
    await fx.store.put(victim, Buffer.from(body.replace(/"records":(\d+|null)/, '"records":999')));
    const brokenRecord = JSON.parse((await fx.store.get(broken))!.toString('utf8')) as { at: string; table: string | null };
    const after = new Date(Date.parse(brokenRecord.at) + 60_000).toISOString();
    const later = await cli(['audit', 'verify', '-c', file, '--since', after, '--json']);
    expect(later.code).toBe(0);
    expect((JSON.parse(later.stdout) as { trails: { problems: unknown[] }[] }).trails[0]!.problems).toEqual([]);
    const from = await cli(['audit', 'verify', '-c', file, '--since', brokenRecord.at]);
    expect(from.code).toBe(1);
    expect(from.stdout).toContain(`BROKEN: ${broken}`);
    const otherTable = await cli(['audit', 'verify', '-c', file, '--table', 'no_such_table']);
    expect(otherTable.code).toBe(0);
    expect(otherTable.stdout).toContain('0 problem(s)');
  });

  it('audit verify exits 1 and names the record after one that was removed', async () => {
    const file = await archiveAndRestore();
    const keys = (await auditKeys()).sort();
    await fx.store.delete(keys[4]!);
    const verify = await cli(['audit', 'verify', '-c', file, '--json']);
    expect(verify.code).toBe(1);
    const report = JSON.parse(verify.stdout) as { ok: boolean; trails: { problems: { key: string; kind: string }[] }[] };
    expect(report.ok).toBe(false);
    expect(report.trails[0]!.problems).toEqual([expect.objectContaining({ key: keys[5], kind: 'broken-link' })]);
  });

  it('removing the oldest records is found too (the oldest left links to a record that is gone)', () => {
    const record = { at: '2026-01-01T00:00:00.000Z', event: 'ARCHIVE_START', run_id: 'r', error: null, prev_sha256: 'ab'.repeat(32) };
    const report = verifyAuditChain([{ key: `${AUDIT_PREFIX}b.json`, body: Buffer.from(JSON.stringify(record)) }]);
    expect(report.problems.map((p) => p.kind)).toEqual(['first-has-link']);
    // A body with a link and nothing else is no record, to verify as to list.
    const bare = verifyAuditChain([{ key: `${AUDIT_PREFIX}b.json`, body: Buffer.from(JSON.stringify({ prev_sha256: 'ab'.repeat(32) })) }]);
    expect(bare.problems.map((p) => p.kind)).toEqual(['unreadable']);
  });

  it('a record key is never written twice: a second writer with the same clock and run id fails instead of overwriting', async () => {
    const at = new Date('2026-11-30T01:00:00.000Z');
    const first = new StorageAuditTrail(fx.store, 'op', () => at);
    // Both open before either writes (the tail cannot tell them apart): only the existence check stops the second.
    const second = new StorageAuditTrail(fx.store, 'someone-else', () => at);
    await Promise.all([first.open(), second.open()]);
    await first.append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' });
    const [key] = await auditKeys();
    const original = await fx.store.get(key!);
    await expect(second.append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' })).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' });
    expect(await fx.store.get(key!)).toEqual(original);
    // Opened after it, a writer with that clock and run id names its record after the tail instead.
    const third = new StorageAuditTrail(fx.store, 'someone-else', () => at);
    await third.append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' });
    expect(await fx.store.get(key!)).toEqual(original);
    const keys = await auditKeys();
    expect(keys).toHaveLength(2);
    expect(keys[1]! > key!).toBe(true);
    expect(verifyAuditChain(await readAuditRecords(fx.store, AUDIT_PREFIX))).toMatchObject({ records: 2, problems: [], forks: [] });
  });

  it('folder markers under the trail (empty keys ending in "/", as the S3 console creates) are no records: list, verify and the next append skip them (found by probing)', async () => {
    const file = await writeConfig({ s3: fx.s3cfg, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] });
    const trail = new StorageAuditTrail(fx.store, 'a');
    await trail.append({ event: 'ARCHIVE_START', runId: 'run-0', status: 'started' });
    await trail.append({ event: 'ARCHIVE_SUCCESS', runId: 'run-0', status: 'ok' });
    const day = (await auditKeys())[0]!.split('/').slice(0, -1).join('/');
    await fx.s3.seedObjects([`${AUDIT_PREFIX}`, `${day}/`].map((key) => ({ key: `${fx.s3cfg.prefix}${key}`, body: Buffer.alloc(0) })));
    await new StorageAuditTrail(fx.store, 'b').append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' });
    const verify = await cli(['audit', 'verify', '-c', file]);
    expect(verify.stderr).toBe('');
    expect(verify.stdout).toContain('3 record(s), 0 problem(s), 0 fork(s)');
    expect(verify.code).toBe(0);
    const list = await cli(['audit', 'list', '-c', file, '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { records: AuditRecord[] }).records.map((r) => r.event)).toEqual(['ARCHIVE_START', 'ARCHIVE_SUCCESS', 'ARCHIVE_START']);
  });

  it('two runs appending at once fork the chain: verify reports the fork, and both branches still verify', async () => {
    const a = new StorageAuditTrail(fx.store, 'a');
    await a.append({ event: 'ARCHIVE_START', runId: 'run-0', status: 'started' });
    const b1 = new StorageAuditTrail(fx.store, 'b1');
    const b2 = new StorageAuditTrail(fx.store, 'b2');
    await Promise.all([b1.open(), b2.open()]);
    await b1.append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' });
    await b2.append({ event: 'ARCHIVE_START', runId: 'run-2', status: 'started' });
    await b1.append({ event: 'ARCHIVE_SUCCESS', runId: 'run-1', status: 'ok' });
    const report = verifyAuditChain(await readAuditRecords(fx.store, AUDIT_PREFIX));
    expect(report.records).toBe(4);
    expect(report.problems).toEqual([]);
    expect(report.forks).toHaveLength(1);
  });

  it('two runs starting on an empty trail at once fork at the root: a fork, not a removed record (found in review)', async () => {
    const a = new StorageAuditTrail(fx.store, 'a');
    const b = new StorageAuditTrail(fx.store, 'b');
    await Promise.all([a.open(), b.open()]);
    await a.append({ event: 'ARCHIVE_START', runId: 'run-a', status: 'started' });
    await b.append({ event: 'ARCHIVE_START', runId: 'run-b', status: 'started' });
    await a.append({ event: 'ARCHIVE_SUCCESS', runId: 'run-a', status: 'ok' });
    await b.append({ event: 'ARCHIVE_SUCCESS', runId: 'run-b', status: 'ok' });
    const stored = await readAuditRecords(fx.store, AUDIT_PREFIX);
    const report = verifyAuditChain(stored);
    expect(report).toMatchObject({ records: 4, problems: [] });
    expect(report.forks).toHaveLength(1);
    // A removal in either branch is still found.
    const sorted = [...stored].sort((x, y) => (x.key < y.key ? -1 : 1));
    expect(verifyAuditChain(sorted.filter((_, i) => i !== 1)).problems.map((p) => p.kind)).toEqual(['broken-link']);
  });

  it('a dry run writes no audit record', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 60, endDaysAgo: 11 });
    const file = await writeConfig({ s3: fx.s3cfg, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] });
    expect((await cli(['archive', '-c', file, '--dry-run', '--quiet'])).code).toBe(0);
    expect(await auditKeys()).toEqual([]);
  });
});
