/** The inputs and the report of a restore (types only). */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { ConflictStrategy } from './restore-sql.js';
import type { DateRange } from './select-objects.js';
import type { RestoreTarget } from './restore-watermarks.js';
import type { RunEvents } from '../core/run-events.js';
import type { SidecarSummary } from './sidecar-summary.js';
import type { HoldSourceOptions } from '../compliance/run-holds.js';

export interface RestoreOptions {
  config: Config;
  store: ObjectStore;
  logger: Logger;
  runId: string;
  database?: string;
  table: string;
  range: DateRange;
  target?: RestoreTarget;
  conflict: ConflictStrategy;
  onCorrupt: 'skip' | 'fail';
  strictSchema: boolean;
  ignoreWatermark: boolean;
  dropIndexes: boolean;
  batchSize?: number;
  /** Batches loaded at once, each on its own connection (default 2). */
  jobs?: number;
  dryRun: boolean;
  secrets?: readonly string[];
  progressIntervalMs?: number;
  /** How to reach the legal-hold sources, read for --conflict overwrite/upsert (the API credential comes from the CLI's environment). */
  holdSources?: HoldSourceOptions;
  /**
   * Checked once the table is known, before storage is touched: the CLI refuses a `local.path`
   * that is not a directory here, so that the audit trail (and anything else listening) records
   * the refused restore as a failed run.
   */
  requireArchive?: () => Promise<void>;
  /** The audit trail (and anything else) listens here: restore:started, restore:finished. */
  events?: RunEvents;
  /**
   * Aborted (SIGTERM, SIGINT): no new batch starts; the batches in flight commit (with their
   * restore watermarks) or roll back, indexes are recreated, the lock released, and the restore
   * ends failed (STOPPED). Rerunning the same command continues where it stopped.
   */
  signal?: AbortSignal;
}

export interface RestoreSummary {
  runId: string;
  dryRun: boolean;
  database: string;
  schema: string;
  table: string;
  target: RestoreTarget;
  targetCreated: boolean;
  conflictStrategy: ConflictStrategy;
  objects: { selected: number; restored: number; skippedByWatermark: number };
  /** Objects with a pending marker: their batch was in flight; not restored. */
  uncommitted: string[];
  corrupt: { key: string; message: string }[];
  /**
   * skippedByTriggers: rows a trigger of the target dropped (returned NULL for): not loaded, not conflicts.
   * superseded: archived versions not loaded because a later run archived their key again (superseded-lines.ts).
   */
  rows: { restored: number; inserted: number; conflicts: number; skippedByTriggers: number; superseded: number };
  drift: string[];
  indexes: { dropped: string[]; recreated: string[]; failedToRecreate: string[] };
  durationMs: number;
  rowsPerSecond: number;
  status: 'ok' | 'failed';
  error?: { code: string; message: string; details?: unknown };
}

/** A committed object selected for restore, with what the planning needs of its sidecar (no manifest). */
export interface Candidate {
  key: string;
  meta: SidecarSummary;
}
