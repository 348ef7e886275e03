/**
 * Composition of monitoring for `archive` and `daemon`: the metrics registry and the progress
 * reporter subscribed to run events, the health targets built from the config, and the
 * `/metrics` and `/health` servers. Only wiring here; the logic lives in src/monitoring/.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { redactSecrets } from '../config/mask-secrets.js';
import { abortPoolConnections, buildSessionSettings, checkConnection, createPool } from '../db/connect.js';
import type { ObjectStore } from '../storage/object-store.js';
import { checkHealth, healthHttpStatus, type HealthReport, type HealthTarget } from '../monitoring/health-check.js';
import type { ArchiveMetrics } from '../monitoring/archive-metrics.js';
import { attachProgress } from '../monitoring/progress-reporter.js';
import type { RunEvents } from '../core/run-events.js';
import type { RunArchiveOptions } from '../archive/run-archive.js';
import { serveRoutes, type RunningServer } from '../monitoring/serve-routes.js';

/**
 * One check per configured database (a fresh one-connection pool each time) and one for the
 * bucket; with the audit trail in a database, that database once more as the `audit` check: no
 * run starts without its trail, so it being down is not a degraded archiver but a stopped one
 * (found by probing: one of two databases down said `degraded` while nothing was archived).
 */
export function healthTargets(config: Config, store: ObjectStore, secrets: readonly string[]): HealthTarget[] {
  const databases: HealthTarget[] = config.databases.map((db) => ({
    kind: 'database',
    name: db.name,
    check: async (signal) => {
      const pool = createPool({
        database: { ...db, connection_pool_size: 2 },
        applicationName: `${config.application_name} health`,
        settings: buildSessionSettings(config.defaults),
        onBackgroundError: () => undefined,
      });
      // Past the check's timeout the connection (or the attempt to make one) is destroyed, so
      // nothing of the check outlives its verdict.
      const abandon = (): void => {
        abortPoolConnections(pool, signal.reason instanceof Error ? signal.reason : new Error('health check timed out'));
      };
      signal.addEventListener('abort', abandon, { once: true });
      try {
        await checkConnection(pool, db, secrets);
      } finally {
        signal.removeEventListener('abort', abandon);
        void pool.end().catch(() => undefined);
      }
    },
  }));
  const targets: HealthTarget[] = [...databases, { kind: 'storage', name: store.description, check: (signal) => store.check({ signal, createNothing: true }) }];
  const audit = config.compliance.audit;
  if (audit.backend === 'database' || audit.backend === 'both') {
    const name = audit.database ?? config.databases[0]?.name;
    const database = databases.find((t) => t.name === name);
    if (database !== undefined) targets.push({ kind: 'audit', name: `audit trail (database ${name})`, check: database.check });
  }
  return targets;
}

/** Why the daemon's last scheduled run was refused before it started, as the check it shows as in /health. */
export interface RefusedRun {
  /** `configuration`: the file no longer loads, or a section bound at start changed; `audit`: the audit trail cannot be opened. */
  kind: 'configuration' | 'audit';
  name: string;
  /** The check's error: what refused the run, or (audit trail at start-up) what will. */
  reason: string;
}

/**
 * `refusedRun`: why the daemon's last scheduled run was refused before it started (its file no
 * longer loads, a section bound at start changed, or its audit trail cannot be opened), if it
 * was: one more check, down, so that /health is unhealthy while no run can start — as it is with
 * the storage down.
 */
export function runHealthChecks(config: Config, store: ObjectStore, secrets: readonly string[], refusedRun?: RefusedRun): Promise<HealthReport> {
  const targets = healthTargets(config, store, secrets);
  if (refusedRun !== undefined) targets.push({ kind: refusedRun.kind, name: refusedRun.name, check: () => Promise.reject(new Error(refusedRun.reason)) });
  return checkHealth(targets, { timeoutMs: config.monitoring.health_check_timeout_ms, redact: (t) => redactSecrets(t, secrets) });
}

/** The configuration (and its secrets) /health checks, and why the last run was refused if it was: read at each request. */
export type HealthConfig = () => { config: Config; secrets: readonly string[]; refusedRun?: RefusedRun };

export interface MonitoringServers {
  metricsPort?: number;
  healthPort?: number;
  close(): Promise<void>;
}

/**
 * Starts the servers the config (and the command's defaults) ask for. `servesByDefault`: the
 * daemon serves both unless disabled; a one-shot archive run only when enabled.
 */
