/**
 * The run's typed events (src/core/run-events.ts): what monitoring, notifications and the audit
 * trail see must add up to what the run did, and a failing listener must never change the run.
 */
import { describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { RunEvents, type RunEventMap, type RunEventName } from '../../src/core/run-events.js';

const fx = useArchiveFixture();

function record(events: RunEvents): { name: RunEventName; payload: RunEventMap[RunEventName] }[] {
  const seen: { name: RunEventName; payload: RunEventMap[RunEventName] }[] = [];
  for (const name of ['run:started', 'table:started', 'batch:committed', 'table:finished', 'run:finished'] as const) {
    events.on(name, (payload) => {
      seen.push({ name, payload });
    });
  }
  return seen;
}

describe('run events', () => {
  it('tell the run as it happens: started, each committed batch, each table, finished — adding up to the summary', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const events = new RunEvents();
    const seen = record(events);
    const config = fx.configFor([eventsTable, { name: 'missing_table', timestamp_column: 'happened_at' }]);
    const summary = await archiveWith(config, fx.store, { events });

    expect(seen.map((e) => e.name)[0]).toBe('run:started');
    expect(seen.map((e) => e.name).at(-1)).toBe('run:finished');
    const batches = seen.filter((e) => e.name === 'batch:committed').map((e) => e.payload as RunEventMap['batch:committed']);
    const archived = summary.tables.find((t) => t.table === 'events')!;
    expect(archived.rowsArchived).toBe(30);
    expect(batches).toHaveLength(archived.batches);
    expect(batches.reduce((n, b) => n + b.rows, 0)).toBe(30);
    expect(batches.reduce((n, b) => n + b.bytesCompressed, 0)).toBe(archived.bytesCompressed);
    expect(new Set(batches.map((b) => b.key)).size).toBe(batches.length);
    // table:started only for the table that got going; table:finished for both, the failed one included.
    expect(seen.filter((e) => e.name === 'table:started').map((e) => (e.payload as RunEventMap['table:started']).table)).toEqual(['events']);
    const finished = seen.filter((e) => e.name === 'table:finished').map((e) => (e.payload as RunEventMap['table:finished']).summary);
    expect(finished.map((t) => [t.table, t.status])).toEqual([
      ['events', 'archived'],
      ['missing_table', 'failed'],
    ]);
    expect((seen.at(-1)!.payload as RunEventMap['run:finished']).summary).toEqual(summary);
  });

  it('a listener that throws or rejects changes nothing in the run: every row is still archived, the error is reported', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const errors: RunEventName[] = [];
    const events = new RunEvents((event) => errors.push(event));
    events.on('batch:committed', () => {
      throw new Error('metrics backend down');
    });
    events.on('table:finished', async () => {
      throw new Error('webhook refused');
    });
    const summary = await archiveWith(fx.configFor([eventsTable]), fx.store, { events });
    await events.settle();
    expect(summary.failed).toBe(0);
    expect(summary.tables[0]!.rowsArchived).toBe(20);
    expect(await rowIds(fx.db)).toEqual([]);
    expect(errors.filter((e) => e === 'batch:committed')).toHaveLength(summary.tables[0]!.batches);
    expect(errors.filter((e) => e === 'table:finished')).toHaveLength(1);
  });
});

describe('RunEvents', () => {
  it('settle() waits for async listeners; an unsubscribed listener hears nothing more', async () => {
    const events = new RunEvents();
    const heard: string[] = [];
    const off = events.on('run:started', async (p) => {
      await new Promise((r) => setTimeout(r, 20));
      heard.push(p.runId);
    });
    events.emit('run:started', { runId: 'a', command: 'archive', dryRun: false, at: '' });
    expect(heard).toEqual([]);
    await events.settle();
    expect(heard).toEqual(['a']);
    off();
    events.emit('run:started', { runId: 'b', command: 'archive', dryRun: false, at: '' });
    await events.settle();
    expect(heard).toEqual(['a']);
  });

  it('emitAndConfirm() waits for every listener: true with none or all fulfilled, false when one throws or rejects (reported too)', async () => {
    const errors: RunEventName[] = [];
    const events = new RunEvents((event) => errors.push(event));
    const payload = { runId: 'r', database: 'app', schema: 'public', table: 'events', batches: [{ key: 'k', rows: 1, bytesCompressed: 2 }] };
    expect(await events.emitAndConfirm('batches:sweeping', payload)).toBe(true);
    const heard: string[] = [];
    events.on('batches:sweeping', async (p) => {
      await new Promise((r) => setTimeout(r, 20));
      heard.push(p.batches[0]!.key);
    });
    expect(await events.emitAndConfirm('batches:sweeping', payload)).toBe(true);
    expect(heard).toEqual(['k']);
    const offSync = events.on('batches:sweeping', () => {
      throw new Error('audit disk full');
    });
    expect(await events.emitAndConfirm('batches:sweeping', payload)).toBe(false);
    offSync();
    events.on('batches:sweeping', async () => {
      throw new Error('audit disk full');
    });
    expect(await events.emitAndConfirm('batches:sweeping', payload)).toBe(false);
    expect(errors).toEqual(['batches:sweeping', 'batches:sweeping']);
    expect(heard).toEqual(['k', 'k', 'k']);
  });
});

