/**
 * Composition root: parses argv, reads the environment, builds adapters, runs a use case, maps
 * the outcome to an exit code (0 ok, 1 the work ran and something failed, 2 usage/config).
 * Errors are caught here, once.
 *
 * Start-up: every invocation (a cron run, a monitoring system's `health` probe every few seconds,
 * `--version`) pays for what this module imports before it does anything, and the dependencies
 * behind the commands (AWS SDK, zod, pg, pino, prom-client, nodemailer...) cost ~1 s of CPU
 * together. So only what parsing argv, the help texts and the error handler below need is
 * imported here; each command's action imports its own modules when it runs. An error thrown by a
 * lazily imported module still rejects the action, and so ends in the one handler in `main`.
 * test/cli/startup-imports.test.ts checks which dependencies a command loads.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { BatchPhase } from '../archive/archive-context.js';
import type { Config } from '../config/schema.js';
import { collectSecrets, maskConfig, redactSecrets } from '../config/mask-secrets.js';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { RunEvents } from '../core/run-events.js';
import { MIN_ORPHAN_AGE_HOURS } from '../storage/cleanup-interrupted.js';
import type { RestoreCliOptions } from './restore-command.js';
import type { RestoreSummary } from '../restore/restore-table.js';
import type { ValidateCommandOptions } from './validate-command.js';
import type { CostCliOptions } from './cost-command.js';
import type { WizardCliOptions } from './wizard-command.js';
import type pg from 'pg';
import type { RunSummary } from '../archive/table-summary.js';
import { watchStopSignals } from './stop-signals.js';

export function readToolVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Reads and validates the configuration; its modules (yaml, zod) load with the first command that reads one. */
async function loadConfig(file: string, env: NodeJS.ProcessEnv, read?: (file: string) => Promise<string | Uint8Array>): Promise<Config> {
  const { loadConfig: load } = await import('../config/load-config.js');
  return load(file, env, read);
}

export function newRunId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Whether stderr is a terminal: live progress line there, log lines otherwise. */
  stderrIsTty?: boolean;
}

let stdoutGuarded = false;

/**
 * stdout without an 'error' listener crashes the process when its reader goes away
 * (`auditlog archive --json | head -1`): an unhandled EPIPE after the work is done, with a stack
 * trace and exit 1. A reader that stopped reading is not a failure of the run, so EPIPE drops the
 * rest of the output and the exit code stays that of the work; any other write error says so in
 * one line and fails the command (its output is incomplete).
 */
function writeStdout(text: string): void {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      // ERR_STREAM_DESTROYED: a later write to the stream an earlier error already closed.
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') return;
      process.stderr.write(`auditlog: could not write to stdout: ${error.message}\n`);
      process.exitCode = 1;
    });
  }
  process.stdout.write(text);
}

