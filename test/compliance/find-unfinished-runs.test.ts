/** Which start records without an end record verify reports as a problem, and which as open (pure). */
import { describe, expect, it } from 'vitest';
import { buildAuditRecord, type AuditEntry } from '../../src/compliance/audit-record.js';
import { findUnfinishedRuns } from '../../src/compliance/find-unfinished-runs.js';

const events = { database: 'app', schema: 'public', table: 'events' };
const other = { database: 'app', schema: 'public', table: 'other' };

function trail(entries: AuditEntry[]): { key: string; record: ReturnType<typeof buildAuditRecord> }[] {
  return entries.map((e, i) => ({ key: `k${String(i).padStart(3, '0')}`, record: buildAuditRecord(e, new Date(1_000 + i), 'op', null) }));
}
const start = (runId: string, tables?: (typeof events)[]): AuditEntry => ({ event: 'ARCHIVE_START', runId, status: 'started', ...(tables === undefined ? {} : { details: { tables } }) });
const end = (runId: string): AuditEntry => ({ event: 'ARCHIVE_SUCCESS', runId, status: 'ok' });

describe('findUnfinishedRuns', () => {
  it('a run with its end record is neither; a run alone without one is open (it may still be running)', () => {
    expect(findUnfinishedRuns(trail([start('a', [events]), end('a'), start('b', [events])]))).toEqual({ unfinished: [], open: [{ key: 'k002', runId: 'b', event: 'ARCHIVE_START' }] });
  });

  it('a later run that archived one of its tables (a table-level ARCHIVE_SUCCESS: it held the lock) proves it over', () => {
    const r = findUnfinishedRuns(trail([start('a', [events, other]), start('b', [events]), { event: 'ARCHIVE_SUCCESS', runId: 'b', ...events, status: 'archived' }, end('b')]));
    expect(r.unfinished).toMatchObject([{ runId: 'a', overBecause: expect.stringContaining('a later run (b) started after it and archived one of its tables') }]);
    expect(r.open).toEqual([]);
  });

  it('a later run that only ended does not: refused with LOCK_HELD by the live run, or stopped before the table (found in review: a cron overlap)', () => {
    const refused = findUnfinishedRuns(
      trail([start('a', [events]), start('b', [events]), { event: 'ARCHIVE_FAILURE', runId: 'b', ...events, status: 'failed', details: { code: 'LOCK_HELD' } }, { event: 'ARCHIVE_FAILURE', runId: 'b', status: 'failed' }]),
    );
    expect(refused.unfinished).toEqual([]);
    expect(refused.open.map((o) => o.runId)).toEqual(['a']);
    // A success of the table by a run that started before this one proves nothing either.
    const earlier = findUnfinishedRuns(trail([start('b', [events]), start('a', [events]), { event: 'ARCHIVE_SUCCESS', runId: 'b', ...events, status: 'archived' }, end('b')]));
    expect(earlier.unfinished).toEqual([]);
  });

  it('a later run of another table, or one still going, does not: the first may be running alongside', () => {
    expect(findUnfinishedRuns(trail([start('a', [events]), start('b', [other]), end('b'), start('c', [events])])).unfinished).toEqual([]);
  });

  it('a later run that confirmed batches of it (ARCHIVE_RECONCILED) proves it over, even with no tables on its start', () => {
    const r = findUnfinishedRuns(
      trail([start('a'), start('b'), { event: 'ARCHIVE_RECONCILED', runId: 'b', ...events, records: 8, objectKeys: ['x'], status: 'committed', details: { batch_run_id: 'a' } }]),
    );
    expect(r.unfinished).toMatchObject([{ runId: 'a', overBecause: expect.stringContaining('run b later confirmed') }]);
    expect(r.open.map((o) => o.runId)).toEqual(['b']);
  });

  it('starts written before tables were recorded are only ever open by the later-run rule (old trails do not turn red)', () => {
    expect(findUnfinishedRuns(trail([start('a'), start('b'), end('b')])).unfinished).toEqual([]);
  });

  it('restores: per run and table, only ever open (two restores of one source may run at once: found in review); ERROR ends a run', () => {
    const rs = (runId: string): AuditEntry => ({ event: 'RESTORE_START', runId, ...events, status: 'started' });
    const r = findUnfinishedRuns(
      trail([rs('r1'), rs('r2'), { event: 'RESTORE_SUCCESS', runId: 'r2', ...events, status: 'ok' }, start('a', [events]), { event: 'ERROR', runId: 'a', status: 'error' }]),
    );
    expect(r.unfinished).toEqual([]);
    expect(r.open.map((o) => o.runId)).toEqual(['r1']);
  });
});
