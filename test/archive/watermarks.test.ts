/**
 * Watermarks, checkpoints and resume (issue #3 items 2, 3, 7): the watermark only moves past
 * batches whose delete committed, the next run starts after it, rows it leaves behind are still
 * archived, an interrupted run is resumed and reported, and `status` / `watermarks` show it all.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Writable } from 'node:stream';
import { archiveWith } from '../helpers/archive-run.js';
import { archivedKeyCounts, inspectArchive } from '../helpers/archive-inspect.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { runCli } from '../helpers/run-cli.js';
import { tableStateKey, checkpointKey } from '../../src/core/archive-layout.js';
import { DatabaseTableStateStore, ObjectTableStateStore } from '../../src/state/state-stores.js';
import { buildSessionSettings, createPool } from '../../src/db/connect.js';
import { RunEvents } from '../../src/core/run-events.js';
import { createArchiveMetrics } from '../../src/monitoring/archive-metrics.js';
import type { Checkpoint, TableState } from '../../src/state/table-state.js';
import type { Config } from '../../src/config/schema.js';

const fx = useArchiveFixture();
const id = { database: 'app', schema: 'public', table: 'events' };

async function oldIds(): Promise<string[]> {
  const r = await fx.db.query<{ id: string }>(`SELECT id::text AS id FROM events WHERE happened_at < now() - interval '10 days' ORDER BY id`);
  return r.rows.map((x) => x.id);
}

async function storedState(): Promise<TableState | undefined> {
  return new ObjectTableStateStore(fx.store).get(id);
}

/** Position of the newest row past the retention, rendered as the archiver's sessions render it (UTC). */
async function newestOldPosition(): Promise<{ ts: string; key: string[] }> {
  const r = await fx.db.query<{ ts: string; id: string }>(
    `SELECT (happened_at AT TIME ZONE 'UTC')::text || '+00' AS ts, id::text AS id FROM events
      WHERE happened_at < now() - interval '10 days' ORDER BY happened_at DESC, id DESC LIMIT 1`,
  );
  return { ts: r.rows[0]!.ts, key: [r.rows[0]!.id] };
}

function capturingLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/**
 * The table state as the archiver reads it: for the database backend through the archiver's own
 * pool (createPool), whose sessions return every value as text. Reading the row with a plain pg
 * client instead hid that the archiver never read it back (found by probing).
 */
async function stateAsArchiverReadsIt(config: Config): Promise<TableState | undefined> {
  if (config.watermarks.backend === 'storage') return storedState();
  const pool = createPool({ database: config.databases[0]!, applicationName: 'watermarks-test', settings: buildSessionSettings(config.defaults) });
  try {
    return await new DatabaseTableStateStore(pool, config.watermarks.schema, config.watermarks.table).get(id);
  } finally {
    await pool.end();
  }
}

