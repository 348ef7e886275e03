/**
 * `auditlog daemon`: archive runs on a cron schedule in one long-lived process that serves
 * /metrics and /health between runs. On SIGTERM (the abort signal) no new batch or table starts;
 * the batches in flight commit or roll back, locks are released as each table ends, and the
 * process exits 0 — what a Kubernetes Deployment expects within its grace period. SIGHUP is only
 * logged: the configuration is read again before every run anyway.
 */
import type { Config } from '../config/schema.js';
import { redactSecrets } from '../config/mask-secrets.js';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { RunEvents } from '../core/run-events.js';
import { reportRunNotStarted, runArchive } from '../archive/run-archive.js';
import { parseSchedule, runDaemon } from '../daemon/run-daemon.js';
import { createObjectStore } from '../storage/create-object-store.js';
import { createLogger } from './create-logger.js';
import { storageLogHooks } from './storage-log-hooks.js';
import { attachMonitoring, type RefusedRun } from './monitoring-setup.js';
import { attachNotifications } from './notifications-setup.js';
import { openAuditTrail, openRunAuditTrail } from './compliance-setup.js';
import type { HoldSourceOptions } from '../compliance/run-holds.js';

export interface DaemonCommandInput {
  config: Config;
  /** --schedule, else daemon.schedule. */
  schedule?: string;
  secrets: readonly string[];
  signal: AbortSignal;
  newRunId: () => string;
  toolVersion: string;
  level: 'debug' | 'info' | 'warn';
  quiet: boolean;
  /** --quiet was given: it overrides monitoring.quiet_mode, so a change of that key in the file needs no restart. */
  quietFlag?: boolean;
  json: boolean;
  io: { stderr: (text: string) => void; stderrIsTty?: boolean };
  /** The legal-hold API credential, read from the environment by the CLI. */
  holdSources: HoldSourceOptions;
  /**
   * Reads the configuration file again (with its secrets and hold sources). Called before each
   * run, so a legal hold, retention or table added to the file applies from the next run, as
   * docs/compliance.md says; without it every run uses `config`.
   */
  reloadConfig?: () => Promise<{ config: Config; secrets: readonly string[]; holdSources: HoldSourceOptions }>;
  /** Subscribes to the process's SIGHUPs (which do not stop the daemon); returns the unsubscribe. */
  onHangup?: (listener: () => void) => () => void;
}

/** Keys of the file that the command line overrides: the daemon never reads them from the file. */
interface CommandLineOverrides {
  /** --schedule: daemon.schedule. */
  schedule: boolean;
  /** --quiet: monitoring.quiet_mode. */
  quiet: boolean;
}

/**
 * Parts of the configuration the daemon binds when it starts (the store, the servers, the
 * notifiers, the audit trail, the schedule): a change to them needs a restart. Everything else
 * (databases, tables, retention, legal holds, defaults, locks, watermarks) applies per run. A key
 * the command line overrides is left out: changing it in the file changes nothing (found by
 * probing: with --schedule, editing daemon.schedule refused every run until a restart).
 */
const BOUND_AT_START: readonly { name: string; pick: (c: Config, o: CommandLineOverrides) => unknown }[] = [
  { name: 's3', pick: (c) => c.s3 },
  { name: 'local', pick: (c) => c.local },
  { name: 'monitoring', pick: (c, o) => (o.quiet ? { ...c.monitoring, quiet_mode: undefined } : c.monitoring) },
  { name: 'notifications', pick: (c) => c.notifications },
  { name: 'daemon', pick: (c, o) => (o.schedule ? { ...c.daemon, schedule: undefined } : c.daemon) },
  { name: 'compliance.audit', pick: (c) => c.compliance.audit },
];

type RunConfig = { config: Config; secrets: readonly string[]; holdSources: HoldSourceOptions };

