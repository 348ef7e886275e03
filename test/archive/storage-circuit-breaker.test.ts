/**
 * The storage circuit breaker and the adaptive rate limit in a real run (issue #3 item 4): the
 * store comes from createObjectStore, as in the CLI, and talks to s3rver through the fault proxy,
 * which counts and times every request that reaches the server.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, committedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import type { Config } from '../../src/config/schema.js';
import type { CircuitStateChange } from '../../src/storage/circuit-breaker.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import type { RateChange } from '../../src/storage/request-rate-limiter.js';

const fx = useArchiveFixture();
let proxy: FaultProxy;
/** Arrival time (performance.now()) of every request that reached the proxy. */
let arrivals: number[];
beforeEach(async () => {
  proxy = await startFaultProxy(fx.s3.endpoint);
  arrivals = [];
});
afterEach(async () => {
  await proxy.stop();
});

const TABLES = ['events', 'events_b', 'events_c'];

function proxiedConfig(tables: string[], s3: Partial<NonNullable<Config['s3']>>, defaults: Record<string, unknown> = {}): Config {
  const config = fx.configFor(
    tables.map((name) => ({ name, timestamp_column: 'happened_at' })),
    defaults,
  );
  config.s3 = { ...config.s3!, endpoint: proxy.endpoint, ...s3 };
  return config;
}

async function oldIds(table: string): Promise<string[]> {
  const r = await fx.db.query<{ id: string }>(`SELECT id::text AS id FROM "${table}" WHERE happened_at < now() - interval '10 days' ORDER BY id`);
  return r.rows.map((x) => x.id);
}

/** Requests whose arrival time is in [from, to). */
const arrivedBetween = (from: number, to: number): number => arrivals.filter((t) => t >= from && t < to).length;

