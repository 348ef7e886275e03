/**
 * `auditlog daemon` as users run it: on a seconds schedule it runs repeatedly and serves /metrics
 * and /health between runs; SIGTERM mid-run stops before the next batch, loses no row (checked
 * row by row by the invariant checker), leaves nothing in flight, releases the lock, exits 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { runCli, startCli } from '../helpers/run-cli.js';
import { checkArchiveInvariant, expectRowsOf } from '../helpers/invariant-checker.js';
import { startWebhookReceiver } from '../notifications/receivers.js';

let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'daemon-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** The daemon's JSON log lines so far. */
function logLines(stderr: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function writeConfig(name: string, archive: string, extra: string, pauseMs = 0): Promise<string> {
  const file = join(dir, name);
  await writeFile(
    file,
    `local:
  path: ${archive}
defaults:
  retention_days: 10
  batch_size: 5
  pause_between_batches_ms: ${pauseMs}
monitoring:
  metrics_port: 0
  health_check_port: 0
  listen_host: 127.0.0.1
  progress_update_interval: 0.1
${extra}
databases:
  - name: app
    url: ${db.url}
    tables:
      - name: events
        timestamp_column: happened_at
`,
  );
  return file;
}

describe('auditlog daemon', () => {
  it('runs on the schedule again and again, with /metrics and /health served between runs; SIGTERM while idle exits 0', async () => {
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const config = await writeConfig('twice.yaml', join(dir, 'a1'), 'daemon:\n  schedule: "*/2 * * * * *"');
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const metricsPort = await waitFor('metrics port', () => logLines(stderr).find((l) => l.msg === 'serving Prometheus metrics')?.port as number | undefined);
      const healthPort = await waitFor('health port', () => logLines(stderr).find((l) => l.msg === 'serving health checks')?.port as number | undefined);
      await waitFor('two finished runs', () => (logLines(stderr).filter((l) => l.msg === 'archive run finished').length >= 2 ? true : undefined));
      const finished = logLines(stderr).filter((l) => l.msg === 'archive run finished');
      expect(finished[0]).toMatchObject({ failed: 0, rows_archived: 20, stopped: false });
      expect(finished[1]).toMatchObject({ failed: 0, rows_archived: 0 });
      expect(new Set(finished.map((l) => l.run_id)).size).toBe(finished.length);
      // Each run started on an even second of the schedule.
      expect(logLines(stderr).filter((l) => l.msg === 'archive run started').every((l) => new Date(l.time as string).getUTCSeconds() % 2 === 0)).toBe(true);

      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/^auditlog_records_archived_total\{database="app",table="public.events"\} 20$/m);
      const okRuns = Number(/^auditlog_runs_total\{status="ok"\} (\d+)$/m.exec(metrics)?.[1]);
      expect(okRuns).toBeGreaterThanOrEqual(2);
      const health = await fetch(`http://127.0.0.1:${healthPort}/health`);
      expect(health.status).toBe(200);
      expect(((await health.json()) as { status: string }).status).toBe('healthy');
    } finally {
      child.kill('SIGTERM');
    }
    const r = await result;
    expect(r.code).toBe(0);
    expect(await rowIds(db)).toEqual([]);
  });

  it('storage unusable when it starts: the daemon stays up, serves /metrics and /health, notifies and counts each run that cannot start, and archives once the storage is back', async () => {
    // Found by probing: a trail that could not be opened made the daemon exit 1 at start, silently.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const hooks = await startWebhookReceiver();
    const blocker = join(dir, 'outage');
    await writeFile(blocker, 'a regular file where the archive directory should be');
    const config = await writeConfig('outage.yaml', join(blocker, 'archive'), `daemon:\n  schedule: "*/2 * * * * *"\nnotifications:\n  events: [failure, success]\n  timeout_ms: 3000\n  webhook:\n    webhook_url: ${hooks.url('/outage')}`);
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const received = (): Record<string, unknown>[] => (hooks.received.get('/outage') ?? []) as Record<string, unknown>[];
    try {
      const metricsPort = await waitFor('metrics port', () => logLines(stderr).find((l) => l.msg === 'serving Prometheus metrics')?.port as number | undefined);
      const healthPort = await waitFor('health port', () => logLines(stderr).find((l) => l.msg === 'serving health checks')?.port as number | undefined);
      await waitFor('two failure notifications', () => (received().filter((m) => m.event === 'failure').length >= 2 ? true : undefined));
      expect(received()[0]).toMatchObject({ event: 'failure', error: { code: 'STORAGE_CONFLICT' } });
      await waitFor('two runs that could not start', () => (logLines(stderr).filter((l) => String(l.msg).startsWith('archive run could not start')).length >= 2 ? true : undefined));
      expect(await rowIds(db)).toHaveLength(20);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(Number(/^auditlog_runs_total\{status="failed"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
      expect(metrics).toMatch(/^auditlog_errors_total\{database="app",table="public.events",code="STORAGE_CONFLICT"\} [1-9]/m);
      expect(metrics).toMatch(/^auditlog_table_state\{database="app",table="public.events",state="failed"\} 1$/m);
      expect((await fetch(`http://127.0.0.1:${healthPort}/health`)).status).toBe(503);
      // The storage comes back: the next scheduled run opens the trail and archives.
      await rm(blocker);
      await mkdir(blocker);
      await waitFor('a success notification', () => (received().some((m) => m.event === 'success') ? true : undefined));
      expect(await rowIds(db)).toEqual([]);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await result;
    await hooks.stop();
    expect(r.code).toBe(0);
  });

  it('a table removed from the file is no longer reported as "nothing archived for N days" from the next run on', async () => {
    // Found by probing: the notifier remembered every table it had seen until a restart.
    await db.query('DROP TABLE IF EXISTS events');
    await db.query('DROP TABLE IF EXISTS idle');
    await createEventsTable(db, { rows: 5, stepMinutes: 60, endDaysAgo: 11 });
    await createEventsTable(db, { table: 'idle', rows: 0, stepMinutes: 60, endDaysAgo: 11 });
    const hooks = await startWebhookReceiver();
    // 0.00001 days is 0.864 s: every run after the first breaks it for a table that archives nothing.
    const extra = `daemon:\n  schedule: "*/2 * * * * *"\nnotifications:\n  events: [threshold]\n  timeout_ms: 3000\n  thresholds:\n    max_days_without_archive: 0.00001\n  webhook:\n    webhook_url: ${hooks.url('/idle')}`;
    const idleTable = '\n      - name: idle\n        timestamp_column: happened_at\n';
    const config = await writeConfig('idle.yaml', join(dir, 'idle-archive'), extra);
    await appendFile(config, idleTable);
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const violations = (): string[][] => ((hooks.received.get('/idle') ?? []) as { violations: string[] }[]).map((m) => m.violations);
    try {
      await waitFor('a threshold message naming the idle table', () => (violations().some((v) => v.some((line) => line.startsWith('app/public.idle: nothing archived'))) ? true : undefined));
      await writeConfig('idle.yaml', join(dir, 'idle-archive'), extra);
      // The run going on when the file changed may still have read the old one; the second after it has not.
      const seen = violations().length;
      await waitFor('two more threshold messages', () => (violations().length >= seen + 2 ? true : undefined));
      const last = violations().at(-1)!;
      expect(last.some((line) => line.startsWith('app/public.events: nothing archived'))).toBe(true);
      expect(last.filter((line) => line.includes('public.idle'))).toEqual([]);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await result;
    await hooks.stop();
    expect(r.code).toBe(0);
  });

  it('reads the configuration file again before each run: a legal hold added applies at the next run; a file that no longer loads, or a changed storage section, starts no run', async () => {
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const archive = join(dir, 'reload');
    const schedule = 'daemon:\n  schedule: "*/2 * * * * *"\n';
    const holds = (hold: string): string => `${schedule}legal_holds:\n  enabled: true\n  holds:\n    - ${hold}`;
    const config = await writeConfig('reload.yaml', archive, holds('{ table: events, reason: Case 1 }'));
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const finished = (): LogLine[] => logLines(stderr).filter((l) => l.msg === 'archive run finished');
    try {
      await waitFor('a run under the table-level hold', () => (finished().length >= 1 ? true : undefined));
      expect(finished()[0]).toMatchObject({ failed: 0, rows_archived: 0 });
      expect(await rowIds(db)).toHaveLength(20);
      // Narrowed to rows 1-5 in the file: the next run archives the other 15, and keeps those.
      await writeConfig('reload.yaml', archive, holds("{ table: events, where: 'id <= 5', reason: Case 1 }"));
      await waitFor('a run under the record-level hold', () => (finished().some((l) => l.rows_archived === 15) ? true : undefined));
      expect(await rowIds(db)).toEqual(['1', '2', '3', '4', '5']);
      // Broken, or a section bound at start changed: no run, said on every scheduled time.
      await writeFile(config, 'local: [unclosed\n');
      await waitFor('the refusal of a broken file', () => logLines(stderr).find((l) => String(l.msg).includes('no longer loads')));
      await writeConfig('reload.yaml', join(dir, 'elsewhere'), holds('{ table: events, reason: Case 1 }'));
      const refusal = await waitFor('the refusal of a changed storage section', () => logLines(stderr).find((l) => String(l.msg).includes('local changed in the configuration file')));
      expect(refusal.msg).toContain('restart it');
      expect(logLines(stderr).filter((l) => l.msg === 'archive run started')).toHaveLength(finished().length);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await result).code).toBe(0);
    expect(await rowIds(db)).toEqual(['1', '2', '3', '4', '5']);
  });

  it('a run refused because the file no longer loads, or a bound section changed, is a failed run: notified, counted, unhealthy, and the staleness threshold still fires', async () => {
    // Found by probing: a refused run was only an error log line — no failure notification, /health
    // 200, auditlog_runs_total frozen, and max_days_without_archive never checked.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const hooks = await startWebhookReceiver();
    const archive = join(dir, 'refused');
    // 0.00001 days is 0.864 s: once the first run has archived, every later run finds the table stale.
    const notifications = (timeoutMs: number): string =>
      `daemon:\n  schedule: "*/2 * * * * *"\nnotifications:\n  events: [failure, threshold]\n  timeout_ms: ${timeoutMs}\n  thresholds:\n    max_days_without_archive: 0.00001\n  webhook:\n    webhook_url: ${hooks.url('/refused')}`;
    const config = await writeConfig('refused.yaml', archive, notifications(3000));
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    type Message = { event: string; run_id: string; error?: { code: string; message: string }; tables?: { error: string | null }[]; violations?: string[] };
    const received = (): Message[] => (hooks.received.get('/refused') ?? []) as Message[];
    const refusedWith = (code: string): Message[] => received().filter((m) => m.event === 'failure' && m.error?.code === code);
    interface Report {
      status: string;
      checks: { kind: string; name: string; status: string; error?: string }[];
    }
    try {
      const metricsPort = await waitFor('metrics port', () => logLines(stderr).find((l) => l.msg === 'serving Prometheus metrics')?.port as number | undefined);
      const healthPort = await waitFor('health port', () => logLines(stderr).find((l) => l.msg === 'serving health checks')?.port as number | undefined);
      const health = async (): Promise<{ http: number; report: Report }> => {
        const res = await fetch(`http://127.0.0.1:${healthPort}/health`);
        return { http: res.status, report: (await res.json()) as Report };
      };
      const failedRuns = async (): Promise<number> => Number(/^auditlog_runs_total\{status="failed"\} (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1] ?? 0);
      await waitFor('a first run', () => (logLines(stderr).some((l) => l.msg === 'archive run finished') ? true : undefined));
      expect(await rowIds(db)).toEqual([]);
      expect(await failedRuns()).toBe(0);

      // Broken YAML: each scheduled run is refused, and each refusal is a failed run.
      await writeFile(config, 'local: [unclosed\n');
      await waitFor('two refused runs notified as failures', () => (refusedWith('CONFIG_PARSE').length >= 2 ? true : undefined));
      const failure = refusedWith('CONFIG_PARSE')[0]!;
      expect(failure.error!.message).toContain('no longer loads');
      expect(failure.tables).toEqual([{ database: 'app', table: 'public.events', status: 'failed', rows_archived: 0, error: 'CONFIG_PARSE' }]);
      // The staleness threshold is checked on a run that could not start too.
      const stale = await waitFor('a threshold message from a refused run', () => received().find((m) => m.event === 'threshold' && m.tables?.[0]?.error === 'CONFIG_PARSE'));
      expect(stale.violations!.some((v) => v.startsWith('app/public.events: nothing archived'))).toBe(true);
      expect(await failedRuns()).toBeGreaterThanOrEqual(2);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/^auditlog_errors_total\{database="app",table="public.events",code="CONFIG_PARSE"\} [1-9]/m);
      expect(metrics).toMatch(/^auditlog_table_state\{database="app",table="public.events",state="failed"\} 1$/m);
      const broken = await health();
      expect(broken.http).toBe(503);
      expect(broken.report.status).toBe('unhealthy');
      expect(broken.report.checks.find((c) => c.kind === 'configuration')).toMatchObject({ status: 'down', error: expect.stringContaining('no longer loads') });

      // It loads again, but a section bound at start (notifications) changed: refused the same way.
      await writeConfig('refused.yaml', archive, notifications(4000));
      await waitFor('a refused run for the changed section', () => (refusedWith('CONFIG_CHANGED').length >= 1 ? true : undefined));
      expect(refusedWith('CONFIG_CHANGED')[0]!.error!.message).toContain('notifications changed in the configuration file');
      expect((await health()).report.checks.find((c) => c.kind === 'configuration')?.error).toContain('restart it');

      // Back as it was: the next run starts, and /health is healthy again.
      await writeConfig('refused.yaml', archive, notifications(3000));
      const before = logLines(stderr).filter((l) => l.msg === 'archive run finished').length;
      await waitFor('a run after the fix', () => (logLines(stderr).filter((l) => l.msg === 'archive run finished').length > before ? true : undefined));
      const healthy = await health();
      expect(healthy.http).toBe(200);
      expect(healthy.report.status).toBe('healthy');
      expect(healthy.report.checks.map((c) => c.kind)).not.toContain('configuration');
    } finally {
      child.kill('SIGTERM');
    }
    const r = await result;
    await hooks.stop();
    expect(r.code).toBe(0);
  });

  it('a key the command line overrides (daemon.schedule under --schedule, monitoring.quiet_mode under --quiet) may change in the file: no run is refused', async () => {
    // Found by probing: with --schedule, editing daemon.schedule refused every run ("daemon changed
    // ... restart it") although the flag overrides that key.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const archive = join(dir, 'flag-overrides');
    // Appended under monitoring: (writeConfig's last section before it), then the daemon section.
    const keys = (quiet: boolean, cron: string): string => `  quiet_mode: ${quiet}\ndaemon:\n  schedule: "${cron}"`;
    const config = await writeConfig('flag-overrides.yaml', archive, keys(false, '0 2 * * *'));
    const { child, result } = startCli(['daemon', '--config', config, '--schedule', '*/2 * * * * *', '--quiet', '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // --quiet logs no info line: the table emptying is what shows a run.
      await waitFor('a first run', async () => ((await rowIds(db)).length === 0 ? true : undefined));
      await writeConfig('flag-overrides.yaml', archive, keys(true, '0 3 * * *'));
      await db.query(`INSERT INTO events (id, happened_at) SELECT g, now() - interval '30 days' FROM generate_series(101, 110) g`);
      await waitFor('a run after the change', async () => ((await rowIds(db)).length === 0 ? true : undefined));
      expect(logLines(stderr).filter((l) => String(l.msg).includes('changed in the configuration file'))).toEqual([]);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await result).code).toBe(0);
  });

  it('/health checks the databases of the configuration the daemon last loaded, not of the one it started with', async () => {
    // Found by probing: a database added to the file failed every run (DB_CONNECT) while /health
    // said healthy; a database removed from it was still checked.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const archive = join(dir, 'health-reload');
    const schedule = 'daemon:\n  schedule: "*/2 * * * * *"';
    const config = await writeConfig('health-reload.yaml', archive, schedule);
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const runsEnded = (): LogLine[] => logLines(stderr).filter((l) => String(l.msg).startsWith('archive run finished'));
    interface Report {
      status: string;
      checks: { kind: string; name: string; status: string }[];
    }
    try {
      const healthPort = await waitFor('health port', () => logLines(stderr).find((l) => l.msg === 'serving health checks')?.port as number | undefined);
      const health = async (): Promise<{ http: number; report: Report }> => {
        const res = await fetch(`http://127.0.0.1:${healthPort}/health`);
        return { http: res.status, report: (await res.json()) as Report };
      };
      await waitFor('a first run', () => (runsEnded().length >= 1 ? true : undefined));
      expect((await health()).report.checks.filter((c) => c.kind === 'database').map((c) => c.name)).toEqual(['app']);

      // A database nobody can reach is added to the file: the next run fails it, and /health says so.
      await appendFile(config, `  - name: gone\n    url: postgresql://postgres@127.0.0.1:1/fixdm_gone\n    tables:\n      - name: events\n        timestamp_column: happened_at\n`);
      const failing = await waitFor('a run failing the added database', () => runsEnded().find((l) => (l.failed as number) > 0));
      expect(failing.msg).toBe('archive run finished with failed tables');
      const degraded = await health();
      expect(degraded.http).toBe(200);
      expect(degraded.report.status).toBe('degraded');
      expect(degraded.report.checks.filter((c) => c.kind === 'database').map((c) => [c.name, c.status])).toEqual([
        ['app', 'up'],
        ['gone', 'down'],
      ]);

      // Removed from the file again: no longer checked once a run has read the file.
      await writeConfig('health-reload.yaml', archive, schedule);
      const before = runsEnded().length;
      await waitFor('a run without the removed database', () => (runsEnded().slice(before).some((l) => l.failed === 0) ? true : undefined));
      const healthy = await health();
      expect(healthy.report.status).toBe('healthy');
      expect(healthy.report.checks.filter((c) => c.kind === 'database').map((c) => c.name)).toEqual(['app']);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await result).code).toBe(0);
  });

  it('an audit trail that cannot be opened makes /health unhealthy until a run opens it: no run archives without it', async () => {
    // Found by probing: every run refused to start for want of its trail while /health said healthy (200).
    await db.query('DROP TABLE IF EXISTS events');
    await db.query('DROP SCHEMA IF EXISTS audit_later CASCADE');
    await createEventsTable(db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const archive = join(dir, 'audit-health');
    const config = await writeConfig('audit-health.yaml', archive, 'daemon:\n  schedule: "* * * * * *"\ncompliance:\n  audit:\n    backend: database\n    schema: audit_later');
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    interface Report {
      status: string;
      checks: { kind: string; name: string; status: string; error?: string }[];
    }
    try {
      const healthPort = await waitFor('health port', () => logLines(stderr).find((l) => l.msg === 'serving health checks')?.port as number | undefined);
      const health = async (): Promise<{ http: number; report: Report }> => {
        const res = await fetch(`http://127.0.0.1:${healthPort}/health`);
        return { http: res.status, report: (await res.json()) as Report };
      };
      await waitFor('a run refused for its audit trail', () => (logLines(stderr).some((l) => String(l.msg).startsWith('archive run could not start: the audit trail cannot be opened')) ? true : undefined));
      const down = await health();
      expect(down.http).toBe(503);
      expect(down.report.status).toBe('unhealthy');
      expect(down.report.checks.find((c) => c.kind === 'audit' && c.name === 'audit trail')).toMatchObject({ status: 'down', error: expect.stringContaining('the last scheduled run was refused: the audit trail cannot be opened') });
      // The audit database itself is up: its own check says so.
      expect(down.report.checks.find((c) => c.kind === 'audit' && c.name === 'audit trail (database app)')).toMatchObject({ status: 'up' });
      expect(await rowIds(db)).toHaveLength(10);

      // The schema is created: the next run opens the trail, archives, and /health is healthy again.
      await db.query('CREATE SCHEMA audit_later');
      await waitFor('a run that archived', () => (logLines(stderr).some((l) => l.msg === 'archive run finished' && (l.rows_archived as number) > 0) ? true : undefined));
      const up = await health();
      expect(up.http).toBe(200);
      expect(up.report.status).toBe('healthy');
      expect(up.report.checks.map((c) => c.kind)).not.toContain('configuration');
      expect(up.report.checks.filter((c) => c.kind === 'audit').map((c) => c.name)).toEqual(['audit trail (database app)']);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await result).code).toBe(0);
    await db.query('DROP SCHEMA IF EXISTS audit_later CASCADE');
  });

  it('SIGTERM mid-run: no new batch starts, the one in flight finishes, no row lost, nothing in flight, lock released, exit 0', async () => {
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 300, stepMinutes: 10, endDaysAgo: 11 });
    const expected = await expectRowsOf(db, { table: 'events' });
    const archive = join(dir, 'a2');
    // 60 batches with a 100 ms pause after each: the run lasts over 6 s, so the signal lands mid-run.
    const config = await writeConfig('sigterm.yaml', archive, 'daemon:\n  schedule: "* * * * * *"', 100);
    const { child, result } = startCli(['daemon', '--config', config, '--json'], {}, 60_000);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitFor('rows archived', () => (logLines(stderr).some((l) => l.msg === 'progress' && (l.rows as number) >= 20) ? true : undefined));
    child.kill('SIGTERM');
    const r = await result;
    expect(r.code).toBe(0);
    const lines = logLines(stderr);
    expect(lines.filter((l) => l.msg === 'archive run started')).toHaveLength(1);
    expect(lines.some((l) => l.msg === 'stop requested: no further batch started; the rest of the table is archived by the next run')).toBe(true);
    expect(lines.find((l) => l.msg === 'archive run finished')).toMatchObject({ failed: 0, stopped: true });

    // Rows left prove the stop came before the remaining ~5 s of batches.
    const left = (await rowIds(db)).length;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(300);
    const report = await checkArchiveInvariant({ db, table: { table: 'events' }, source: { local: { path: archive } }, expected });
    expect(report.problems).toEqual([]);
    expect(report.rowsLost).toBe(0);
    expect(report.rowsArchived + report.rowsInTable).toBe(300);
    expect(report.pendingMarkers).toBe(0);
    expect(report.objectsWithoutMetadata).toBe(0);
    // The table's lock file is gone (the advisory lock went with its connection).
    const locks = await readdir(join(archive, '_auditlog', 'locks', 'app'));
    expect(locks).toEqual([]);
  });

  it('SIGHUP is not a stop: the daemon says it re-reads its configuration before every run, and keeps running', async () => {
    // Found by probing: SIGHUP (an operator expecting a reload, an SSH logout) killed the daemon
    // on the spot, exit 129, nothing logged, its lock file left behind.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    const archive = join(dir, 'hup');
    const config = await writeConfig('hup.yaml', archive, 'daemon:\n  schedule: "*/2 * * * * *"');
    const { child, result } = startCli(['daemon', '--config', config, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const finished = (): number => logLines(stderr).filter((l) => l.msg === 'archive run finished').length;
    try {
      await waitFor('a first run', () => (finished() >= 1 ? true : undefined));
      child.kill('SIGHUP');
      const hup = await waitFor('the SIGHUP log line', () => logLines(stderr).find((l) => l.signal === 'SIGHUP'));
      expect(hup.msg).toMatch(/configuration file is read again at the start of every run/);
      const before = finished();
      await waitFor('a run after the SIGHUP', () => (finished() > before ? true : undefined));
      expect(child.exitCode).toBeNull();
      expect(child.signalCode).toBeNull();
      // A second SIGHUP is no different (the handler stays).
      child.kill('SIGHUP');
      await waitFor('the second SIGHUP log line', () => (logLines(stderr).filter((l) => l.signal === 'SIGHUP').length >= 2 ? true : undefined));
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
    const r = await result;
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(logLines(r.stderr).some((l) => l.msg === 'stop requested: no run in progress any more, shutting down')).toBe(true);
    expect(await readdir(join(archive, '_auditlog', 'locks', 'app'))).toEqual([]);
  });

  it('a bad --schedule is a usage error (exit 2) naming the flag, before anything runs', async () => {
    const config = await writeConfig('bad.yaml', join(dir, 'a3'), '');
    const r = await runCli(['daemon', '--config', config, '--schedule', '61 * * * *']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^auditlog: --schedule "61 \* \* \* \*" is not a valid cron expression: .* \[USAGE\]\n$/);
  });

  it('a schedule that never fires (30 February) is a usage error (exit 2) naming it, before the daemon starts', async () => {
    const config = await writeConfig('never.yaml', join(dir, 'a4'), '');
    const flag = await runCli(['daemon', '--config', config, '--schedule', '0 0 30 2 *', '--json']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe('auditlog: --schedule "0 0 30 2 *" never fires: no date matches it (e.g. day 30 of February, or a year already past), so the daemon would have nothing to run [USAGE]\n');

    const fromConfig = await runCli(['daemon', '--config', await writeConfig('never2.yaml', join(dir, 'a5'), 'daemon:\n  schedule: "0 0 30 2 *"'), '--json']);
    expect(fromConfig.code).toBe(2);
    expect(fromConfig.stderr).toMatch(/daemon\.schedule.*"0 0 30 2 \*".*never fires/);
    for (const r of [flag, fromConfig]) {
      expect(r.stderr).not.toMatch(/daemon started|stop requested/);
    }
  });
});