/** The configuration for one run: the file as it is now, or the error that refuses the run. */
async function configForRun(input: DaemonCommandInput): Promise<RunConfig | { refused: AuditlogError }> {
  if (input.reloadConfig === undefined) return { config: input.config, secrets: input.secrets, holdSources: input.holdSources };
  let now: RunConfig;
  try {
    now = await input.reloadConfig();
  } catch (error) {
    // It may be a hold being added: running on the configuration read earlier could archive rows it holds.
    const code = isAuditlogError(error) ? error.code : 'CONFIG_INVALID';
    return { refused: new AuditlogError(code, `the configuration file no longer loads, so no run starts until it does (the daemon reads it again before the next run): ${describeError(error)}`, { cause: error }) };
  }
  const overrides: CommandLineOverrides = { schedule: input.schedule !== undefined, quiet: input.quietFlag === true };
  const changed = BOUND_AT_START.filter((s) => JSON.stringify(s.pick(now.config, overrides)) !== JSON.stringify(s.pick(input.config, overrides))).map((s) => s.name);
  if (changed.length > 0) {
    return {
      refused: new AuditlogError(
        'CONFIG_CHANGED',
        `${changed.join(', ')} changed in the configuration file since the daemon started, and the daemon applies ${changed.length === 1 ? 'that' : 'those'} only when it starts: restart it; no run starts until then`,
        { details: { sections: changed } },
      ),
    };
  }
  return { config: now.config, secrets: [...new Set([...input.secrets, ...now.secrets])], holdSources: now.holdSources };
}

