/**
 * The CLI's wiring of compliance: the holds API credential from the environment, the audit
 * trail(s) opened before a run and subscribed to its events, and the trails `audit list|verify`
 * read. Only the CLI reads the environment and the OS user.
 */
import { userInfo } from 'node:os';
import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import type { RunEvents } from '../core/run-events.js';
import { buildSessionSettings, createPool } from '../db/connect.js';
import type { ObjectStore } from '../storage/object-store.js';
import { checkStorageUnlessStopped } from '../storage/check-unless-stopped.js';
import { AUDIT_PREFIX } from '../compliance/audit-record.js';
import { subscribeAuditTrail } from '../compliance/audit-subscriber.js';
import { streamAuditRecords, StorageAuditTrail, type AuditTrail } from '../compliance/audit-trail.js';
import { DatabaseAuditTrail, FanOutAuditTrail, streamDatabaseAuditRecords } from '../compliance/database-audit-trail.js';
import type { HoldSourceOptions } from '../compliance/run-holds.js';
import type { StoredAuditRecord } from '../compliance/verify-audit-chain.js';
import type { AuditSource } from './audit-commands.js';
import { reportRunNotStarted, type RunReportOptions } from '../archive/run-archive.js';
import { requireLocalArchive } from './require-local-archive.js';

/** legal_holds.api.auth_env names an environment variable; only the CLI reads the environment. */
export function readHoldSources(config: Config, env: NodeJS.ProcessEnv): HoldSourceOptions {
  const name = config.legal_holds.api?.auth_env;
  if (name === undefined) return {};
  const value = env[name];
  if (value === undefined || value === '') {
    throw new AuditlogError('CONFIG_ENV_MISSING', `legal_holds.api.auth_env names ${name}, which is not set: export it (the holds API credential) or remove auth_env`);
  }
  return { apiAuthValue: value };
}

/** Operator of audit records: compliance.operator, else the OS user (a container may have none). */
function resolveOperator(config: Config): string {
  if (config.compliance.operator !== undefined) return config.compliance.operator;
  try {
    return userInfo().username;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}

/**
 * The configured audit trail(s), opened before any work: a run that cannot leave its trace does
 * not start. Returns what to close once the run's events have settled; closing tells how many
 * records could not be written (the CLI then fails the run: its trace is incomplete).
 */
export async function openAuditTrail(config: Config, store: ObjectStore, events: RunEvents, signal?: AbortSignal): Promise<() => Promise<number>> {
  const audit = config.compliance.audit;
  if (audit.backend === 'none') return async () => 0;
  const operator = resolveOperator(config);
  const trails: AuditTrail[] = [];
  let pool: pg.Pool | undefined;
  if (audit.backend === 'storage' || audit.backend === 'both') {
    // check() first: unreachable storage fails with the same error as a run without a trail.
    await checkStorageUnlessStopped(store, signal, 'the run had not started: nothing was read or archived');
    trails.push(new StorageAuditTrail(store, operator));
  }
  if (audit.backend === 'database' || audit.backend === 'both') {
    pool = openAuditPool(config);
    trails.push(new DatabaseAuditTrail(pool, audit.schema, audit.table, operator));
  }
  const trail = trails.length === 1 ? trails[0]! : new FanOutAuditTrail(trails);
  try {
    await trail.open();
  } catch (error) {
    await pool?.end().catch(() => undefined);
    throw error;
  }
  let lost = 0;
  const counting: AuditTrail = {
    description: trail.description,
    open: () => trail.open(),
    flush: () => trail.flush(),
    append: (entry) =>
      trail.append(entry).catch((error: unknown) => {
        lost++;
        throw error;
      }),
  };
  subscribeAuditTrail(events, counting);
  return async () => {
    await trail.flush().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    return lost;
  };
}

/**
 * {@link openAuditTrail} for an archive run whose listeners (notifications, metrics) are attached:
 * a trail that cannot be opened (storage or audit database down) is a run that cannot start, and
 * is reported as one — run:started, run:failed — before its error is thrown. Nothing is archived
 * without the trail, so the run goes no further.
 */
export async function openRunAuditTrail(config: Config, store: ObjectStore, events: RunEvents, run: Omit<RunReportOptions, 'config' | 'events'>, signal?: AbortSignal): Promise<() => Promise<number>> {
  try {
    return await openAuditTrail(config, store, events, signal);
  } catch (error) {
    reportRunNotStarted({ ...run, config, events }, error);
    await events.settle();
    throw error;
  }
}

function openAuditPool(config: Config): pg.Pool {
  const name = config.compliance.audit.database;
  const db = config.databases.find((d) => name === undefined || d.name === name)!;
  return createPool({ database: { ...db, connection_pool_size: 2 }, applicationName: config.application_name, settings: buildSessionSettings(config.defaults), onBackgroundError: () => undefined });
}

/** The trails `audit list|verify` read: the configured backend(s), or the one asked for. */
export function auditSources(config: Config, store: ObjectStore, pools: pg.Pool[]): AuditSource[] {
  const backend = config.compliance.audit.backend;
  const out: AuditSource[] = [];
  if (backend === 'storage' || backend === 'both' || backend === 'none') out.push({ name: `storage ${store.description}`, read: () => readStorageTrail(config, store) });
  if (backend === 'database' || backend === 'both') {
    const pool = openAuditPool(config);
    pools.push(pool);
    const { schema, table } = config.compliance.audit;
    out.push({ name: `table ${schema}.${table}`, read: () => streamDatabaseAuditRecords(pool, schema, table), linear: true });
  }
  return out;
}

/**
 * A trail in a local directory that does not exist is refused, not read as an empty, intact one.
 * Checked when it is read, so that a usage error (--since) is still named first.
 */
async function* readStorageTrail(config: Config, store: ObjectStore): AsyncIterable<StoredAuditRecord> {
  await requireLocalArchive(config, 'no audit trail to read');
  yield* streamAuditRecords(store, AUDIT_PREFIX);
}

/**
 * A run that stops as a whole reports it itself (run:failed, which the audit trail records as
 * ERROR); its event listeners must still finish and the trail close before the error reaches the user.
 */
export async function withRunError<T>(events: RunEvents, closeTrail: () => Promise<unknown>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    await events.settle();
    await closeTrail();
    throw error;
  }
}
