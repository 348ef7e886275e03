/** What every step of one table's archive run shares. */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { TablePlan } from '../core/table-plan.js';
import type { TableLock } from '../core/table-lock.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { MarkerOrigin } from './pending-marker.js';

/**
 * Points in a batch's life where a test may crash the process (the CLI wires AUDITLOG_FAULT to a
 * SIGKILL). Inert unless a hook is given.
 */
export type BatchPhase = 'after-read' | 'after-marker' | 'after-upload' | 'after-metadata' | 'before-commit' | 'after-commit' | 'after-batch';

export interface ArchiveContext {
  store: ObjectStore;
  pool: pg.Pool;
  plan: TablePlan;
  lock: TableLock;
  cutoff: string;
  /** The database the rows are read from, recorded in pending markers. */
  origin: MarkerOrigin;
  runId: string;
  prefix: string;
  toolVersion: string;
  sessionSettings: Record<string, string>;
  logger: Logger;
  onPhase?: (phase: BatchPhase) => void | Promise<void>;
  /** Server-side encryption every data object must report after upload, before its rows are deleted. */
  requiredSse?: 'AES256' | 'aws:kms';
}