const defaultIo: Io = {
  stdout: writeStdout,
  stderr: (t) => process.stderr.write(t),
  env: process.env,
  stderrIsTty: process.stderr.isTTY === true,
};

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let exitCode = 0;
  let secrets: string[] = [];
  const program = new Command('auditlog')
    .description('Archive old PostgreSQL audit rows to S3-compatible storage: verify before delete, restore exactly.')
    .version(readToolVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('archive')
    .description('Move rows older than each table\'s retention to the archive, verify them, then delete them.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--dry-run', 'connect, count and report what would be archived; write and delete nothing')
    .option('--database <name>', 'only this database (its name in the config)')
    .option('--table <name>', 'only this table (name or schema.name)')
    .addOption(new Option('-v, --verbose', 'debug logging').conflicts('quiet'))
    .option('-q, --quiet', 'no progress; only warnings and errors, and the summary (as monitoring.quiet_mode)')
    .option('--json', 'JSON log lines, and the summary as JSON on stdout')
    .option(
      '--force-unlock',
      'first remove the lock file of each selected table (local mode), printing who held it; for an advisory lock held by another session, print that session and the SQL that ends it (never run automatically). Not with --dry-run',
    )
    .action(async (opts: { config: string; dryRun?: boolean; database?: string; table?: string; verbose?: boolean; quiet?: boolean; json?: boolean; forceUnlock?: boolean }) => {
      // A dry run writes nothing; removing another run's lock file is a write (found in review).
      if (opts.forceUnlock === true && opts.dryRun === true) {
        throw new AuditlogError('USAGE', '--force-unlock cannot be combined with --dry-run (a dry run changes nothing, and removing a lock file is a change): run the dry run without --force-unlock, or --force-unlock without --dry-run');
      }
      const [{ runArchive, selectTargets }, { createLogger }, { storageLogHooks }, { createObjectStore }, { readHoldSources, openRunAuditTrail, withRunError }, { attachMonitoring }, { attachNotifications }, { formatRunSummary }] =
        await Promise.all([
          import('../archive/run-archive.js'),
          import('./create-logger.js'),
          import('./storage-log-hooks.js'),
          import('../storage/create-object-store.js'),
          import('./compliance-setup.js'),
          import('./monitoring-setup.js'),
          import('./notifications-setup.js'),
          import('./format-summary.js'),
        ]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      if (opts.forceUnlock) {
        const { forceUnlock } = await import('../archive/force-unlock.js');
        const databases = selectTargets({ config, ...(opts.database === undefined ? {} : { database: opts.database }), ...(opts.table === undefined ? {} : { table: opts.table }) });
        await forceUnlock({ config, databases, secrets, print: (line) => io.stderr(`force-unlock: ${redactSecrets(line, secrets)}\n`) });
      }
      const runId = newRunId();
      const quiet = opts.quiet === true || config.monitoring.quiet_mode;
      const logger = createLogger({ runId, json: opts.json === true, level: opts.verbose ? 'debug' : quiet ? 'warn' : 'info' });
      const fault = parseFault(io.env.AUDITLOG_FAULT);
      // From here on a stop request is a clean stop (the summary, the audit record, the locks); before, nothing has started.
      const stop = watchStopSignals((name) => logger.warn({ signal: name }, 'stop requested: no new batch or table starts; the batches in flight finish or roll back (a second signal ends the process at once)'));
      try {
        // Subscribers (metrics, progress, notifications, audit trail) attach here; their failures are logged, never fatal.
        const events = new RunEvents((event, error) => logger.warn({ event, err: redactSecrets(describeError(error), secrets) }, 'a run event listener failed; the run goes on'));
        const store = await createObjectStore(config, {
          ...storageLogHooks(logger),
          onRetry: (notice) => events.emit('storage:retry', { errorClass: notice.classification.retryClass ?? 'other', attempt: notice.attempt }),
          ...(fault?.onPartUploaded === undefined ? {} : { onPartUploaded: fault.onPartUploaded }),
        });
        const holdSources = readHoldSources(config, io.env);
        if (holdSources.apiAuthValue !== undefined) secrets = [...secrets, holdSources.apiAuthValue];
        const monitoring = await attachMonitoring({ config, events, store, secrets, logger, quiet, json: opts.json === true, io, servesByDefault: false });
        const detachNotifications = attachNotifications({ config, events, metrics: monitoring.metrics, logger, secrets, digest: 'end-of-run' });
        let summary: RunSummary;
        let lostAuditRecords = 0;
        try {
          // The trail is opened before anything is read: a run that cannot leave its trace does not
          // archive (dry runs write nothing). The listeners above come first, so that a trail that
          // cannot be opened (storage down) is notified and counted as a run that could not start.
          const target = { ...(opts.database === undefined ? {} : { database: opts.database }), ...(opts.table === undefined ? {} : { table: opts.table }) };
          const closeTrail = opts.dryRun === true ? async () => 0 : await openRunAuditTrail(config, store, events, { runId, secrets, ...target }, stop.signal);
          summary = await withRunError(events, closeTrail, () =>
            runArchive({
              config,
              store,
              logger,
              runId,
              toolVersion: readToolVersion(),
              dryRun: opts.dryRun === true,
              ...target,
              secrets,
              ...(fault?.onPhase === undefined ? {} : { onPhase: fault.onPhase }),
              events,
              holdSources,
              signal: stop.signal,
              failOnStop: true,
              ...monitoring.runOptions,
            }),
          );
          await events.settle();
          lostAuditRecords = await closeTrail();
        } finally {
          await detachNotifications();
          await monitoring.close();
        }
        io.stdout(opts.json ? JSON.stringify(summary) + '\n' : formatRunSummary(summary));
        exitCode = summary.failed > 0 ? 1 : 0;
        if (lostAuditRecords > 0) {
          // The work is done, but its trace is not: the run must not look clean (issue #6).
          io.stderr(`${lostAuditRecords} audit record(s) could not be written (see the warnings above); the audit trail misses part of this run — check the audit backend, then run \`auditlog audit verify\`\n`);
          exitCode = 1;
        }
      } finally {
        stop.dispose();
      }
    });

  program
    .command('cleanup')
    .description('Abort incomplete multipart uploads that interrupted runs left under the archive prefix (and their resume records), or remove temp files of interrupted writes in a local: directory. Exit 1 if a removal failed.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--older-than-hours <n>', `only leftovers started more than this many hours ago (default s3.multipart_orphan_age_hours, else 24; at least ${MIN_ORPHAN_AGE_HOURS})`, (v) => parseOrphanAge(v))
    .option('--dry-run', 'list what would be removed; remove nothing')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { config: string; olderThanHours?: number; dryRun?: boolean; json?: boolean }) => {
      const [{ runCleanupCommand }, { createObjectStore }, { requireLocalArchive }] = await Promise.all([import('./cleanup-command.js'), import('../storage/create-object-store.js'), import('./require-local-archive.js')]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      // A mistyped local.path listed as empty: "0 file(s) deleted", exit 0 (found by probing).
      await requireLocalArchive(config, 'nothing to clean up');
      exitCode = await runCleanupCommand({
        store: await createObjectStore(config),
        olderThanHours: opts.olderThanHours ?? config.s3?.multipart_orphan_age_hours ?? 24,
        dryRun: opts.dryRun === true,
        json: opts.json === true,
        stdout: io.stdout,
        stderr: (text) => io.stderr(redactSecrets(text, secrets)),
      });
    });

  program
    .command('restore')
    .description('Load archived rows back into their table or a new one: every object is checked (SHA-256, record count, manifest) before a row of it is loaded.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--database <name>', 'database of the table (its name in the config)')
    .requiredOption('--table <name>', 'the archived table (name or schema.name, as configured)')
    .option('--from <day>', 'first UTC day to restore (YYYY-MM-DD, inclusive)')
    .option('--to <day>', 'last UTC day to restore (YYYY-MM-DD, inclusive)')
    .option('--target-table <schema.name>', 'restore into this table instead (created with the archived columns if missing)')
    .option('--conflict <strategy>', 'when a row\'s key exists: skip, overwrite, fail or upsert (overwrite and upsert are refused into a table under legal hold)', 'fail')
    .option('--on-corrupt <action>', 'a corrupt or incomplete object: skip it or fail the run', 'fail')
    .option('--strict-schema', 'fail when an archived column has no place in the target')
    .option('--ignore-watermark', 'restore objects again even if already restored into this target')
    .option('--drop-indexes', 'drop secondary indexes of the target for the load and recreate them after (always)')
    .option('--batch-size <n>', 'rows per transaction: small objects are grouped, larger ones split (default 20000)')
    .option('--jobs <n>', 'batches loaded at once, each on its own connection (default 2)')
    .option('--dry-run', 'report objects, rows, conflicts and schema drift; write nothing')
    .addOption(new Option('-v, --verbose', 'debug logging').conflicts('quiet'))
    .option('-q, --quiet', 'only warnings and errors, and the summary')
    .option('--json', 'JSON log lines, and the summary as JSON on stdout')
    .action(async (opts: RestoreCliOptions & { verbose?: boolean; quiet?: boolean }) => {
      const [{ formatRestoreSummary, parseRestoreFlags }, { runRestore }, { createLogger }, { storageLogHooks }, { createObjectStore }, { openAuditTrail, readHoldSources, withRunError }, { requireLocalArchive }, { selectTargets }, { changesExistingRows }] = await Promise.all([
        import('./restore-command.js'),
        import('../restore/restore-table.js'),
        import('./create-logger.js'),
        import('./storage-log-hooks.js'),
        import('../storage/create-object-store.js'),
        import('./compliance-setup.js'),
        import('./require-local-archive.js'),
        import('../archive/run-archive.js'),
        import('../restore/restore-holds.js'),
      ]);
      const flags = parseRestoreFlags(opts);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      // A trail in storage is refused here, before it is opened: its storage check would create
      // the directory (and the trail could not be written). An unknown --table is still named
      // first, as validate does. Any other trail records the refusal: runRestore checks it.
      const requireArchive = (): Promise<void> => requireLocalArchive(config, 'nothing to restore');
      const trailInStorage = flags.dryRun !== true && ['storage', 'both'].includes(config.compliance.audit.backend);
      if (trailInStorage) {
        await requireArchive().catch((error: unknown) => {
          selectTargets({ config, table: flags.table, ...(flags.database === undefined ? {} : { database: flags.database }) });
          throw error;
        });
      }
      // Only a strategy that changes rows already in the target reads the legal holds (restore-holds.ts).
      const holdSources = changesExistingRows(flags.conflict) ? readHoldSources(config, io.env) : {};
      if (holdSources.apiAuthValue !== undefined) secrets = [...secrets, holdSources.apiAuthValue];
      const runId = newRunId();
      const logger = createLogger({ runId, json: opts.json === true, level: opts.verbose ? 'debug' : opts.quiet ? 'warn' : 'info' });
      const store = await createObjectStore(config, storageLogHooks(logger));
      const events = new RunEvents((event, error) => logger.warn({ event, err: redactSecrets(describeError(error), secrets) }, 'a run event listener failed; the run goes on'));
      const closeTrail = flags.dryRun === true ? async () => 0 : await openAuditTrail(config, store, events);
      const stop = watchStopSignals((name) => logger.warn({ signal: name }, 'stop requested: no new batch starts; the batches in flight commit or roll back (a second signal ends the process at once)'));
      let summary: RestoreSummary;
      try {
        summary = await withRunError(events, closeTrail, () => runRestore({ ...flags, config, store, logger, runId, secrets, events, holdSources, requireArchive, signal: stop.signal }));
      } finally {
        stop.dispose();
      }
      await events.settle();
      const lostAuditRecords = await closeTrail();
      io.stdout(opts.json ? JSON.stringify(summary) + '\n' : redactSecrets(formatRestoreSummary(summary), secrets));
      exitCode = summary.status === 'ok' ? 0 : 1;
      if (lostAuditRecords > 0) {
        io.stderr(`${lostAuditRecords} audit record(s) could not be written (see the warnings above); the audit trail misses part of this restore — check the audit backend, then run \`auditlog audit verify\`\n`);
        exitCode = 1;
      }
    });

  program
    .command('daemon')
    .description('Run archival on a cron schedule (UTC), never overlapping, serving /metrics and /health between runs. SIGTERM: no new batch starts, the one in flight finishes or rolls back, exit 0. SIGHUP: logged only (the config is re-read before every run).')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--schedule <cron>', 'cron expression, e.g. "0 2 * * *" (default daemon.schedule)')
    .addOption(new Option('-v, --verbose', 'debug logging').conflicts('quiet'))
    .option('-q, --quiet', 'no progress; only warnings and errors (as monitoring.quiet_mode)')
    .option('--json', 'JSON log lines')
    .action(async (opts: { config: string; schedule?: string; verbose?: boolean; quiet?: boolean; json?: boolean }) => {
      const [{ runDaemonCommand }, { readHoldSources }] = await Promise.all([import('./daemon-command.js'), import('./compliance-setup.js')]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const quiet = opts.quiet === true || config.monitoring.quiet_mode;
      const holdSources = readHoldSources(config, io.env);
      if (holdSources.apiAuthValue !== undefined) secrets = [...secrets, holdSources.apiAuthValue];
      // The daemon's logger exists only inside the command: it subscribes to the SIGHUPs here.
      const hangupListeners = new Set<() => void>();
      const stop = watchStopSignals(() => undefined, { onHangup: () => hangupListeners.forEach((listener) => listener()) });
      try {
        exitCode = await runDaemonCommand({
          onHangup: (listener) => {
            hangupListeners.add(listener);
            return () => void hangupListeners.delete(listener);
          },
          config,
          ...(opts.schedule === undefined ? {} : { schedule: opts.schedule }),
          secrets,
          signal: stop.signal,
          newRunId: () => newRunId(),
          toolVersion: readToolVersion(),
          level: opts.verbose ? 'debug' : quiet ? 'warn' : 'info',
          quiet,
          quietFlag: opts.quiet === true,
          json: opts.json === true,
          io,
          holdSources,
          reloadConfig: async () => {
            // Not halfway through someone's write of it (read-settled-file.ts).
            const { readSettledFile } = await import('../config/read-settled-file.js');
            const now = await loadConfig(opts.config, io.env, (file) => readSettledFile(file, { settleMs: 1_000, maxWaitMs: 10_000 }));
            const sources = readHoldSources(now, io.env);
            return { config: now, secrets: [...collectSecrets(now), ...(sources.apiAuthValue === undefined ? [] : [sources.apiAuthValue])], holdSources: sources };
          },
        });
      } finally {
        stop.dispose();
      }
    });

  program
    .command('health')
    .description('Check every configured database and the bucket once (with timeouts): healthy, degraded or unhealthy. Exit 0 when healthy, 1 otherwise.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--json', 'print the report as JSON (the body of /health)')
    .action(async (opts: { config: string; json?: boolean }) => {
      const [{ runHealthChecks }, { formatHealthReport }, { createObjectStore }] = await Promise.all([
        import('./monitoring-setup.js'),
        import('../monitoring/health-check.js'),
        import('../storage/create-object-store.js'),
      ]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const report = await runHealthChecks(config, await createObjectStore(config), secrets);
      io.stdout(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatHealthReport(report));
      exitCode = report.status === 'healthy' ? 0 : 1;
    });

  const configCmd = program.command('config').description('Inspect and check configuration files.');
  configCmd
    .command('validate')
    .description('Check a configuration file without touching anything (and optionally connect to each database and the bucket).')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--check-connections', 'also connect to every database and to the storage')
    .option('--print', 'print the resolved configuration with secrets masked')
    .action(async (opts: { config: string; checkConnections?: boolean; print?: boolean }) => {
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const tables = config.databases.reduce((n, d) => n + d.tables.length, 0);
      if (opts.print) io.stdout(JSON.stringify(maskConfig(config), null, 2) + '\n');
      if (opts.checkConnections) {
        const [{ createObjectStore }, { buildSessionSettings, checkConnection, createPool }] = await Promise.all([import('../storage/create-object-store.js'), import('../db/connect.js')]);
        const store = await createObjectStore(config);
        const problems: string[] = [];
        // Bounded as `auditlog health` is: a server that accepts connections and never answers
        // otherwise held the command for max_attempts × request_timeout_ms (found by probing: 304 s).
        const timeoutMs = config.monitoring.health_check_timeout_ms;
        const giveUp = new AbortController();
        const timer = setTimeout(() => giveUp.abort(new Error(`no answer within ${timeoutMs} ms (monitoring.health_check_timeout_ms)`)), timeoutMs);
        try {
          // Checked as a dry run checks it: `config validate` touches nothing (a missing local.path is not created).
          await store.check({ signal: giveUp.signal, writeNothing: true });
          io.stdout(`ok: storage ${store.description}\n`);
        } catch (error) {
          problems.push(describeError(error));
        } finally {
          clearTimeout(timer);
        }
        for (const db of config.databases) {
          const pool = createPool({ database: db, applicationName: config.application_name, settings: buildSessionSettings(config.defaults) });
          try {
            await checkConnection(pool, db, secrets);
            io.stdout(`ok: database ${db.name}\n`);
          } catch (error) {
            problems.push(describeError(error));
          } finally {
            await pool.end().catch(() => undefined);
          }
        }
        for (const p of problems) io.stderr(`error: ${p}\n`);
        if (problems.length > 0) {
          exitCode = 1;
          return;
        }
      }
      io.stdout(`config ok: ${opts.config} (${config.databases.length} database(s), ${tables} table(s), storage ${config.s3 ? `s3://${config.s3.bucket}/${config.s3.prefix}` : config.local!.path})\n`);
    });

  const stateInput = async (opts: { config: string; database?: string; table?: string; json?: boolean }) => {
    const { createObjectStore } = await import('../storage/create-object-store.js');
    const config = await loadConfig(opts.config, io.env);
    secrets = collectSecrets(config);
    return {
      config,
      store: await createObjectStore(config),
      ...(opts.database === undefined ? {} : { database: opts.database }),
      ...(opts.table === undefined ? {} : { table: opts.table }),
      json: opts.json === true,
      secrets,
      stdout: io.stdout,
    };
  };
  program
    .command('status')
    .description('Show per table: lock holder, watermark, last run, an interrupted run\'s checkpoint, batches left in flight. Exit 1 if any needs attention.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--database <name>', 'only this database (its name in the config)')
    .option('--table <name>', 'only this table (name or schema.name)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { config: string; database?: string; table?: string; json?: boolean }) => {
      const { runStatusCommand } = await import('./state-commands.js');
      exitCode = await runStatusCommand(await stateInput(opts));
    });
  const watermarksCmd = program.command('watermarks').description('Inspect or reset where each table\'s next run starts reading.');
  watermarksCmd
    .command('list')
    .description('Show the watermark of each configured table: the last (timestamp, key) up to which every batch committed.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--database <name>', 'only this database (its name in the config)')
    .option('--table <name>', 'only this table (name or schema.name)')
    .option('--all', 'every configured table (of --database, if given): the same as no --table')
    .option('--json', 'print the watermarks as JSON')
    .action(async (opts: { config: string; database?: string; table?: string; all?: boolean; json?: boolean }) => {
      const { runWatermarksListCommand } = await import('./state-commands.js');
      exitCode = await runWatermarksListCommand({ ...(await stateInput(opts)), all: opts.all === true });
    });
  watermarksCmd
    .command('reset')
    .description('Forget the watermark of a table (or --all): its next run reads from the first row. Safe at any time. Also discards a table state or checkpoint that is not valid (STATE_INVALID).')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--database <name>', 'only this database (its name in the config)')
    .option('--table <name>', 'the table (name or schema.name)')
    .option('--all', 'every configured table (of --database, if given)')
    .option('--json', 'print the result per table as JSON')
    .action(async (opts: { config: string; database?: string; table?: string; all?: boolean; json?: boolean }) => {
      const { runWatermarksResetCommand } = await import('./state-commands.js');
      exitCode = await runWatermarksResetCommand({ ...(await stateInput(opts)), all: opts.all === true });
    });

  program
    .command('validate')
    .description('Check the archive\'s integrity: sidecars, sizes, checksums, manifests, duplicates, uncommitted objects. Exit 1 if any problem is found.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--database <name>', 'only this database (its name in the config)')
    .option('--table <name>', 'only this table (name or schema.name)')
    .option('--from <day>', 'first UTC day to check, YYYY-MM-DD')
    .option('--to <day>', 'last UTC day to check, YYYY-MM-DD')
    .option('--deep', 'read every object: checksums, line count, every line, keys against the manifest, timestamps')
    .option('--deep-threshold <n>', 'check contents without --deep when at most this many objects are selected', (v) => parseNonNegativeInt(v, '--deep-threshold'), 100)
    .option('--concurrency <n>', 'objects checked at once', (v) => parsePositiveInt(v, '--concurrency'), 4)
    .option('--check-database', 'also check that no archived row is still in its table (read-only)')
    .option('--check-audit', 'also check that every object the audit trail records as committed (in the selected tables and days) is still in the store: finds batches removed whole (MISSING_OBJECT); reads the whole trail')
    // No default here, as for cost: --format text given with --json must be told apart from no --format.
    .addOption(new Option('--format <format>', 'report format (default text)').choices(['text', 'json']))
    .option('--json', 'the same as --format json')
    .option('--output <file>', 'write the report to this file instead of stdout')
    .option('--progress-interval <seconds>', 'seconds between progress lines on stderr (0: none)', (v) => parseNonNegativeNumber(v, '--progress-interval'), 5)
    .action(async (opts: Omit<ValidateCommandOptions, 'format'> & { config: string; format?: 'text' | 'json'; json?: boolean }) => {
      if (opts.json === true && opts.format === 'text') throw new AuditlogError('USAGE', '--json and --format text contradict each other: pass one of them (--json is the same as --format json)');
      const [{ runValidateCommand }, { auditSources }, { createObjectStore }] = await Promise.all([import('./validate-command.js'), import('./compliance-setup.js'), import('../storage/create-object-store.js')]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const store = await createObjectStore(config);
      // The audit table's pool, when --check-audit reads it; closed once the report is out.
      const pools: pg.Pool[] = [];
      try {
        exitCode = await runValidateCommand({
          config,
          store,
          options: { ...opts, format: opts.json === true ? 'json' : (opts.format ?? 'text') },
          secrets,
          auditSources: () => auditSources(config, store, pools),
          stdout: io.stdout,
          stderr: io.stderr,
        });
      } finally {
        for (const p of pools) await p.end().catch(() => undefined);
      }
    });

  const audit = program.command('audit').description('Show and check the append-only audit trail (_auditlog/audit/ in the archive storage).');
  audit
    .command('list')
    .description('Print audit records, oldest first. Exit 1 if a record cannot be read.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--since <when>', 'only records at or after this day (YYYY-MM-DD, UTC) or ISO 8601 instant with Z or an offset')
    .option('--table <name>', 'only records of this table (name or schema.name)')
    .option('--json', 'print the records as JSON')
    .action(async (opts: { config: string; since?: string; table?: string; json?: boolean }) => {
      const [{ runAuditListCommand }, { auditSources }, { createObjectStore }] = await Promise.all([import('./audit-commands.js'), import('./compliance-setup.js'), import('../storage/create-object-store.js')]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const pools: pg.Pool[] = [];
      try {
        exitCode = await runAuditListCommand({
          sources: auditSources(config, await createObjectStore(config), pools),
          ...(opts.since === undefined ? {} : { since: opts.since }),
          ...(opts.table === undefined ? {} : { table: opts.table }),
          json: opts.json === true,
          stdout: io.stdout,
        });
      } finally {
        for (const p of pools) await p.end().catch(() => undefined);
      }
    });
  audit
    .command('verify')
    .description('Recompute the hash chain of every audit record. Exit 1 naming the record after an edited or removed one.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--since <when>', 'report only problems at records from this day (YYYY-MM-DD) or instant on; the chain is still checked from the first record')
    .option('--table <name>', 'report only problems at records of this table (name or schema.name)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { config: string; json?: boolean; since?: string; table?: string }) => {
      const [{ runAuditVerifyCommand }, { auditSources }, { createObjectStore }] = await Promise.all([import('./audit-commands.js'), import('./compliance-setup.js'), import('../storage/create-object-store.js')]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const pools: pg.Pool[] = [];
      try {
        exitCode = await runAuditVerifyCommand({
          sources: auditSources(config, await createObjectStore(config), pools),
          json: opts.json === true,
          stdout: io.stdout,
          ...(opts.since === undefined ? {} : { since: opts.since }),
          ...(opts.table === undefined ? {} : { table: opts.table }),
        });
      } finally {
        for (const p of pools) await p.end().catch(() => undefined);
      }
    });

  const holds = program.command('holds').description('Inspect legal holds.');
  holds
    .command('list')
    .description('Show every legal hold (config, holds table, API): active or expired, and the tables and rows it keeps. Exit 1 if a source or filter fails.')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .option('--database <name>', 'only this database (its name in the config)')
    .option('--table <name>', 'only this table (name or schema.name)')
    .option('--json', 'print the holds as JSON')
    .action(async (opts: { config: string; database?: string; table?: string; json?: boolean }) => {
      const [{ runHoldsListCommand }, { readHoldSources }] = await Promise.all([import('./holds-command.js'), import('./compliance-setup.js')]);
      const config = await loadConfig(opts.config, io.env);
      secrets = collectSecrets(config);
      const sources = readHoldSources(config, io.env);
      if (sources.apiAuthValue !== undefined) secrets = [...secrets, sources.apiAuthValue];
      const out = await runHoldsListCommand({
        config,
        ...(opts.database === undefined ? {} : { database: opts.database }),
        ...(opts.table === undefined ? {} : { table: opts.table }),
        json: opts.json === true,
        secrets,
        sources,
        stdout: (text) => io.stdout(redactSecrets(text, secrets)),
      });
      exitCode = out;
    });

  program
    .command('wizard')
    .description('Write a configuration: connect, list tables, detect keys, timestamp columns, indexes and the age of the rows, suggest a retention, ask for the storage, validate. Interactive in a terminal; with --yes every answer comes from flags or the suggestions.')
    .option('--output <file>', 'write the configuration here (mode 0600) instead of printing it on stdout')
    .option('--database-url <url>', 'PostgreSQL URL (written as ${VAR} when it is the value of an environment variable)')
    .option('--database-url-env <name>', 'environment variable holding the URL; the file gets ${NAME} (default: DATABASE_URL when set)')
    .option('--database-name <name>', 'name of the database in the archive layout (default: from the URL)')
    .option('--tables <names>', 'tables to archive, comma-separated (name or schema.name)')
    .option('--timestamp-column <name>', 'timestamp column for every table, or table=column pairs, comma-separated (default: detected)')
    .option('--retention-days <n>', 'retention for every table (default: suggested from the age of the rows)')
    .option('--min-retention-days <n>', 'compliance bound: no table keeps rows a shorter time; the suggestion stays inside it (written to compliance:)')
    .option('--max-retention-days <n>', 'compliance bound: no table keeps rows longer; the suggestion stays inside it (written to compliance:)')
    .option('--local-path <dir>', 'archive to this directory instead of S3')
    .option('--bucket <name>', 'S3 bucket')
    .option('--prefix <prefix>', 'key prefix, ending in "/" (default archives/)')
    .option('--region <region>', 'bucket region (default AWS_REGION, else us-east-1)')
    .option('--endpoint <url>', 'S3-compatible endpoint (MinIO, R2, Ceph...); credentials then come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as ${VAR}')
    .option('--force-path-style', 'path-style URLs (default: on with --endpoint)')
    .addOption(new Option('--sse <mode>', 'server-side encryption (default AES256)').choices(['none', 'AES256', 'aws:kms']))
    .option('--sse-kms-key-id <id>', 'KMS key id or ARN; only with --sse aws:kms (refused otherwise)')
    .addOption(new Option('--storage-class <class>', 'storage class of data objects (see auditlog cost)').choices(['STANDARD', 'INTELLIGENT_TIERING', 'STANDARD_IA', 'ONEZONE_IA', 'GLACIER_IR']))
    .option('--check-connections', 'also check the storage before writing')
    .option('-y, --yes', 'ask nothing: take every answer from the flags or the suggestions (for automation)')
    .option('--force', 'overwrite --output if it exists')
    .action(async (opts: WizardCliOptions) => {
      // The prompter module imports @inquirer/prompts itself, and only when it is asked for a prompter.
      const [{ runWizardCommand }, { createInquirerPrompter }] = await Promise.all([import('./wizard-command.js'), import('./wizard-prompter.js')]);
      exitCode = await runWizardCommand(opts, {
        env: io.env,
        stdout: io.stdout,
        stderr: (text) => io.stderr(redactSecrets(text, secrets)),
        createPrompter: process.stdin.isTTY ? () => createInquirerPrompter({ input: process.stdin, output: process.stderr }) : null,
        onSecrets: (found) => (secrets = found),
      });
    });

  program
    .command('cost')
    .description('Estimate what the archive costs in each S3 storage class: storage per month and over time, requests, minimum duration and size penalties, one full restore.')
    .option('-c, --config <file>', 'measure the configured tables: rows past retention, row size, and the compression of a sample of real rows')
    .option('--size <size>', 'uncompressed size of the data to archive, e.g. 500GB (units B, KB, MB, GB, TB, PB; binary, as AWS bills)')
    .option('--records <n>', 'number of rows to archive')
    .option('--avg-row-bytes <bytes>', 'average row size as JSON, with --size or --records (default 500)')
    .option('--batch-size <n>', 'rows per archive object, with --size or --records (default 10000)')
    .option('--region <region>', 'AWS region of the price table (default the config\'s s3.region, else us-east-1)')
    .option('--compression-ratio <x>', 'uncompressed ÷ compressed size (default 8, or measured with --config)')
    .option('--months <m>', 'how long the archive is kept, for cumulative figures (1 to 1200)', '12')
    .option('--class <classes>', 'only these storage classes, comma-separated')
    // No default here: --format text given with --json must be told apart from no --format at all.
    .addOption(new Option('--format <format>', 'output format (default text)').choices(['text', 'json']))
    .option('--json', 'the same as --format json')
    .action(async (opts: CostCliOptions) => {
      const { runCostCommand } = await import('./cost-command.js');
      exitCode = await runCostCommand(opts, { env: io.env, stdout: io.stdout, onSecrets: (found) => (secrets = found) });
    });

  program
    .command('demo')
    .description('Start an embedded PostgreSQL, fill an audit table with two years of rows, and archive the old half to a local directory.')
    .option('--dir <dir>', 'working directory for the embedded database and the archive', '.auditlog/demo')
    .option('--rows <n>', 'rows to generate', (v) => parsePositiveInt(v, '--rows'), 20_000)
    .option('--json', 'JSON log lines, and the summary as JSON on stdout')
    .action(async (opts: { dir: string; rows: number; json?: boolean }) => {
      const [{ runDemoCommand }, { createLogger }] = await Promise.all([import('./demo-command.js'), import('./create-logger.js')]);
      const runId = newRunId();
      const logger = createLogger({ runId, json: opts.json === true, level: 'info' });
      exitCode = await runDemoCommand({ dir: opts.dir, rows: opts.rows, runId, logger, toolVersion: readToolVersion(), stdout: io.stdout, json: opts.json === true });
    });

  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 2;
    }
    // Commander prints the top-level help and exits 0 for `auditlog nosuch --help`: a typo in a
    // script's command line then passed as success (found by probing).
    const unknown = unknownCommand(program, argv);
    if (unknown !== undefined) {
      io.stderr(`error: unknown command '${unknown.word}'\n(run \`${['auditlog', ...unknown.under].join(' ')} --help\` for the commands)\n`);
      return 2;
    }
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // 'commander.help' with a non-zero exit code is the help a command group prints when no
      // subcommand was given (`auditlog holds`): a usage error, like an unknown command.
      if (error.code === 'commander.help') return error.exitCode === 0 ? 0 : 2;
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2;
    }
    const e = isAuditlogError(error) ? error : new AuditlogError('INTERNAL', describeError(error), { cause: error });
    io.stderr(`auditlog: ${redactSecrets(e.message, secrets)} [${e.code}]\n`);
    if (e.code === 'INTERNAL' && error instanceof Error && error.stack) io.stderr(redactSecrets(error.stack, secrets) + '\n');
    return e.exitCode;
  }
}

const HELP_FLAGS: ReadonlySet<string> = new Set(['-h', '--help']);

/**
 * With a help flag in `argv`: the first word that names no command where one is expected (as
 * typed), if any. Only then: without one, commander's own error for an unknown command is kept,
 * with its "(Did you mean …?)" (found in review). Help flags are stepped over while a command group
 * is being read, so `auditlog --help nosuch` and `holds -h lst` are caught too.
 */
function unknownCommand(program: Command, argv: readonly string[]): { word: string; under: string[] } | undefined {
  const end = argv.indexOf('--');
  if (!(end === -1 ? argv : argv.slice(0, end)).some((word) => HELP_FLAGS.has(word))) return undefined;
  let command = program;
  const under: string[] = [];
  for (const word of argv) {
    if (HELP_FLAGS.has(word) && command.commands.length > 0) continue;
    if (word.startsWith('-') || command.commands.length === 0 || word === 'help') return undefined;
    const next = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (next === undefined) return { word, under };
    under.push(next.name());
    command = next;
  }
  return undefined;
}

function parseNonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new AuditlogError('USAGE', `${flag} expects a whole number (0 or more), got "${value}"`);
  return n;
}