describe.each(['storage', 'database'] as const)('watermarks in %s', (backend) => {
  it('record the last archived position and the run; the next run resumes after it; status, list and reset see it', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const old = await oldIds();
    const newest = await newestOldPosition();
    const config: Config = { ...fx.configFor([eventsTable]), watermarks: { backend, schema: 'public', table: 'auditlog_watermarks' } };
    const summary = await archiveWith(config, fx.store, { runId: 'run-one' });
    expect(summary.tables[0]!.rowsArchived).toBe(old.length);

    if (backend === 'database') {
      const r = await fx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM public.auditlog_watermarks WHERE database_name = 'app' AND schema_name = 'public' AND table_name = 'events'`);
      expect(r.rows[0]!.n).toBe('1');
      expect(await fx.store.head(tableStateKey(id))).toBeUndefined();
    }
    const state = (await stateAsArchiverReadsIt(config))!;
    expect(state.watermark!.position).toEqual(newest);
    expect(state.watermark!.run_id).toBe('run-one');
    expect(state.last_run).toMatchObject({ run_id: 'run-one', status: 'archived', rows_archived: old.length, batches: summary.tables[0]!.batches });
    expect(await fx.store.head(checkpointKey(id))).toBeUndefined();

    // A second run with nothing new starts after the watermark (it says so) and records "nothing to archive".
    const log = capturingLogger();
    const again = await archiveWith(config, fx.store, { runId: 'run-two', logger: log.logger });
    expect(again.tables[0]!.status).toBe('nothing-to-archive');
    expect(log.lines().find((l) => l.msg === 'resuming after the watermark')?.after).toEqual(newest);

    const file = await writeConfigFile(config);
    const status = await runCli(['status', '--config', file]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`watermark:  ${newest.ts} / ("${newest.key[0]}") (run run-one`);
    expect(status.stdout).toMatch(/last run: {3}\S+ at \S+ \(run run-two\)/);
    const listed = await runCli(['watermarks', 'list', '--config', file, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { watermarks: { watermark: unknown }[] }).watermarks[0]!.watermark).toMatchObject({ position: newest });

    const reset = await runCli(['watermarks', 'reset', '--config', file, '--table', 'events']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain('app/public.events: watermark reset');
    const after = (await stateAsArchiverReadsIt(config))!;
    expect(after.watermark).toBeNull();
    expect(after.last_run!.run_id).toBe('run-two');
  });
});

describe('watermarks in a database table created in advance', () => {
  it('are saved and read by a role granted only SELECT, INSERT, UPDATE, DELETE on it (no CREATE on the schema), as docs/operations.md says', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const newest = await newestOldPosition();
    const role = `wm_${fx.db.name}`.slice(0, 60);
    await fx.db.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'wm-pw'`);
    try {
      await fx.db.query(`CREATE TABLE public.auditlog_watermarks (
        database_name text, schema_name text, table_name text, state jsonb, updated_at timestamptz,
        PRIMARY KEY (database_name, schema_name, table_name))`);
      await fx.db.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
      await fx.db.query(`GRANT USAGE ON SCHEMA public TO "${role}"`);
      await fx.db.query(`GRANT SELECT, UPDATE, DELETE ON events TO "${role}"`);
      await fx.db.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON public.auditlog_watermarks TO "${role}"`);
      const url = new URL(fx.db.url);
      url.username = role;
      url.password = 'wm-pw';
      const config: Config = { ...fx.configFor([eventsTable]), watermarks: { backend: 'database', schema: 'public', table: 'auditlog_watermarks' } };
      config.databases[0]!.url = url.toString();

      const log = capturingLogger();
      const run = await archiveWith(config, fx.store, { runId: 'run-granted', logger: log.logger });
      expect(run.tables[0]!.status).toBe('archived');
      expect(log.lines().filter((l) => (l.level as number) >= 40).map((l) => l.msg)).toEqual([]);
      const state = (await stateAsArchiverReadsIt(config))!;
      expect(state.watermark!.position).toEqual(newest);
      expect(state.last_run!.run_id).toBe('run-granted');
    } finally {
      await fx.db.query(`DROP OWNED BY "${role}"`).catch(() => undefined);
      await fx.db.query(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
    }
  });
});

describe('rows behind the watermark', () => {
  it('are still archived: a row locked during the run, and a row inserted late with an old timestamp', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const old = await oldIds();
    const locked = old[3]!;
    const holder = new pg.Client({ connectionString: fx.db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM events WHERE id = $1 FOR UPDATE', [locked]);
      const first = await archiveWith(fx.configFor([eventsTable]), fx.store);
      expect(first.tables[0]!.rowsSkipped).toBe(1);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    const wm = (await storedState())!.watermark!;
    expect(await rowIds(fx.db)).toContain(locked);
    // Older than the watermark: a reader starting after the watermark alone would never see it.
    await fx.db.query(`INSERT INTO events (id, happened_at, kind) VALUES (100000, $1::timestamptz - interval '3 days', 'late')`, [wm.position.ts]);

    const second = await archiveWith(fx.configFor([eventsTable]), fx.store);
    expect(second.tables[0]!.rowsArchived).toBe(2);
    const left = await rowIds(fx.db);
    expect(left).not.toContain(locked);
    expect(left).not.toContain('100000');
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    for (const k of [...old, '100000']) expect(counts.get(k), `row ${k}`).toBe(1);
    // Nothing was read past the watermark, so it stays where it was.
    expect((await storedState())!.watermark!.position).toEqual(wm.position);
  });
});

describe('a run that fails part-way', () => {
  it('leaves the watermark behind every uncommitted batch and a checkpoint; the next run resumes and finishes exactly once', async () => {
    await createEventsTable(fx.db, { rows: 80, stepMinutes: 60, endDaysAgo: 11 });
    const old = await oldIds();
    const newest = await newestOldPosition();
    const config: Config = { ...fx.configFor([eventsTable], { batch_size: 5 }), checkpoints: { every_batches: 2, backend: 'storage', local_dir: '.unused' } };
    let batches = 0;
    const failed = await archiveWith(config, fx.store, {
      runId: 'run-broken',
      onPhase: (phase) => {
        if (phase === 'after-upload' && ++batches === 7) throw new Error('injected: storage went away');
      },
    });
    expect(failed.tables[0]!.status).toBe('failed');

    const state = (await storedState())!;
    expect(state.last_run).toMatchObject({ run_id: 'run-broken', status: 'failed' });
    const wm = state.watermark!;
    // Every row at or before the watermark left the table: the watermark never passes a batch that did not commit.
    const behind = await fx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM events WHERE (happened_at, id) <= ($1::timestamptz, $2::bigint)`, [wm.position.ts, wm.position.key[0]]);
    expect(behind.rows[0]!.n).toBe('0');
    const cp = JSON.parse((await fx.store.get(checkpointKey(id)))!.toString('utf8')) as Checkpoint;
    expect(cp).toMatchObject({ run_id: 'run-broken', position: wm.position });
    expect(cp.batches_committed).toBeGreaterThanOrEqual(4);

    const status = await runStatus(config);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('checkpoint: run run-broken did not finish');
    expect(status.stdout).toContain('last run:   failed');

    const resumed = await archiveWith(config, fx.store, { runId: 'run-resume' });
    expect(resumed.tables[0]!.status).toBe('archived');
    // The failure was recorded: the next run says the previous one failed, not that it was interrupted.
    expect(resumed.tables[0]!.resumed).toEqual({ run_id: 'run-broken', batches_committed: cp.batches_committed, rows_archived: cp.rows_archived, previous: 'failed' });
    expect(await fx.store.head(checkpointKey(id))).toBeUndefined();
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect([...counts.keys()].sort()).toEqual([...old].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect((await rowIds(fx.db)).some((k) => old.includes(k))).toBe(false);
    expect((await storedState())!.watermark!.position).toEqual(newest);
  });
});

describe('checkpoints in a local directory', () => {
  it('are written there while a run is unfinished and removed by the run that completes it', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const dir = await mkdtemp(join(tmpdir(), 'cp-'));
    const config: Config = { ...fx.configFor([eventsTable], { batch_size: 4 }), checkpoints: { every_batches: 1, backend: 'local', local_dir: dir } };
    let n = 0;
    const failed = await archiveWith(config, fx.store, { runId: 'run-local', onPhase: (phase) => {
      if (phase === 'after-upload' && ++n === 4) throw new Error('injected');
    } });
    expect(failed.tables[0]!.status).toBe('failed');
    const file = join(dir, checkpointKey(id));
    expect((JSON.parse(await readFile(file, 'utf8')) as Checkpoint).run_id).toBe('run-local');
    expect(await fx.store.head(checkpointKey(id))).toBeUndefined();
    const done = await archiveWith(config, fx.store);
    expect(done.tables[0]!.resumed?.run_id).toBe('run-local');
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  });
});

