/**
 * /metrics scraped during and after a real archive run (PostgreSQL + S3 server): the counters must
 * equal what the run committed, batch by batch, and the gauges must tell the table's state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import pino from 'pino';
import { archiveWith } from '../helpers/archive-run.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable } from '../helpers/events-table.js';
import { RunEvents } from '../../src/core/run-events.js';
import { createArchiveMetrics } from '../../src/monitoring/archive-metrics.js';
import { startMonitoringServers, type MonitoringServers } from '../../src/cli/monitoring-setup.js';
import { buildConfig } from '../helpers/archive-run.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { attachNotifications } from '../../src/cli/notifications-setup.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';

const fx = useArchiveFixture();
let servers: MonitoringServers | undefined;
afterEach(async () => {
  await servers?.close();
  servers = undefined;
});

/** The value of one sample of the Prometheus text format, by name and exact label set. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',').filter((x) => x !== '');
    if (have.length === wanted.length && wanted.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

describe('/metrics', () => {
  it('during a run counts exactly the batches committed so far; after it, the totals of the summary', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    // One batch at a time, so "committed so far" is exact when the next batch starts.
    const config = buildConfig({
      ...fx.configFor([eventsTable], { batches_in_flight: 1 }),
      monitoring: { metrics_enabled: true, metrics_port: 0, listen_host: '127.0.0.1' },
    });
    const events = new RunEvents();
    const metrics = createArchiveMetrics();
    metrics.subscribe(events);
    let committedRows = 0;
    events.on('batch:committed', (b) => {
      committedRows += b.rows;
    });
    servers = await startMonitoringServers({ config, servesByDefault: false, metrics, store: fx.store, secrets: [], logger: pino({ level: 'silent' }) });
    expect(servers.healthPort).toBeUndefined();
    const port = servers.metricsPort!;
    const table = { database: 'app', table: 'public.events' };
    const during: { archived: number | undefined; committed: number; running: number | undefined; remaining: number | undefined }[] = [];
    let reads = 0;
    const summary = await archiveWith(config, fx.store, {
      events,
      countRows: true,
      onPhase: async (phase) => {
        if (phase !== 'after-read' || ++reads !== 3) return;
        const text = await scrape(port);
        during.push({
          archived: sample(text, 'auditlog_records_archived_total', table),
          committed: committedRows,
          running: sample(text, 'auditlog_table_state', { ...table, state: 'running' }),
          remaining: sample(text, 'auditlog_rows_remaining', table),
        });
      },
    });
    const t = summary.tables[0]!;
    expect(t.rowsArchived).toBe(30);
    expect(during).toHaveLength(1);
    expect(during[0]!.committed).toBeGreaterThan(0);
    expect(during[0]!.committed).toBeLessThan(30);
    expect(during[0]!.archived).toBe(during[0]!.committed);
    expect(during[0]!.running).toBe(1);
    expect(during[0]!.remaining).toBe(30 - during[0]!.committed);

    const text = await scrape(port);
    expect(sample(text, 'auditlog_records_archived_total', table)).toBe(30);
    expect(sample(text, 'auditlog_records_deleted_total', table)).toBe(30);
    expect(sample(text, 'auditlog_records_skipped_total', table)).toBe(0);
    expect(sample(text, 'auditlog_batches_total', table)).toBe(t.batches);
    expect(sample(text, 'auditlog_bytes_compressed_total', table)).toBe(t.bytesCompressed);
    expect(sample(text, 'auditlog_bytes_uncompressed_total', table)).toBe(t.bytesUncompressed);
    for (const phase of ['upload', 'verify', 'delete', 'compress']) {
      expect(sample(text, 'auditlog_phase_duration_seconds_count', { ...table, phase })).toBe(t.batches);
    }
    expect(sample(text, 'auditlog_phase_duration_seconds_count', { ...table, phase: 'query' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'auditlog_table_state', { ...table, state: 'idle' })).toBe(1);
    expect(sample(text, 'auditlog_table_state', { ...table, state: 'running' })).toBe(0);
    expect(sample(text, 'auditlog_rows_remaining', table)).toBe(0);
    expect(sample(text, 'auditlog_last_success_timestamp_seconds', table)).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(sample(text, 'auditlog_records_per_second', table)).toBeGreaterThan(0);
    expect(sample(text, 'auditlog_runs_total', { status: 'ok' })).toBe(1);
    // Only the registry of this process: none of prom-client's default process metrics.
    expect(text).not.toContain('process_cpu_seconds_total');
    expect((await fetch(`http://127.0.0.1:${port}/nothing`)).status).toBe(404);
  });

  it('rows skipped by a batch that archived none of them are counted too', async () => {
    // Found by probing: a batch whose every row was locked by the application committed no object,
    // sent no batch:committed, and the skipped counter never moved — the documented alert on it
    // stayed silent in its worst case.
    await createEventsTable(fx.db, { rows: 8, stepMinutes: 1, endDaysAgo: 20 });
    const app = new pg.Client({ connectionString: fx.db.url });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query('SELECT * FROM events FOR UPDATE');
      const events = new RunEvents();
      const metrics = createArchiveMetrics();
      metrics.subscribe(events);
      const summary = await archiveWith(fx.configFor([eventsTable], { batch_size: 100 }), fx.store, { events, countRows: true });
      expect(summary.tables[0]!.rowsArchived).toBe(0);
      expect(summary.tables[0]!.rowsSkipped).toBe(8);
      const text = await metrics.registry.metrics();
      const table = { database: 'app', table: 'public.events' };
      expect(sample(text, 'auditlog_records_skipped_total', table)).toBe(8);
      expect(sample(text, 'auditlog_records_archived_total', table)).toBeUndefined();
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      await app.end();
    }
    expect(Number((await fx.db.query('SELECT count(*) AS n FROM events')).rows[0].n)).toBe(8);
  });

  it('a failed table counts an error by code and shows state failed, with no last-success time', async () => {
    const config = buildConfig({ ...fx.configFor([{ name: 'missing_table', timestamp_column: 'happened_at' }]) });
    const events = new RunEvents();
    const metrics = createArchiveMetrics();
    metrics.subscribe(events);
    const summary = await archiveWith(config, fx.store, { events });
    expect(summary.failed).toBe(1);
    const text = await metrics.registry.metrics();
    const table = { database: 'app', table: 'public.missing_table' };
    expect(sample(text, 'auditlog_errors_total', { ...table, code: summary.tables[0]!.error!.code })).toBe(1);
    expect(sample(text, 'auditlog_table_state', { ...table, state: 'failed' })).toBe(1);
    expect(sample(text, 'auditlog_last_success_timestamp_seconds', table)).toBeUndefined();
    expect(sample(text, 'auditlog_runs_total', { status: 'failed' })).toBe(1);
  });

  it('a run that cannot reach storage counts as a failed run (run:failed): its error code for each table it was to archive, which show state failed', async () => {
    // Found by probing: only runs_total moved, so the documented alerts on auditlog_errors_total
    // and on table_state{state="failed"} stayed silent through a whole storage outage.
    const s3 = { ...fx.s3cfg, endpoint: 'http://127.0.0.1:9', retry: { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1 } };
    const second = { name: 'second', timestamp_column: 'happened_at' };
    const config = buildConfig({ ...fx.configFor([eventsTable, second]), s3 });
    const events = new RunEvents();
    const metrics = createArchiveMetrics();
    metrics.subscribe(events);
    let code: string | undefined;
    events.on('run:failed', (e) => void (code = e.error.code));
    await expect(archiveWith(config, new S3ObjectStore(config.s3!), { events })).rejects.toThrow(/STORAGE|reach|connect/i);
    expect(code).toMatch(/^STORAGE_/);
    const text = await metrics.registry.metrics();
    expect(sample(text, 'auditlog_runs_total', { status: 'failed' })).toBe(1);
    expect(sample(text, 'auditlog_runs_total', { status: 'ok' })).toBeUndefined();
    for (const table of [{ database: 'app', table: 'public.events' }, { database: 'app', table: 'public.second' }]) {
      expect(sample(text, 'auditlog_errors_total', { ...table, code: code! })).toBe(1);
      expect(sample(text, 'auditlog_table_state', { ...table, state: 'failed' })).toBe(1);
      expect(sample(text, 'auditlog_table_state', { ...table, state: 'idle' })).toBe(0);
      expect(sample(text, 'auditlog_batches_total', table)).toBeUndefined();
      expect(sample(text, 'auditlog_last_success_timestamp_seconds', table)).toBeUndefined();
    }
  });

  it('a table no longer configured loses its label sets at the next run: its last state does not stay exported', async () => {
    // Found by probing: auditlog_table_state{database="other",state="failed"} 1 stayed until the
    // daemon restarted after "other" was removed from its file, so the alert on it never ended.
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const app = { name: 'app', url: fx.db.url, tables: [eventsTable] };
    const other = { name: 'other', url: 'postgresql://postgres@127.0.0.1:1/fixdm_other', tables: [eventsTable] };
    const withOther = buildConfig({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 7 }, databases: [app, other] });
    const withoutOther = buildConfig({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 7 }, databases: [app] });
    // One event stream and registry across runs, as in the daemon.
    const events = new RunEvents();
    const metrics = createArchiveMetrics();
    metrics.subscribe(events);
    const first = await archiveWith(withOther, fx.store, { events, runId: 'run-1' });
    expect(first.tables.map((t) => [t.database, t.status])).toEqual([
      ['app', 'archived'],
      ['other', 'failed'],
    ]);
    let text = await metrics.registry.metrics();
    expect(sample(text, 'auditlog_table_state', { database: 'other', table: 'public.events', state: 'failed' })).toBe(1);
    expect(sample(text, 'auditlog_errors_total', { database: 'other', table: 'public.events', code: first.tables[1]!.error!.code })).toBe(1);

    const second = await archiveWith(withoutOther, fx.store, { events, runId: 'run-2' });
    expect(second.failed).toBe(0);
    text = await metrics.registry.metrics();
    expect(text.split('\n').filter((l) => l.includes('database="other"'))).toEqual([]);
    // The table still configured keeps its series.
    expect(sample(text, 'auditlog_table_state', { database: 'app', table: 'public.events', state: 'idle' })).toBe(1);
    expect(sample(text, 'auditlog_records_archived_total', { database: 'app', table: 'public.events' })).toBe(10);
  });

  it('counts storage retries by failure class and notifications that could not be delivered, by channel', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const proxy = await startFaultProxy(fx.s3.endpoint);
    try {
      // The first two data PUTs answer 503: each is retried once.
      let dataPuts = 0;
      proxy.rule = ({ method, path }) => (method === 'PUT' && path.includes('.jsonl.gz') && ++dataPuts <= 2 ? { status: 503, code: 'ServiceUnavailable' } : 'pass');
      const base = fx.configFor([eventsTable], { batches_in_flight: 1 });
      const config = buildConfig({
        ...base,
        s3: { ...base.s3!, endpoint: proxy.endpoint, retry: { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 2 } },
        // A webhook nobody listens on: every message fails, the run does not.
        notifications: { events: ['success'], webhook: { webhook_url: 'http://127.0.0.1:9/hook' }, timeout_ms: 1_000 },
      });
      const events = new RunEvents();
      const metrics = createArchiveMetrics();
      metrics.subscribe(events);
      const detach = attachNotifications({ config, events, metrics, logger: pino({ level: 'silent' }), secrets: [], digest: 'end-of-run' });
      const store = await createObjectStore(config, { onRetry: (notice) => events.emit('storage:retry', { errorClass: notice.classification.retryClass ?? 'other', attempt: notice.attempt }) });
      const summary = await archiveWith(config, store, { events });
      await events.settle();
      await detach();
      expect(summary.failed).toBe(0);
      expect(summary.tables[0]!.rowsArchived).toBe(20);
      const text = await metrics.registry.metrics();
      expect(sample(text, 'auditlog_storage_retries_total', { error_class: 'server_error' })).toBe(2);
      expect(sample(text, 'auditlog_notification_failures_total', { channel: 'webhook' })).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  it('a port already in use is a one-line error naming the config key', async () => {
    const config = buildConfig({ ...fx.configFor([eventsTable]), monitoring: { metrics_enabled: true, metrics_port: 0, listen_host: '127.0.0.1' } });
    const metrics = createArchiveMetrics();
    servers = await startMonitoringServers({ config, servesByDefault: false, metrics, store: fx.store, secrets: [], logger: pino({ level: 'silent' }) });
    const taken = buildConfig({ ...fx.configFor([eventsTable]), monitoring: { metrics_enabled: true, metrics_port: servers.metricsPort, listen_host: '127.0.0.1' } });
    await expect(startMonitoringServers({ config: taken, servesByDefault: false, metrics, store: fx.store, secrets: [], logger: pino({ level: 'silent' }) })).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+ for \/metrics: EADDRINUSE \(choose another monitoring\.metrics_port/,
    );
  });
});