function parseNonNegativeNumber(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new AuditlogError('USAGE', `${flag} expects a number of seconds (0 or more), got "${value}"`);
  return n;
}

function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new AuditlogError('USAGE', `${flag} expects a positive integer, got "${value}"`);
  return n;
}

function parseOrphanAge(value: string): number {
  // Decimal only: Number() also reads "0x10" as 16 (found by probing).
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < MIN_ORPHAN_AGE_HOURS) {
    throw new AuditlogError('USAGE', `--older-than-hours expects a number of hours of at least ${MIN_ORPHAN_AGE_HOURS} (younger uploads may still be in progress), got "${value}"`);
  }
  return n;
}

const PHASES: ReadonlySet<string> = new Set(['after-read', 'after-marker', 'after-upload', 'after-metadata', 'after-delete', 'before-commit', 'after-commit', 'after-batch', 'before-marker-flush', 'mid-multipart']);

interface FaultHooks {
  onPhase?: (phase: BatchPhase) => void;
  /** `mid-multipart`: counts multipart parts the server accepted, across the process. */
  onPartUploaded?: () => void;
}

/**
 * AUDITLOG_FAULT=<phase>[:<n>] kills the process with SIGKILL the n-th time (default 1st) a batch
 * reaches <phase> — or, for `mid-multipart`, once the n-th multipart part has been uploaded; for
 * `before-marker-flush`, right before the n-th bulk removal of committed batches' pending markers:
 * the crash tests' way to stop at an exact point. Inert unless set.
 */
function parseFault(value: string | undefined): FaultHooks | undefined {
  if (value === undefined || value === '') return undefined;
  const [phase, count] = value.split(':');
  if (phase === undefined || !PHASES.has(phase)) throw new AuditlogError('USAGE', `AUDITLOG_FAULT=${value}: unknown phase (one of ${[...PHASES].join(', ')})`);
  let remaining = count === undefined ? 1 : Number(count);
  const kill = (): void => {
    if (--remaining <= 0) process.kill(process.pid, 'SIGKILL');
  };
  if (phase === 'mid-multipart') return { onPartUploaded: kill };
  return {
    onPhase: (reached) => {
      if (reached === phase) kill();
    },
  };
}
