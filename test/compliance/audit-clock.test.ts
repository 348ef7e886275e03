/**
 * The audit chain under a clock that steps back: a second writer whose clock is behind the newest
 * record (another archiver host with clock skew, an NTP or VM clock step) must append after the
 * true tail, name its records after it, and leave a trail that verifies — while an edited or
 * removed record is still found.
 */
import { describe, expect, it } from 'vitest';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import { AUDIT_PREFIX, buildAuditRecord, serializeAuditRecord, sha256Hex, type AuditRecord } from '../../src/compliance/audit-record.js';
import { readAuditRecords, StorageAuditTrail } from '../../src/compliance/audit-trail.js';
import { verifyAuditChain } from '../../src/compliance/verify-audit-chain.js';

const fx = useArchiveFixture();

/** A clock that starts at `start` and moves 1 ms per reading. */
function clockAt(start: string): () => Date {
  let ms = Date.parse(start);
  return () => new Date(ms++);
}

async function appendRun(trail: StorageAuditTrail, runId: string): Promise<void> {
  await trail.open();
  await trail.append({ event: 'ARCHIVE_START', runId, status: 'started' });
  await trail.append({ event: 'ARCHIVE_SUCCESS', runId, table: 'events', records: 1, status: 'archived' });
  await trail.append({ event: 'ARCHIVE_SUCCESS', runId, status: 'ok' });
}

/** The trail in key order; each record's link must be the hash of the record just before it. */
async function expectLinearInKeyOrder(): Promise<{ key: string; body: Buffer }[]> {
  const stored = await readAuditRecords(fx.store, AUDIT_PREFIX);
  const links = stored.map((s) => (JSON.parse(s.body.toString('utf8')) as AuditRecord).prev_sha256);
  expect(links).toEqual([null, ...stored.slice(0, -1).map((s) => sha256Hex(s.body))]);
  return stored;
}