describe('storage circuit breaker in a run', () => {
  it('storage dies mid-run: the breaker opens, few requests reach the server afterwards, every table stops naming the circuit, no unverified row is deleted', async () => {
    const old = new Map<string, string[]>();
    for (const table of TABLES) {
      await createEventsTable(fx.db, { table, rows: 50, stepMinutes: 20, endDaysAgo: 11 });
      old.set(table, await oldIds(table));
    }
    // Healthy for the first 30 requests (a few committed batches of the first table), then every request fails.
    const DIES_AFTER = 30;
    proxy.rule = () => {
      arrivals.push(performance.now());
      return arrivals.length > DIES_AFTER ? { status: 500, code: 'InternalError' } : 'pass';
    };
    const config = proxiedConfig(TABLES, {
      retry: { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 5 },
      circuit_breaker: { failure_threshold: 2, recovery_timeout_ms: 600_000 },
    });
    let requestsWhenOpened: number | undefined;
    const changes: CircuitStateChange[] = [];
    const store = await createObjectStore(config, {
      onCircuitChange: (change) => {
        changes.push(change);
        if (change.to === 'OPEN') requestsWhenOpened ??= arrivals.length;
      },
    });
    const summary = await archiveWith(config, store);

    expect(changes.map((c) => c.to)).toEqual(['OPEN']);
    expect(requestsWhenOpened).toBeGreaterThan(DIES_AFTER);
    // Only attempts already on the wire when it opened may still arrive: at most one per
    // concurrent call (3 batches in flight × HEAD + marker PUT, and a background state save).
    const afterOpen = arrivals.length - requestsWhenOpened!;
    expect(afterOpen).toBeLessThanOrEqual(7);

    expect(summary.failed).toBe(3);
    const [first, ...rest] = summary.tables;
    expect(first!.status).toBe('failed');
    expect(first!.rowsArchived).toBeGreaterThan(0);
    expect(['STORAGE_UNREACHABLE', 'STORAGE_CIRCUIT_OPEN']).toContain(first!.error!.code);
    for (const table of rest) {
      expect(table.status).toBe('failed');
      expect(table.rowsArchived).toBe(0);
      expect(table.error!.code).toBe('STORAGE_CIRCUIT_OPEN');
      expect(table.error!.message).toContain(`storage circuit open: `);
      expect(table.error!.message).toContain(`consecutive storage operations failed against s3://${fx.s3cfg.bucket}/${fx.s3cfg.prefix} (${proxy.endpoint})`);
      expect(table.error!.message).toMatch(/the next trial request goes at \d{4}-\d\d-\d\dT[\d:.]+Z \(in \d+min\)/);
    }

    // I1/I3: every old row is still in its table or in an object whose bytes were verified; no
    // committed object holds a row still in the table. (A batch whose sidecar was read back when
    // storage died stays in flight for the next run; so do the batches that committed: their
    // markers are removed in bulk at the end of the table, when storage was already gone.)
    const inspected = await inspectArchive(fx.store);
    const archived = archivedKeyCounts(inspected);
    const committed = committedKeyCounts(inspected);
    expect(archived.size).toBeGreaterThan(0);
    expect((await rowIds(fx.db, 'public', 'events')).length).toBeLessThan(old.get('events')!.length);
    for (const table of TABLES) {
      const left = new Set(await rowIds(fx.db, 'public', table));
      // Only the first table's ids can be archived; ids are shared across tables, so check it alone.
      for (const id of old.get(table)!) {
        if (table === 'events') expect(left.has(id) ? !committed.has(id) : archived.has(id), `${table} row ${id}`).toBe(true);
        else expect(left.has(id), `${table} row ${id}`).toBe(true);
      }
    }

    // Storage back, a new run (a new process: the circuit starts closed) finishes the job exactly once.
    proxy.rule = () => 'pass';
    const rerun = await archiveWith(config, await createObjectStore(config));
    expect(rerun.failed).toBe(0);
    const after = await inspectArchive(fx.store);
    expect(after.pendingMarkers).toEqual([]);
    const counts = new Map<string, number>();
    for (const o of after.objects) {
      const key = `${o.meta.table}/`;
      for (const pk of o.meta.primary_keys) counts.set(key + pk.join(','), (counts.get(key + pk.join(',')) ?? 0) + 1);
    }
    const expected = TABLES.flatMap((table) => old.get(table)!.map((id) => `${table}/${id}`)).sort();
    expect([...counts.keys()].sort()).toEqual(expected);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});

describe('storage rate limit in a run', () => {
  it('a burst of 503 SlowDown halves the request rate, and the archive still completes with every row exactly once', async () => {
    await createEventsTable(fx.db, { table: 'events', rows: 50, stepMinutes: 20, endDaysAgo: 11 });
    const old = await oldIds('events');
    // Five PUTs in a row answer SlowDown, about a second into the run.
    proxy.rule = ({ method, nth }) => {
      arrivals.push(performance.now());
      return method === 'PUT' && nth >= 12 && nth <= 16 ? { status: 503, code: 'SlowDown' } : 'pass';
    };
    const RATE = 20;
    const config = proxiedConfig(['events'], {
      // Six attempts: five SlowDowns can never exhaust one operation's retries.
      retry: { max_attempts: 6, base_delay_ms: 1, max_delay_ms: 5 },
      rate_limit_requests_per_second: RATE,
    });
    const cuts: Array<RateChange & { at: number }> = [];
    const store = await createObjectStore(config, { onRateChange: (change) => void cuts.push({ ...change, at: performance.now() }) });
    const summary = await archiveWith(config, store);

    expect(summary.failed).toBe(0);
    expect(proxy.injected).toBe(5);
    const firstCut = cuts.find((c) => c.reason === 'throttled');
    expect(firstCut).toMatchObject({ previous: RATE, ratePerSecond: RATE / 2 });
    // The second before the SlowDowns ran at the configured limit (well under what this machine
    // does unthrottled); the second after, at about half of it (the rate climbs ~2/s meanwhile).
    const before = arrivedBetween(firstCut!.at - 1_000, firstCut!.at);
    const after = arrivedBetween(firstCut!.at, firstCut!.at + 1_000);
    expect(before).toBeGreaterThanOrEqual(15);
    expect(before).toBeLessThanOrEqual(RATE * 1.1 + 1);
    expect(after).toBeLessThanOrEqual(RATE / 2 + 4);
    expect(after).toBeLessThan(before);

    const inspected = await inspectArchive(fx.store);
    expect(inspected.pendingMarkers).toEqual([]);
    const counts = archivedKeyCounts(inspected);
    expect([...counts.keys()].sort()).toEqual([...old].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await rowIds(fx.db)).toHaveLength(50 - old.length);
  });
});