describe('a watermark that no longer fits the table', () => {
  it('is ignored with a warning (the table was recreated); the run still archives every row. One that is not valid fails the table until reset', async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    await archiveWith(fx.configFor([eventsTable]), fx.store);
    await fx.db.query('DROP TABLE events');
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('UPDATE events SET id = id + 1000');
    const old = await oldIds();
    const recreated = capturingLogger();
    const run = await archiveWith(fx.configFor([eventsTable]), fx.store, { logger: recreated.logger });
    expect(run.tables[0]!.rowsArchived).toBe(old.length);
    expect(recreated.lines().some((l) => l.msg === 'the stored watermark is not used: starting from the first row' && String(l.reason).includes('recreated'))).toBe(true);

    // Not valid: the table fails (STATE_INVALID) instead of archiving past a document no one looked at.
    await fx.store.put(tableStateKey(id), Buffer.from('{"format":"something else"}'));
    await fx.db.query(`INSERT INTO events (id, happened_at) VALUES (5000, now() - interval '30 days')`);
    const invalid = await archiveWith(fx.configFor([eventsTable]), fx.store);
    expect(invalid.tables[0]).toMatchObject({ status: 'failed', rowsArchived: 0, error: { code: 'STATE_INVALID' } });
    expect(invalid.tables[0]!.error!.message).toContain('is not valid (its format is not auditlog-table-state): run `auditlog watermarks reset --database app --table public.events`');
    expect(await rowIds(fx.db)).toContain('5000');
    expect((await fx.store.get(tableStateKey(id)))!.toString('utf8')).toBe('{"format":"something else"}');

    // A state store that cannot be read at all is still only a warning: the run archives (and its state replaces the document).
    const unreadableState = new Proxy(fx.store, {
      get(target, prop) {
        if (prop === 'get') {
          return async (key: string) => {
            if (key === tableStateKey(id)) throw new Error('injected: the state cannot be read');
            return target.get(key);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const unreadable = capturingLogger();
    const next = await archiveWith(fx.configFor([eventsTable]), unreadableState, { logger: unreadable.logger });
    expect(next.tables[0]!.rowsArchived).toBe(1);
    expect(unreadable.lines().some((l) => l.level === 40 && l.msg === 'could not read the watermark; starting from the first row')).toBe(true);
    expect((await storedState())!.last_run!.rows_archived).toBe(1);
  });

  it.each(['storage', 'database'] as const)("is ignored with a warning once the key column's type no longer takes its value; the run archives every row (%s)", async (backend) => {
    const config: Config = { ...fx.configFor([eventsTable]), watermarks: { backend, schema: 'public', table: 'auditlog_watermarks' } };
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    await archiveWith(config, fx.store);
    expect((await stateAsArchiverReadsIt(config))!.watermark).not.toBeNull();
    // The oid stays: the watermark's key "20" is still taken as this table's, and fails as a uuid.
    await fx.db.query(`ALTER TABLE events ALTER COLUMN id TYPE uuid USING ('00000000-0000-0000-0000-' || lpad(id::text, 12, '0'))::uuid`);
    // A run with nothing to archive forgets it, so later runs do not warn again.
    const idle = capturingLogger();
    expect((await archiveWith(config, fx.store, { logger: idle.logger })).tables[0]!.rowsArchived).toBe(0);
    expect(idle.lines().some((l) => l.msg === 'the stored watermark is not used: starting from the first row')).toBe(true);
    expect((await stateAsArchiverReadsIt(config))!.watermark).toBeNull();
    await fx.db.query(`INSERT INTO events (id, happened_at) VALUES ('00000000-0000-0000-0000-000000000001', now() - interval '30 days'), (gen_random_uuid(), now() - interval '20 days')`);
    const run = await archiveWith(config, fx.store);
    expect(run.tables[0]!.error).toBeUndefined();
    expect(run.tables[0]!.rowsArchived).toBe(2);
    expect(idle.lines().some((l) => l.msg === 'the stored watermark is not used: starting from the first row' && String(l.reason).includes('type changed'))).toBe(true);
    expect((await fx.db.query('SELECT 1 FROM events WHERE happened_at < now() - interval \'10 days\'')).rowCount).toBe(0);
    // The run's own position replaced it: the next run resumes after it, with no warning.
    const next = capturingLogger();
    await archiveWith(config, fx.store, { logger: next.logger });
    expect(next.lines().some((l) => l.msg === 'resuming after the watermark')).toBe(true);
    expect(next.lines().some((l) => l.msg === 'the stored watermark is not used: starting from the first row')).toBe(false);
  });
});

async function writeConfigFile(config: Config): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'wm-')), 'config.json');
  await writeFile(file, JSON.stringify(config));
  return file;
}

