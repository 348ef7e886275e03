/**
 * Compliance before anything of a table is read (docs/compliance.md): retention inside the
 * policy bounds, encryption where the table requires it, then legal holds. Pure apart from
 * logging and emitting the run's events.
 */
import type { Logger } from 'pino';
import type { Config, TableConfig } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import type { RunEvents } from '../core/run-events.js';
import { holdLabel, holdsForTable, rowHoldLabel, type PartitionTree, type RowHold } from '../compliance/legal-hold.js';
import { findRetentionViolation, requiresEncryption } from '../compliance/retention-policy.js';
import type { HoldSnapshot } from '../compliance/run-holds.js';
import { emptyTableSummary, failedTableSummary, type TableSummary } from './table-summary.js';

export interface AdmitOptions {
  config: Config;
  runId: string;
  events?: RunEvents;
  now: () => Date;
}

export type Admission =
  | { summary: TableSummary }
  | { recordHolds: RowHold[]; requiredSse?: 'AES256' | 'aws:kms'; holdInfo?: NonNullable<TableSummary['holds']> };

/**
 * Compliance before anything of the table is read: retention inside the policy bounds (again,
 * after config load), encryption where the table requires it, then legal holds. A refusal is a
 * failed table; an active table-level hold is a held one. Holds are placed through the table's
 * partition tree when one was read (a hold on its parent holds it; one on a partition holds that
 * partition's rows).
 */
export function admitTable(options: AdmitOptions, database: string, table: TableConfig, holds: HoldSnapshot, logger: Logger, tree?: PartitionTree): Admission {
  const ref = { runId: options.runId, database, schema: table.schema, table: table.name };
  const label = `${database}/${table.schema}.${table.name}`;
  const refuse = (error: AuditlogError): Admission => {
    logger.error({ table: `${table.schema}.${table.name}`, code: error.code, err: error.message }, 'table refused by the compliance policy');
    options.events?.emit('policy:violation', { ...ref, code: error.code, message: error.message });
    return { summary: failedTableSummary(database, table.schema, table.name, error) };
  };
  const violation = findRetentionViolation(options.config, table);
  if (violation !== undefined) {
    return refuse(new AuditlogError('POLICY_VIOLATION', violation.message(label), { details: { table: label, retention_days: violation.retentionDays, bound: violation.bound ?? null } }));
  }
  let requiredSse: 'AES256' | 'aws:kms' | undefined;
  if (requiresEncryption(options.config, table)) {
    const s3 = options.config.s3;
    if (s3 === undefined) {
      return refuse(new AuditlogError('ENCRYPTION_REQUIRED', `table ${label} requires encryption at rest (critical or its classification), which local: storage cannot provide: archive it to s3: with sse AES256 or aws:kms`, { details: { table: label } }));
    }
    if (s3.sse === 'none') {
      return refuse(new AuditlogError('ENCRYPTION_REQUIRED', `table ${label} requires encryption at rest (critical or its classification) but s3.sse is none: set s3.sse to AES256 or aws:kms`, { details: { table: label } }));
    }
    requiredSse = s3.sse;
  }
  if (!holds.enabled) return { recordHolds: [], ...(requiredSse === undefined ? {} : { requiredSse }) };
  if (holds.unavailable !== undefined) return { summary: failedTableSummary(database, table.schema, table.name, holds.unavailable) };
  const found = holdsForTable(holds.holds, { database, schema: table.schema, table: table.name }, options.now(), tree);
  for (const hold of found.expired) logger.warn({ table: `${table.schema}.${table.name}`, hold: holdLabel(hold), expired_at: hold.expiresAt }, 'expired legal hold ignored');
  const holdInfo = { tableLevel: found.tableLevel.map((h) => holdLabel(h)), recordLevel: found.rowLevel.map(rowHoldLabel), expired: found.expired.map((h) => holdLabel(h)) };
  const any = found.tableLevel.length + found.rowLevel.length + found.expired.length > 0;
  if (found.tableLevel.length > 0) {
    logger.warn({ table: `${table.schema}.${table.name}`, holds: holdInfo.tableLevel }, 'table under legal hold: not archived');
    options.events?.emit('table:held', {
      ...ref,
      holds: found.tableLevel.map((h) => ({ source: h.source, reason: h.reason, ...(h.setBy === undefined ? {} : { setBy: h.setBy }), ...(h.expiresAt === undefined ? {} : { expiresAt: h.expiresAt }) })),
    });
    return { summary: { ...emptyTableSummary(database, table.schema, table.name, 'held'), holds: holdInfo } };
  }
  return { recordHolds: found.rowLevel, ...(requiredSse === undefined ? {} : { requiredSse }), ...(any ? { holdInfo } : {}) };
}

