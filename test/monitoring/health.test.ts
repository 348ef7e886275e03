/**
 * /health and `auditlog health`: each database and the bucket checked with a timeout; one
 * database down → degraded (200), storage or every database down → unhealthy (503), secrets never shown.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { useArchiveFixture } from '../helpers/archive-fixture.js';
import { buildConfig } from '../helpers/archive-run.js';
import { startMonitoringServers, type MonitoringServers } from '../../src/cli/monitoring-setup.js';
import { createArchiveMetrics } from '../../src/monitoring/archive-metrics.js';
import { classifyHealth, healthHttpStatus, type HealthReport } from '../../src/monitoring/health-check.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { runCli } from '../helpers/run-cli.js';
import { startSilentServer, type SilentServer } from '../helpers/silent-server.js';

const fx = useArchiveFixture();
let servers: MonitoringServers | undefined;
// Accepts connections and never answers: a database (or storage) that hangs.
let silent: SilentServer;
let silentPort: number;
let held: SilentServer['held'];
let dir: string;
beforeAll(async () => {
  silent = await startSilentServer();
  ({ port: silentPort, held } = silent);
  dir = await mkdtemp(join(tmpdir(), 'health-'));
});
afterAll(async () => {
  await silent?.stop();
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await servers?.close();
  servers = undefined;
});

const UP_TIMEOUT_MS = 5_000;
const DOWN_URL = 'postgresql://archiver:hunter2-secret@127.0.0.1:1/nowhere';

/**
 * `timeoutMs`: 300 where a check must time out (a silent server), else generous: a check that
 * should be up took over 300 ms on a loaded 2-core machine and the test saw 503.
 */
function configWith(databases: { name: string; url: string }[], s3 = fx.s3cfg, timeoutMs = UP_TIMEOUT_MS) {
  return buildConfig({
    s3,
    monitoring: { health_check_enabled: true, health_check_port: 0, listen_host: '127.0.0.1', health_check_timeout_ms: timeoutMs },
    databases: databases.map((d) => ({ ...d, tables: [{ name: 'events', timestamp_column: 'happened_at' }] })),
  });
}

async function getHealth(config: ReturnType<typeof configWith>): Promise<{ status: number; report: HealthReport }> {
  servers = await startMonitoringServers({
    config,
    servesByDefault: false,
    metrics: createArchiveMetrics(),
    store: new S3ObjectStore(config.s3!),
    secrets: ['hunter2-secret'],
    logger: pino({ level: 'silent' }),
  });
  expect(servers.metricsPort).toBeUndefined();
  const res = await fetch(`http://127.0.0.1:${servers.healthPort}/health`);
  expect(res.headers.get('content-type')).toBe('application/json');
  return { status: res.status, report: (await res.json()) as HealthReport };
}

describe('classifyHealth', () => {
  it("healthy when all are up; degraded when some database is down; unhealthy when storage, every database or the daemon's configuration is down", () => {
    const db = (status: 'up' | 'down') => ({ kind: 'database' as const, status });
    const storage = (status: 'up' | 'down') => ({ kind: 'storage' as const, status });
    expect(classifyHealth([db('up'), db('up'), storage('up')])).toBe('healthy');
    expect(classifyHealth([db('up'), db('down'), storage('up')])).toBe('degraded');
    expect(classifyHealth([db('down'), db('down'), storage('up')])).toBe('unhealthy');
    expect(classifyHealth([db('up'), storage('down')])).toBe('unhealthy');
    // The daemon's runs refused (its file no longer loads): no work is possible, as with the storage down.
    expect(classifyHealth([db('up'), storage('up'), { kind: 'configuration', status: 'down' }])).toBe('unhealthy');
    // The audit trail's database down, or (daemon) the trail not opened: no run starts.
    expect(classifyHealth([db('up'), db('down'), storage('up'), { kind: 'audit', status: 'down' }])).toBe('unhealthy');
    expect([healthHttpStatus('healthy'), healthHttpStatus('degraded'), healthHttpStatus('unhealthy')]).toEqual([200, 200, 503]);
  });
});