export async function startMonitoringServers(options: {
  config: Config;
  servesByDefault: boolean;
  metrics: ArchiveMetrics;
  store: ObjectStore;
  secrets: readonly string[];
  logger: Logger;
  /**
   * What /health checks, when it can change after the servers start: the daemon reads its file
   * again before each run, and must check the databases its runs use. Default: `config`.
   */
  healthConfig?: HealthConfig;
}): Promise<MonitoringServers> {
  const m = options.config.monitoring;
  const servers: RunningServer[] = [];
  const result: MonitoringServers = {
    close: async () => {
      await Promise.all(servers.map((s) => s.close()));
    },
  };
  try {
    if (m.metrics_enabled ?? options.servesByDefault) {
      const server = await serveRoutes({
        host: m.listen_host,
        port: m.metrics_port,
        portKey: 'metrics_port',
        routes: {
          '/metrics': async () => ({ status: 200, contentType: options.metrics.registry.contentType, body: await options.metrics.registry.metrics() }),
        },
      });
      servers.push(server);
      result.metricsPort = server.port;
      options.logger.info({ port: server.port, path: '/metrics' }, 'serving Prometheus metrics');
    }
    if (m.health_check_enabled ?? options.servesByDefault) {
      const server = await serveRoutes({
        host: m.listen_host,
        port: m.health_check_port,
        portKey: 'health_check_port',
        routes: {
          '/health': async () => {
            const current = options.healthConfig?.() ?? { config: options.config, secrets: options.secrets };
            const report = await runHealthChecks(current.config, options.store, current.secrets, current.refusedRun);
            return { status: healthHttpStatus(report.status), contentType: 'application/json', body: JSON.stringify(report) + '\n' };
          },
        },
      });
      servers.push(server);
      result.healthPort = server.port;
      options.logger.info({ port: server.port, path: '/health' }, 'serving health checks');
    }
  } catch (error) {
    await result.close();
    throw error;
  }
  return result;
}

export interface AttachedMonitoring {
  metrics: ArchiveMetrics;
  servers: MonitoringServers;
  /** What runArchive needs for this monitoring: counted tables for the ETA, and no progress line of its own. */
  runOptions: Pick<RunArchiveOptions, 'countRows' | 'progressIntervalMs'>;
  close(): Promise<void>;
}

/**
 * Metrics and progress subscribed to `events`, servers started. Quiet (cron): no progress and no
 * counting; the metrics still count.
 */
export async function attachMonitoring(options: {
  config: Config;
  events: RunEvents;
  store: ObjectStore;
  secrets: readonly string[];
  logger: Logger;
  quiet: boolean;
  json: boolean;
  io: { stderr: (text: string) => void; stderrIsTty?: boolean };
  servesByDefault: boolean;
  metrics?: ArchiveMetrics;
  servers?: MonitoringServers;
  healthConfig?: HealthConfig;
}): Promise<AttachedMonitoring> {
  // prom-client is loaded here, where a run's metrics are collected, not by `health`, which only checks.
  const metrics = options.metrics ?? (await import('../monitoring/archive-metrics.js')).createArchiveMetrics();
  const detach: (() => void)[] = [metrics.subscribe(options.events)];
  if (!options.quiet) {
    const tty = options.io.stderrIsTty === true && !options.json;
    detach.push(
      attachProgress(options.events, {
        mode: tty ? 'tty' : 'log',
        write: options.io.stderr,
        columns: () => process.stderr.columns,
        log: (fields, message) => options.logger.info(fields, message),
        intervalMs: options.config.monitoring.progress_update_interval * 1000,
      }),
    );
  }
  const owned = options.servers === undefined;
  const servers =
    options.servers ??
    (await startMonitoringServers({
      config: options.config,
      servesByDefault: options.servesByDefault,
      metrics,
      store: options.store,
      secrets: options.secrets,
      logger: options.logger,
      ...(options.healthConfig === undefined ? {} : { healthConfig: options.healthConfig }),
    }));
  return {
    metrics,
    servers,
    // The reporter above replaces the pipeline's own periodic line (which has no percent or ETA).
    runOptions: { countRows: !options.quiet, progressIntervalMs: Number.POSITIVE_INFINITY },
    close: async () => {
      detach.forEach((d) => d());
      if (owned) await servers.close();
    },
  };
}
