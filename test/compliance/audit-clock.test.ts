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

  it('links are followed in key order only: a forged record inserted mid-trail, or the newest record renamed to sort first, is found (found in review)', () => {
    // Records written now always link to an earlier key, so a link to a later key is never benign.
    const stored: { key: string; body: Buffer }[] = [];
    let prev: string | null = null;
    const at = ['2026-11-30T10:00:00.000Z', '2026-11-30T10:00:01.000Z', '2026-11-30T10:00:02.000Z', '2026-11-30T10:00:03.000Z'];
    const keyOf = (t: string, runId: string, i: number): string => `${AUDIT_PREFIX}2026/11/30/${t.replace(/[-:]/g, '').replace('.', '')}-${runId}-00000${i}-ARCHIVE_START.json`;
    at.forEach((t, i) => {
      const record = buildAuditRecord({ event: 'ARCHIVE_START', runId: 'run-a', status: 'started' }, new Date(t), 'op', prev);
      const body = serializeAuditRecord(record);
      stored.push({ key: keyOf(t, record.run_id, i), body });
      prev = sha256Hex(body);
    });
    expect(verifyAuditChain(stored)).toMatchObject({ records: 4, problems: [], forks: [] });
    // (a) A forged record sorting right after the first, linking to the newest record.
    const forged = serializeAuditRecord(buildAuditRecord({ event: 'ARCHIVE_START', runId: 'run-x', status: 'started' }, new Date('2026-11-30T10:00:00.500Z'), 'op', prev));
    const withForged = [...stored, { key: keyOf('2026-11-30T10:00:00.500Z', 'run-x', 9), body: forged }];
    expect(verifyAuditChain(withForged).problems.map((p) => p.kind)).toContain('broken-link');
    // (b) The newest record renamed to sort first.
    const reordered = stored.map((s, i) => (i === 3 ? { key: keyOf('2026-11-30T09:59:59.000Z', 'run-a', 3), body: s.body } : s));
    expect(verifyAuditChain(reordered).problems.map((p) => p.kind)).toEqual(expect.arrayContaining(['first-has-link']));
  });
});