describe('/health', () => {
  it('all up: 200 healthy, with a response time per check', async () => {
    const { status, report } = await getHealth(configWith([{ name: 'app', url: fx.db.url }]));
    expect(status).toBe(200);
    expect(report.status).toBe('healthy');
    expect(report.checks.map((c) => [c.kind, c.name === 'app' ? 'app' : 'bucket', c.status])).toEqual([
      ['database', 'app', 'up'],
      ['storage', 'bucket', 'up'],
    ]);
    for (const c of report.checks) expect(c.response_time_ms).toEqual(expect.any(Number));
  });

  it('one database down: 200 degraded, the error named without its password', async () => {
    const { status, report } = await getHealth(configWith([{ name: 'app', url: fx.db.url }, { name: 'billing', url: DOWN_URL }]));
    expect(status).toBe(200);
    expect(report.status).toBe('degraded');
    const billing = report.checks.find((c) => c.name === 'billing')!;
    expect(billing.status).toBe('down');
    expect(billing.error).toMatch(/cannot connect to database "billing"/);
    expect(JSON.stringify(report)).not.toContain('hunter2-secret');
  });

  it('the only database hangs: down after the timeout, 503 unhealthy', async () => {
    const { status, report } = await getHealth(configWith([{ name: 'app', url: `postgresql://postgres@127.0.0.1:${silentPort}/x` }], fx.s3cfg, 300));
    expect(status).toBe(503);
    expect(report.status).toBe('unhealthy');
    expect(report.checks[0]).toMatchObject({ name: 'app', status: 'down', error: 'no answer within 300 ms' });
    expect(report.checks[0]!.response_time_ms).toBeGreaterThanOrEqual(290);
  });

  it('the audit trail\'s database down: 503 unhealthy, though another database is up — no run starts without its trail', async () => {
    // Found by probing: `degraded` (200) while every run refused to start for want of its trail.
    const databases = [{ name: 'audit', url: DOWN_URL }, { name: 'app', url: fx.db.url }].map((d) => ({ ...d, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }));
    const monitoring = { health_check_enabled: true, health_check_port: 0, listen_host: '127.0.0.1', health_check_timeout_ms: UP_TIMEOUT_MS };
    const { status, report } = await getHealth(buildConfig({ s3: fx.s3cfg, monitoring, databases, compliance: { audit: { backend: 'both', database: 'audit' } } }));
    expect(status).toBe(503);
    expect(report.status).toBe('unhealthy');
    expect(report.checks.map((c) => [c.kind, c.name, c.status])).toEqual([
      ['database', 'audit', 'down'],
      ['database', 'app', 'up'],
      ['storage', report.checks[2]!.name, 'up'],
      ['audit', 'audit trail (database audit)', 'down'],
    ]);
    expect(JSON.stringify(report)).not.toContain('hunter2-secret');
    // The trail in storage only: the same databases are only degraded.
    await servers?.close();
    servers = undefined;
    const storageOnly = await getHealth(buildConfig({ s3: fx.s3cfg, monitoring, databases, compliance: { audit: { backend: 'storage' } } }));
    expect(storageOnly.status).toBe(200);
    expect(storageOnly.report.status).toBe('degraded');
    expect(storageOnly.report.checks.map((c) => c.kind)).not.toContain('audit');
  });

  it('storage down: 503 unhealthy even with every database up', async () => {
    const { status, report } = await getHealth(
      configWith([{ name: 'app', url: fx.db.url }], { ...fx.s3cfg, endpoint: 'http://127.0.0.1:9', retry: { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1 } }),
    );
    expect(status).toBe(503);
    expect(report.checks.find((c) => c.kind === 'storage')!.status).toBe('down');
  });
});

/** A configuration for the CLI: `storage` is its storage section (YAML), checks time out at 2 s. */
const configYaml = (storage: string, url: string): string => `${storage}monitoring:
  health_check_timeout_ms: 2000
databases:
  - name: app
    url: ${url}
    tables:
      - name: events
        timestamp_column: happened_at
`;

describe('auditlog health', () => {
  const yaml = (url: string, archive: string): string => configYaml(`local:\n  path: ${archive}\n`, url);
  it('exit 0 when healthy, 1 with the failing check named otherwise; --json prints the /health body', async () => {
    const ok = join(dir, 'ok.yaml');
    await writeFile(ok, yaml(fx.db.url, join(dir, 'a')));
    const healthy = await runCli(['health', '--config', ok]);
    expect(healthy.code).toBe(0);
    expect(healthy.stdout).toMatch(/^ok {3}database app \([\d.]+ ms\)\nok {3}storage .*\/a\/ \([\d.]+ ms\)\nhealthy\n$/);

    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, yaml(DOWN_URL, join(dir, 'b')));
    const unhealthy = await runCli(['health', '--config', bad, '--json']);
    expect(unhealthy.code).toBe(1);
    const report = JSON.parse(unhealthy.stdout) as HealthReport;
    expect(report.status).toBe('unhealthy');
    expect(report.checks[0]).toMatchObject({ kind: 'database', name: 'app', status: 'down' });
    expect(unhealthy.stdout + unhealthy.stderr).not.toContain('hunter2-secret');
  });

  it('a database that accepts connections and never answers: unhealthy at the timeout, and the process exits right after, not when the 15 s connect timeout would fire', async () => {
    const hung = join(dir, 'hung.yaml');
    await writeFile(hung, yaml(`postgresql://postgres@127.0.0.1:${silentPort}/x`, join(dir, 'c')));
    const started = performance.now();
    const r = await runCli(['health', '--config', hung]);
    const took = performance.now() - started;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^DOWN database app \([\d.]+ ms\): no answer within 2000 ms\n/);
    expect(r.stdout).toMatch(/\nunhealthy\n$/);
    // The 2 s timeout plus the CLI's start-up (about 1.5 s here), well short of the 15 s connection timeout.
    expect(took).toBeLessThan(2_000 + 4_000);
  }, 30_000);
});

