/**
 * What the archiver knows about one table after reading the catalog: everything the SQL builders
 * and the metadata need, and nothing that requires a connection.
 */
import type { Compression } from './compression.js';

export type TimestampKind = 'timestamptz' | 'timestamp' | 'date';

export interface ColumnInfo {
  name: string;
  /** format_type() of the column: fully qualified for types outside pg_catalog. */
  type: string;
  /** Array columns are encoded specially when a lower bound is not 1 (docs/format.md). */
  isArray: boolean;
  /** jsonb[]: a JSON null element and a NULL element are the same `null` in a JSON array (docs/format.md). */
  jsonbElements?: boolean;
  /** json/jsonb (or a domain over them): JSON null is recorded in metadata, distinct from SQL NULL. */
  jsonKind: 'json' | 'jsonb' | null;
  notNull: boolean;
  generated: boolean;
  identity: 'always' | 'by-default' | null;
}

/** A user trigger that fires on the archiver's DELETE (table-refusals.ts, selectDeleteTriggers). */
export interface DeleteTrigger {
  name: string;
  /** The table it is on, schema-qualified. */
  table: string;
  /** BEFORE/AFTER/INSTEAD OF, ROW/STATEMENT. */
  timing: string;
  /** The trigger function, schema-qualified with its argument types (regprocedure). */
  function: string;
}

export function describeDeleteTrigger(t: DeleteTrigger): string {
  return `"${t.name}" on ${t.table} (${t.timing}, ${t.function})`;
}

export interface TablePlan {
  database: string;
  schema: string;
  table: string;
  oid: number;
  /**
   * 'r' ordinary, 'p' partitioned. Every statement on the rows of an ordinary table names it with
   * ONLY: an INHERITS child attached after the plan was loaded must stay out of reads and deletes.
   */
  relkind: 'r' | 'p';
  /**
   * Enabled user DELETE triggers on the table (or its partitions) when the plan was loaded, as
   * `"name" on schema.table (timing, function)`. Non-empty only with allow_delete_triggers: without
   * it such a table is refused, and every delete checks that none appeared since.
   */
  deleteTriggers: DeleteTrigger[];
  allowDeleteTriggers: boolean;
  columns: ColumnInfo[];
  primaryKey: ColumnInfo[];
  timestampColumn: ColumnInfo;
  timestampKind: TimestampKind;
  retentionDays: number;
  batchSize: number;
  /** Adaptive page size bounds (batchSize lies within them) and the query time it steers toward. */
  minBatchSize: number;
  maxBatchSize: number;
  targetQueryTimeMs: number;
  /** Most bytes of JSON lines per page: wide rows make smaller pages (batch-sizer.ts). */
  maxBatchBytes: number;
  /** The codec of the table's new objects (objects already archived keep theirs) and its level. */
  compression: Compression;
  compressionLevel: number;
  pauseBetweenBatchesMs: number;
  batchesInFlight: number;
  /**
   * Legal holds that keep some rows (record-level, or on a partition of the table), already
   * checked (src/db/hold-queries.ts). Rows any of them matches — or for which one is NULL — are
   * neither read nor deleted.
   */
  holdFilters?: readonly HoldFilter[];
}

/** The rows one legal hold keeps: those its `where` matches, within the given partitions when it names partitions. */
export interface HoldFilter {
  /** A boolean SQL expression over the table's columns; undefined: every row (of the partitions). */
  where?: string;
  /** Oids of the partitions the hold names: only rows stored in them or in partitions below them. */
  partitionOids?: readonly string[];
}

export function tableLabel(plan: Pick<TablePlan, 'database' | 'schema' | 'table'>): string {
  return `${plan.database}/${plan.schema}.${plan.table}`;
}