describe('audit trail and a clock that steps back', () => {
  it('a second writer 5 s behind appends after the tail: key order stays write order, verify finds no problem and no fork', async () => {
    await appendRun(new StorageAuditTrail(fx.store, 'host-a', clockAt('2026-11-30T10:00:05.000Z')), 'run-a');
    await appendRun(new StorageAuditTrail(fx.store, 'host-b', clockAt('2026-11-30T10:00:00.000Z')), 'run-b');
    const stored = await expectLinearInKeyOrder();
    expect(stored.map((s) => (JSON.parse(s.body.toString('utf8')) as AuditRecord).run_id)).toEqual(['run-a', 'run-a', 'run-a', 'run-b', 'run-b', 'run-b']);
    // The records keep what the clock said; only their names follow the tail.
    const bAt = Date.parse((JSON.parse(stored[3]!.body.toString('utf8')) as AuditRecord).at);
    expect(bAt).toBeLessThan(Date.parse('2026-11-30T10:00:01.000Z'));
    expect(stored[3]!.key > stored[2]!.key).toBe(true);
    const report = verifyAuditChain(stored);
    expect(report).toMatchObject({ records: 6, problems: [], forks: [], headSha256: sha256Hex(stored[5]!.body) });
    // A third run with a correct clock goes on from the true tail.
    await appendRun(new StorageAuditTrail(fx.store, 'host-a', clockAt('2026-11-30T10:00:09.000Z')), 'run-c');
    expect(verifyAuditChain(await expectLinearInKeyOrder())).toMatchObject({ records: 9, problems: [], forks: [] });
  });

  it('a clock behind the tail across midnight still finds the tail (in the next day) instead of forking from an older record', async () => {
    await appendRun(new StorageAuditTrail(fx.store, 'host-a', clockAt('2026-11-30T12:00:00.000Z')), 'run-0');
    await appendRun(new StorageAuditTrail(fx.store, 'host-a', clockAt('2026-12-01T00:00:02.000Z')), 'run-a');
    await appendRun(new StorageAuditTrail(fx.store, 'host-b', clockAt('2026-11-30T23:59:58.000Z')), 'run-b');
    const stored = await expectLinearInKeyOrder();
    expect(verifyAuditChain(stored)).toMatchObject({ records: 9, problems: [], forks: [] });
  });

  it('after writers with skewed clocks, an edited record and a removed record are still found', async () => {
    await appendRun(new StorageAuditTrail(fx.store, 'host-a', clockAt('2026-11-30T10:00:05.000Z')), 'run-a');
    await appendRun(new StorageAuditTrail(fx.store, 'host-b', clockAt('2026-11-30T10:00:00.000Z')), 'run-b');
    const keys = (await readAuditRecords(fx.store, AUDIT_PREFIX)).map((s) => s.key);
    const edited = keys[2]!;
    const body = (await fx.store.get(edited))!.toString('utf8');
    await fx.store.put(edited, Buffer.from(body.replace('"status":"ok"', '"status":"failed"')));
    const afterEdit = verifyAuditChain(await readAuditRecords(fx.store, AUDIT_PREFIX));
    expect(afterEdit.problems).toEqual([expect.objectContaining({ key: keys[3], kind: 'broken-link' })]);
    expect(afterEdit.problems[0]!.message).toContain(`the record just before it is ${edited}`);

    await fx.store.put(edited, Buffer.from(body));
    expect(verifyAuditChain(await readAuditRecords(fx.store, AUDIT_PREFIX)).problems).toEqual([]);
    await fx.store.delete(keys[4]!);
    expect(verifyAuditChain(await readAuditRecords(fx.store, AUDIT_PREFIX)).problems).toEqual([expect.objectContaining({ key: keys[5], kind: 'broken-link' })]);
    await fx.store.delete(keys[0]!);
    expect(verifyAuditChain(await readAuditRecords(fx.store, AUDIT_PREFIX)).problems.map((p) => [p.key, p.kind])).toEqual([
      [keys[1], 'first-has-link'],
      [keys[5], 'broken-link'],
    ]);
  });

  it('a trail written before the fix, with records named before their predecessor, verifies; a removal there is still found', () => {
    // As the old code wrote it: run b's clock 5 s behind named its records before run a's.
    const records: AuditRecord[] = [];
    const stored: { key: string; body: Buffer }[] = [];
    let prev: string | null = null;
    const at = ['2026-11-30T10:00:05.000Z', '2026-11-30T10:00:05.001Z', '2026-11-30T10:00:00.000Z', '2026-11-30T10:00:00.001Z'];
    at.forEach((t, i) => {
      const record = buildAuditRecord({ event: 'ARCHIVE_START', runId: i < 2 ? 'run-a' : 'run-b', status: 'started' }, new Date(t), 'op', prev);
      const body = serializeAuditRecord(record);
      records.push(record);
      stored.push({ key: `${AUDIT_PREFIX}2026/11/30/${t.replace(/[-:]/g, '').replace('.', '')}-${record.run_id}-00000${i}-ARCHIVE_START.json`, body });
      prev = sha256Hex(body);
    });
    const report = verifyAuditChain(stored);
    expect(report).toMatchObject({ records: 4, problems: [], forks: [] });
    // The newest record is the one nothing links to (run b's last), not the last key.
    expect(report.headSha256).toBe(sha256Hex(stored[3]!.body));
    // Removing run a's second record: run b's first (now the first key) links to nothing.
    expect(verifyAuditChain(stored.filter((_, i) => i !== 1)).problems.map((p) => [p.key, p.kind])).toEqual([[stored[2]!.key, 'first-has-link']]);
    // Removing the first record: the record after it links to nothing.
    expect(verifyAuditChain(stored.filter((_, i) => i !== 0)).problems.map((p) => [p.key, p.kind])).toEqual([[stored[1]!.key, 'broken-link']]);
    // Editing one: the record linking to it is broken.
    const edited = stored.map((s, i) => (i === 2 ? { key: s.key, body: Buffer.from(s.body.toString('utf8').replace('"started"', '"ok"')) } : s));
    expect(verifyAuditChain(edited).problems.map((p) => [p.key, p.kind])).toEqual([[stored[3]!.key, 'broken-link']]);
  });
});