describe('the daemon\'s /health while a database hangs', () => {
  it('each request ends its connection attempt at the timeout: none stays open behind the answer', async () => {
    const before = held.length;
    const { report } = await getHealth(configWith([{ name: 'app', url: `postgresql://postgres@127.0.0.1:${silentPort}/x` }], fx.s3cfg, 300));
    expect(report.checks[0]).toMatchObject({ name: 'app', status: 'down', error: 'no answer within 300 ms' });
    const opened = held.slice(before);
    expect(opened.length).toBeGreaterThan(0);
    // The server side of each attempt sees it closed right after the answer (before: 15 s later).
    const deadline = Date.now() + 1_000;
    while (opened.some((s) => !s.readableEnded && !s.destroyed) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(opened.map((s) => s.readableEnded || s.destroyed)).toEqual(opened.map(() => true));
  });
});

describe('storage that accepts connections and never answers', () => {
  const silentS3 = (): ReturnType<typeof fx.s3.s3Config> => ({ ...fx.s3cfg, endpoint: `http://127.0.0.1:${silentPort}` });
  const s3Yaml = (url: string): string =>
    configYaml(
      `s3:
  bucket: ${fx.s3cfg.bucket}
  endpoint: http://127.0.0.1:${silentPort}
  region: us-east-1
  force_path_style: true
  access_key_id: ${fx.s3cfg.access_key_id}
  secret_access_key: ${fx.s3cfg.secret_access_key}
`,
      url,
    );

  // Found by probing: DOWN was printed at the timeout, but the process exited only once every
  // retry of the bucket check had run out (5 attempts × request_timeout_ms: about 305 s).
  it('auditlog health: DOWN at the timeout and the process exits right after, exit 1', async () => {
    const file = join(dir, 'silent-s3.yaml');
    await writeFile(file, s3Yaml(fx.db.url));
    const started = performance.now();
    const r = await runCli(['health', '--config', file], {}, 60_000);
    const took = performance.now() - started;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\nDOWN storage s3:\/\/\S+ .*\([\d.]+ ms\): no answer within 2000 ms\n/);
    expect(r.stdout).toMatch(/\nunhealthy\n$/);
    expect(took).toBeLessThan(2_000 + 5_000);
  }, 90_000);

  it('config validate --check-connections: the storage check is given up after monitoring.health_check_timeout_ms', async () => {
    const file = join(dir, 'silent-s3-validate.yaml');
    await writeFile(file, s3Yaml(fx.db.url));
    const started = performance.now();
    const r = await runCli(['config', 'validate', '--config', file, '--check-connections'], {}, 60_000);
    const took = performance.now() - started;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('given up (no answer within 2000 ms (monitoring.health_check_timeout_ms))');
    expect(r.stdout).toContain('ok: database app');
    expect(took).toBeLessThan(2_000 + 5_000);
  }, 90_000);

  it("the daemon's /health closes its storage request at the timeout: no socket stays open behind the answer", async () => {
    const before = held.length;
    const { status, report } = await getHealth(configWith([{ name: 'app', url: fx.db.url }], silentS3(), 300));
    expect(status).toBe(503);
    expect(report.checks.find((c) => c.kind === 'storage')).toMatchObject({ status: 'down', error: 'no answer within 300 ms' });
    const opened = held.slice(before);
    expect(opened.length).toBeGreaterThan(0);
    const deadline = Date.now() + 1_000;
    while (opened.some((s) => !s.readableEnded && !s.destroyed) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(opened.map((s) => s.readableEnded || s.destroyed)).toEqual(opened.map(() => true));
  });
});