export async function runDaemonCommand(input: DaemonCommandInput): Promise<number> {
  const expression = input.schedule ?? input.config.daemon.schedule;
  const schedule = parseSchedule(expression, input.schedule === undefined ? 'daemon.schedule' : '--schedule');
  const logger = createLogger({ runId: 'daemon', json: input.json, level: input.level });
  const redact = (error: unknown): string => redactSecrets(describeError(error), input.secrets);
  // Said when the signal arrives, whatever the daemon is doing then (found by probing: a stop
  // during the start-up storage check was not logged until that check gave up, minutes later).
  const sayStop = (): void =>
    logger.warn({ signal: input.signal.reason as unknown }, 'stop requested: no new run, table or batch starts; a batch in flight commits or rolls back (a second signal ends the process at once)');
  if (input.signal.aborted) sayStop();
  else input.signal.addEventListener('abort', sayStop, { once: true });
  // One event stream for the daemon's life: the metrics accumulate across runs, as Prometheus expects of counters.
  const events = new RunEvents((event, error) => logger.warn({ event, err: redact(error) }, 'a run event listener failed; the run goes on'));
  const store = await createObjectStore(input.config, {
    ...storageLogHooks(logger),
    onRetry: (notice) => events.emit('storage:retry', { errorClass: notice.classification.retryClass ?? 'other', attempt: notice.attempt }),
  });
  // /health checks what the runs use: the configuration last read for a run (a refused one
  // starts no run, so it is not it), not the one the daemon started with.
  let lastLoaded: { config: Config; secrets: readonly string[] } = { config: input.config, secrets: input.secrets };
  // Why the last scheduled run was refused, until one starts again: /health reports it as down.
  let refusedRun: RefusedRun | undefined;
  // The audit trail is opened before any run archives; while it cannot be, no run can (found by
  // probing: /health said healthy while every run refused to start for want of it).
  const auditRefusal = (error: unknown, when: 'start-up' | 'run'): RefusedRun => ({
    kind: 'audit',
    name: 'audit trail',
    reason: `${when === 'run' ? 'the last scheduled run was refused' : 'no run can start until it opens (checked at start-up; each scheduled run tries again)'}: the audit trail cannot be opened: ${redact(error)}`,
  });
  const monitoring = await attachMonitoring({
    config: input.config,
    events,
    store,
    secrets: input.secrets,
    logger,
    quiet: input.quiet,
    json: input.json,
    io: input.io,
    servesByDefault: true,
    healthConfig: () => ({ ...lastLoaded, ...(refusedRun === undefined ? {} : { refusedRun }) }),
  });
  const detachNotifications = attachNotifications({ config: input.config, events, metrics: monitoring.metrics, logger, secrets: input.secrets, digest: 'daily' });
  // Every scheduled run leaves its trace, as a one-shot run does: no run archives before the trail
  // is open. A trail that cannot be opened because something outside is down (storage, the audit
  // database: exit code 1 in a one-shot run) is an outage, not a reason to exit — the daemon keeps
  // serving /metrics and /health, and each scheduled run tries again, and is notified and counted
  // as a run that could not start until it succeeds. A configuration error (exit 2) still stops it.
  let closeTrail: (() => Promise<number>) | undefined;
  let lostAuditRecords = 0;
  try {
    closeTrail = await openAuditTrail(input.config, store, events, input.signal);
  } catch (error) {
    // Stopped during the start-up storage check: nothing started, and the stop is the daemon's normal end.
    if (isAuditlogError(error) && error.code === 'STOPPED') {
      input.signal.removeEventListener('abort', sayStop);
      await detachNotifications();
      await monitoring.close();
      await events.settle();
      logger.info('stopped during start-up: no run was started, shutting down');
      return 0;
    }
    if (isAuditlogError(error) && error.exitCode === 2) {
      await detachNotifications();
      await monitoring.close();
      throw error;
    }
    refusedRun = auditRefusal(error, 'start-up');
    logger.error({ code: isAuditlogError(error) ? error.code : 'INTERNAL', err: redact(error) }, 'the audit trail cannot be opened: no run archives until it can; the daemon tries again before each scheduled run');
  }
  logger.info({ schedule: expression }, 'daemon started');
  // Operators send SIGHUP expecting a reload; there is none to do, so say what happens instead.
  // A warning, so that it shows under --quiet too.
  const stopHangups = input.onHangup?.(() =>
    logger.warn({ signal: 'SIGHUP' }, `SIGHUP received: nothing to reload, the configuration file is read again at the start of every run (${BOUND_AT_START.map((s) => s.name).join(', ')} need a restart); the daemon keeps running`),
  );
  try {
    await runDaemon({
      schedule,
      signal: input.signal,
      onWaiting: (next) => logger.debug({ next_run: next.toISOString() }, 'waiting for the next scheduled run'),
      onSkipped: (missed) => logger.warn({ missed }, 'scheduled times passed while a run was going: skipped, runs never overlap'),
      runOnce: async (signal) => {
        const runId = input.newRunId();
        const runLogger = createLogger({ runId, json: input.json, level: input.level });
        const current = await configForRun(input);
        if ('refused' in current) {
          const reason = redact(current.refused.message);
          refusedRun = { kind: 'configuration', name: 'configuration file', reason: `the last scheduled run was refused: ${reason}` };
          runLogger.error({ code: current.refused.code }, reason);
          // A run that cannot start, as one with the storage down is: notified as a failure (by the
          // notifier built at start, which is the last loaded file's: notifications is bound at
          // start), counted, its tables shown failed, and the staleness threshold checked, against
          // the tables of the last configuration that loaded. Found by probing: a refusal was only
          // this log line, and /health, the runs counter and the notifications stayed silent.
          reportRunNotStarted({ config: lastLoaded.config, runId, events, secrets: [...new Set([...input.secrets, ...lastLoaded.secrets])] }, current.refused);
          return;
        }
        refusedRun = undefined;
        lastLoaded = { config: current.config, secrets: current.secrets };
        if (closeTrail === undefined) {
          try {
            closeTrail = await openRunAuditTrail(current.config, store, events, { runId, secrets: current.secrets }, signal);
          } catch (error) {
            if (isAuditlogError(error) && error.code === 'STOPPED') return;
            refusedRun = auditRefusal(error, 'run');
            runLogger.error({ code: isAuditlogError(error) ? error.code : 'INTERNAL', err: redact(error) }, 'archive run could not start: the audit trail cannot be opened, and nothing is archived without it; the daemon tries again at the next scheduled time');
            return;
          }
        }
        runLogger.info('archive run started');
        try {
          const summary = await runArchive({
            config: current.config,
            store,
            logger: runLogger,
            runId,
            toolVersion: input.toolVersion,
            secrets: current.secrets,
            events,
            holdSources: current.holdSources,
            signal,
            ...monitoring.runOptions,
          });
          const fields = { failed: summary.failed, rows_archived: summary.tables.reduce((n, t) => n + t.rowsArchived, 0), duration_ms: summary.durationMs, stopped: signal.aborted };
          if (summary.failed > 0) runLogger.error(fields, 'archive run finished with failed tables');
          else runLogger.info(fields, 'archive run finished');
        } catch (error) {
          // A run that cannot start (storage unreachable...) is reported; the daemon waits for the next time.
          runLogger.error({ err: redact(error) }, 'archive run failed');
        }
      },
    });
    logger.info('stop requested: no run in progress any more, shutting down');
  } finally {
    input.signal.removeEventListener('abort', sayStop);
    stopHangups?.();
    await events.settle();
    lostAuditRecords = closeTrail === undefined ? 0 : await closeTrail();
    await detachNotifications();
    await monitoring.close();
  }
  if (lostAuditRecords > 0) {
    // Its runs are done, but their trace is not complete: the daemon must not end looking clean.
    logger.error({ lost_audit_records: lostAuditRecords }, 'audit records could not be written during this daemon\'s life (see the warnings above); check the audit backend, then run auditlog audit verify');
    return 1;
  }
  return 0;
}