async function runStatus(config: Config, ...args: string[]) {
  return runCli(['status', '--config', await writeConfigFile(config), ...args]);
}

describe('status and watermarks commands', () => {
  it('show lock, watermark, last run and in-flight batches; reset forgets the watermark', async () => {
    await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const config = fx.configFor([eventsTable]);
    const file = await writeConfigFile(config);

    const before = await runCli(['watermarks', 'list', '--config', file]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toBe('app/public.events: none (the next run starts at the first row)\n');

    await archiveWith(config, fx.store, { runId: 'run-status' });
    const wm = (await storedState())!.watermark!;
    const status = await runCli(['status', '--config', file]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain('lock:       free');
    expect(status.stdout).toContain(`watermark:  ${wm.position.ts} / ("${wm.position.key[0]}") (run run-status`);
    expect(status.stdout).toMatch(/last run: {3}archived at \S+ \(run run-status\): \d+ rows in \d+ batches/);
    expect(status.stdout).toContain('in flight:  none');

    // A lock held by someone else is named.
    const holder = new pg.Client({ connectionString: fx.db.url, application_name: 'other-archiver' });
    await holder.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(x'6175646c'::int, 'public.events'::regclass::oid::int)`);
      const held = await runCli(['status', '--config', file, '--json']);
      const report = JSON.parse(held.stdout) as { tables: { lockHolder: { application_name: string; pid: string } }[] };
      expect(report.tables[0]!.lockHolder.application_name).toBe('other-archiver');
      expect(report.tables[0]!.lockHolder.pid).toMatch(/^\d+$/);
    } finally {
      await holder.end();
    }

    const listed = await runCli(['watermarks', 'list', '--config', file, '--json']);
    expect((JSON.parse(listed.stdout) as { watermarks: { watermark: unknown }[] }).watermarks[0]!.watermark).toMatchObject({ position: wm.position });

    const refused = await runCli(['watermarks', 'reset', '--config', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('watermarks reset needs --table NAME');

    const reset = await runCli(['watermarks', 'reset', '--config', file, '--table', 'events']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain('app/public.events: watermark reset');
    expect((await storedState())!.watermark).toBeNull();
    expect((await storedState())!.last_run!.run_id).toBe('run-status');
  });
});

describe('SIGKILL after batches committed, before the next checkpoint', () => {
  it('resumes from the last saved watermark on the next start, reports the interrupted run, and archives every row exactly once', async () => {
    await createEventsTable(fx.db, { rows: 60, stepMinutes: 60, endDaysAgo: 11 });
    const old = await oldIds();
    const config: Config = {
      ...fx.configFor([eventsTable], { batch_size: 4, batches_in_flight: 1 }),
      checkpoints: { every_batches: 2, backend: 'storage', local_dir: '.unused' },
    };
    const file = await writeConfigFile(config);
    // The 5th commit: 4 batches are behind the last saved checkpoint, the 5th committed after it.
    const crashed = await runCli(['archive', '--config', file, '--quiet'], { AUDITLOG_FAULT: 'after-commit:5' });
    expect(crashed.signal).toBe('SIGKILL');
    // Saves run in the background; the kill may land before the 4th batch's save finished.
    const cp = JSON.parse((await fx.store.get(checkpointKey(id)))!.toString('utf8')) as Checkpoint;
    expect([2, 4]).toContain(cp.batches_committed);
    expect((await storedState())!.watermark).not.toBeNull();

    const rerun = await runCli(['archive', '--config', file, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    const summary = JSON.parse(rerun.stdout) as { tables: { resumed?: { run_id: string; batches_committed: number } }[] };
    expect(summary.tables[0]!.resumed).toEqual({ run_id: cp.run_id, batches_committed: cp.batches_committed, rows_archived: cp.rows_archived, previous: 'interrupted' });
    const counts = archivedKeyCounts(await inspectArchive(fx.store));
    expect([...counts.keys()].sort()).toEqual([...old].sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(await fx.store.head(checkpointKey(id))).toBeUndefined();
  });
});

describe('a run stopped in the pass behind the watermark', () => {
  it("counts that pass's committed batches in its checkpoint, in status and in the next run's resume report", async () => {
    await createEventsTable(fx.db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const config: Config = { ...fx.configFor([eventsTable], { batch_size: 5, batches_in_flight: 1 }), checkpoints: { every_batches: 2, backend: 'storage', local_dir: '.unused' } };
    await archiveWith(config, fx.store, { runId: 'run-first' });
    const wm = (await storedState())!.watermark!;
    // 30 rows older than the watermark: 6 batches of the pass behind it, and nothing after it.
    await fx.db.query(
      `INSERT INTO events (id, happened_at, kind) SELECT 100000 + g, $1::timestamptz - interval '3 days' - g * interval '1 minute', 'late' FROM generate_series(1, 30) g`,
      [wm.position.ts],
    );
    const stop = new AbortController();
    let commits = 0;
    const stopped = await archiveWith(config, fx.store, {
      runId: 'run-stopped',
      signal: stop.signal,
      failOnStop: true,
      onPhase: (phase) => {
        if (phase === 'after-commit' && ++commits === 3) stop.abort('SIGTERM');
      },
    });
    expect(stopped.tables[0]).toMatchObject({ status: 'failed', stopped: true, rowsArchived: 15 });
    const cp = JSON.parse((await fx.store.get(checkpointKey(id)))!.toString('utf8')) as Checkpoint;
    expect(cp).toMatchObject({ run_id: 'run-stopped', batches_committed: 3, rows_archived: 15 });

    const status = await runStatus(config);
    expect(status.stdout).toContain('checkpoint: run run-stopped did not finish: 3 batches committed as of its last checkpoint save (');

    const resumed = await archiveWith(config, fx.store, { runId: 'run-after' });
    expect(resumed.tables[0]!.resumed).toEqual({ run_id: 'run-stopped', batches_committed: 3, rows_archived: 15, previous: 'failed' });
    expect(resumed.tables[0]!.rowsArchived).toBe(15);
  });
});

describe("a daemon run stopped by SIGTERM (no failOnStop)", () => {
  it('ends the table as archived but marked stopped: status shows it and needs attention, and the last-success time is not refreshed', async () => {
    await createEventsTable(fx.db, { rows: 40, stepMinutes: 60, endDaysAgo: 11 });
    const config: Config = fx.configFor([eventsTable], { batch_size: 5, batches_in_flight: 1 });
    const events = new RunEvents();
    const metrics = createArchiveMetrics();
    metrics.subscribe(events);
    const stop = new AbortController();
    let commits = 0;
    const run = await archiveWith(config, fx.store, {
      runId: 'run-daemon-stopped',
      events,
      signal: stop.signal,
      onPhase: (phase) => {
        if (phase === 'after-commit' && ++commits === 2) stop.abort('SIGTERM');
      },
    });
    expect(run.tables[0]).toMatchObject({ status: 'archived', stopped: true, batches: 2 });
    const rows = run.tables[0]!.rowsArchived;
    expect(rows).toBeGreaterThan(0);
    expect((await rowIds(fx.db)).length).toBe(40 - rows);
    expect((await storedState())!.last_run).toMatchObject({ run_id: 'run-daemon-stopped', status: 'archived', stopped: true, rows_archived: rows });
    expect(await metrics.registry.metrics()).not.toMatch(/^auditlog_last_success_timestamp_seconds\{/m);

    const status = await runStatus(config);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`(run run-daemon-stopped): ${rows} rows in 2 batches — stopped before the end by a stop request`);

    // The next run that finishes is a success again, and clears the mark.
    await archiveWith(config, fx.store, { runId: 'run-complete', events });
    expect((await storedState())!.last_run!.stopped).toBeUndefined();
    expect(await metrics.registry.metrics()).toMatch(/^auditlog_last_success_timestamp_seconds\{[^}]*table="public.events"[^}]*\} \d/m);
    expect((await runStatus(config)).code).toBe(0);
  });
});
