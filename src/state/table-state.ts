/**
 * What the archiver remembers about a table between runs (pure: no I/O).
 *
 * - The **watermark**: the (timestamp, primary key) position up to which every batch of a run
 *   committed its delete. The next run starts reading after it, so a run that was stopped in a
 *   large backlog does not walk again the dead tuples of the rows it already deleted. It is only
 *   a starting point, never a promise: rows behind it (skipped because they were locked or
 *   changed, or inserted late with an old timestamp) are picked up by a pass over the range
 *   behind the watermark at the end of each run. A lost or wrong watermark costs time, not rows.
 * - The **last run**: how the table's last run ended, for `auditlog status`.
 * - The **checkpoint** (kept apart, see checkpoint-store.ts): present while a run is in
 *   progress and left behind when it is interrupted, so the next run knows it resumes one.
 */
import { AuditlogError } from '../core/errors.js';
import { parseTimestampText } from '../core/pg-text.js';
import { quoteShellArg } from '../core/quote-for-display.js';
import { quoteQualified } from '../db/quote-ident.js';
import type { RowPosition } from '../core/row-set.js';
import type { TablePlan } from '../core/table-plan.js';

export const TABLE_STATE_FORMAT = 'auditlog-table-state';
export const TABLE_STATE_VERSION = 1;
export const CHECKPOINT_FORMAT = 'auditlog-checkpoint';

export interface TableId {
  database: string;
  schema: string;
  table: string;
}

export interface Watermark {
  position: RowPosition;
  run_id: string;
  updated_at: string;
  /** What the position means: a watermark of a table recreated since, or re-keyed, is not used. */
  table_oid: number;
  timestamp_column: string;
  primary_key: string[];
}

export interface LastRun {
  run_id: string;
  status: 'archived' | 'nothing-to-archive' | 'failed';
  started_at: string;
  finished_at: string;
  rows_archived: number;
  rows_skipped: number;
  batches: number;
  error?: { code: string; message: string };
  /**
   * A stop request (the daemon's SIGTERM) cut the run short: it ended as archived, with rows past
   * the retention possibly left for the next run. Not a success to `status` or the metrics.
   */
  stopped?: true;
}

export interface TableState extends TableId {
  format: typeof TABLE_STATE_FORMAT;
  version: number;
  watermark: Watermark | null;
  last_run: LastRun | null;
}

export interface Checkpoint extends TableId {
  format: typeof CHECKPOINT_FORMAT;
  run_id: string;
  started_at: string;
  updated_at: string;
  batches_committed: number;
  rows_archived: number;
  /** The watermark as of this checkpoint (null: no batch committed yet). */
  position: RowPosition | null;
}

export function tableIdOf(plan: Pick<TablePlan, 'database' | 'schema' | 'table'>): TableId {
  return { database: plan.database, schema: plan.schema, table: plan.table };
}

export function emptyTableState(id: TableId): TableState {
  return { format: TABLE_STATE_FORMAT, version: TABLE_STATE_VERSION, ...id, watermark: null, last_run: null };
}

export function watermarkFor(plan: TablePlan, position: RowPosition, runId: string, now: Date): Watermark {
  return {
    position,
    run_id: runId,
    updated_at: now.toISOString(),
    table_oid: plan.oid,
    timestamp_column: plan.timestampColumn.name,
    primary_key: plan.primaryKey.map((c) => c.name),
  };
}

/** The position to start after, or why the stored watermark cannot be used (then the run starts from the first row). */
export function usableWatermark(plan: TablePlan, watermark: Watermark | null): { position: RowPosition | null; ignored?: string } {
  if (watermark === null) return { position: null };
  if (watermark.table_oid !== plan.oid) return { position: null, ignored: 'the table was recreated since it was written' };
  if (watermark.timestamp_column !== plan.timestampColumn.name) {
    return { position: null, ignored: `it was written for timestamp_column ${watermark.timestamp_column}` };
  }
  const pk = plan.primaryKey.map((c) => c.name);
  if (JSON.stringify(watermark.primary_key) !== JSON.stringify(pk) || watermark.position.key.length !== pk.length) {
    return { position: null, ignored: `it was written for primary key (${watermark.primary_key.join(', ')})` };
  }
  return { position: watermark.position };
}

/**
 * Parses a stored state document (`where` names it: a file, an object key, a row). One that is
 * not JSON or not of the expected shape is STATE_INVALID: the table is not archived until
 * `watermarks reset` discards it, rather than the archiver guessing around a document it cannot
 * read. The message names the document and the field at fault, never its content (a position
 * holds key values, that is row data).
 */
export function parseTableState(text: string, id: TableId, where: string): TableState {
  const doc = parseDocument(text);
  const problem =
    typeof doc === 'string'
      ? doc
      : doc.format !== TABLE_STATE_FORMAT
        ? `its format is not ${TABLE_STATE_FORMAT}`
        : doc.version !== TABLE_STATE_VERSION
          ? versionProblem(doc.version)
          : (idProblem(doc, id) ?? nullable(doc.watermark, 'watermark', watermarkProblem) ?? nullable(doc.last_run, 'last_run', lastRunProblem));
  if (problem !== undefined) {
    const newer = typeof doc !== 'string' && doc.format === TABLE_STATE_FORMAT && typeof doc.version === 'number' && doc.version > TABLE_STATE_VERSION;
    throw invalidStateError('table state', id, where, problem, newer);
  }
  const valid = doc as unknown as TableState;
  return { ...emptyTableState(id), watermark: valid.watermark ?? null, last_run: valid.last_run ?? null };
}

export function parseCheckpoint(text: string, id: TableId, where: string): Checkpoint {
  const doc = parseDocument(text);
  const problem =
    typeof doc === 'string'
      ? doc
      : doc.format !== CHECKPOINT_FORMAT
        ? `its format is not ${CHECKPOINT_FORMAT}`
        : (idProblem(doc, id) ??
          firstProblem([
            [isText(doc.run_id), 'run_id is not a non-empty string'],
            [isInstant(doc.started_at), 'started_at is not a date-time'],
            [isInstant(doc.updated_at), 'updated_at is not a date-time'],
            [isCount(doc.batches_committed), 'batches_committed is not a count'],
            [isCount(doc.rows_archived), 'rows_archived is not a count'],
          ]) ??
          (doc.position === null ? undefined : positionProblem(doc.position, 'position')));
  if (problem !== undefined) throw invalidStateError('checkpoint', id, where, problem, false);
  return doc as unknown as Checkpoint;
}

/** The command that discards an invalid document (watermarks reset replaces it). */
function resetCommandFor(id: TableId): string {
  // --table reads a name holding '"' as quoted identifiers, and a dotted one is ambiguous bare.
  const table = /[".]/.test(id.schema) || /[".]/.test(id.table) ? quoteQualified(id.schema, id.table) : `${id.schema}.${id.table}`;
  return `auditlog watermarks reset --database ${quoteShellArg(id.database)} --table ${quoteShellArg(table)}`;
}

/** `newer`: written by a newer auditlog, which an upgrade reads. */
function invalidStateError(what: 'table state' | 'checkpoint', id: TableId, where: string, problem: string, newer: boolean): AuditlogError {
  const label = `${id.database}/${id.schema}.${id.table}`;
  const cost =
    what === 'table state'
      ? 'a lost watermark costs a longer scan, never a row; the last-run record goes with it'
      : 'it only records how far an interrupted run got; no row depends on it';
  return new AuditlogError(
    'STATE_INVALID',
    `the ${what} of ${label} at ${where} is not valid (${problem}): ${newer ? 'upgrade auditlog, or ' : ''}run \`${resetCommandFor(id)}\` to discard it (${cost})`,
    { details: { table: label, document: what, location: where, problem } },
  );
}

/** The document as a JSON object, or why it is none. */
function parseDocument(text: string): Record<string, unknown> | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the text around the fault.
    return 'it is not JSON';
  }
  return isObject(doc) ? doc : 'it is not a JSON object';
}

function versionProblem(version: unknown): string {
  if (typeof version !== 'number') return 'its version is not a number';
  return version > TABLE_STATE_VERSION
    ? `its version ${version} was written by a newer auditlog (this one reads version ${TABLE_STATE_VERSION})`
    : `its version ${version} is not supported (expected ${TABLE_STATE_VERSION})`;
}

function idProblem(doc: Record<string, unknown>, id: TableId): string | undefined {
  return doc.database !== id.database || doc.schema !== id.schema || doc.table !== id.table ? 'it names another table' : undefined;
}

function watermarkProblem(w: Record<string, unknown>): string | undefined {
  const pkLength = Array.isArray(w.primary_key) ? w.primary_key.length : undefined;
  return (
    firstProblem([
      [isText(w.run_id), 'watermark.run_id is not a non-empty string'],
      [isInstant(w.updated_at), 'watermark.updated_at is not a date-time'],
      [typeof w.table_oid === 'number' && Number.isSafeInteger(w.table_oid) && w.table_oid > 0, 'watermark.table_oid is not an oid'],
      [isText(w.timestamp_column), 'watermark.timestamp_column is not a non-empty string'],
      [pkLength !== undefined && pkLength > 0 && (w.primary_key as unknown[]).every(isText), 'watermark.primary_key is not a list of column names'],
    ]) ?? positionProblem(w.position, 'watermark.position', pkLength)
  );
}

const RUN_STATUSES: ReadonlySet<unknown> = new Set<LastRun['status']>(['archived', 'nothing-to-archive', 'failed']);

function lastRunProblem(r: Record<string, unknown>): string | undefined {
  const error = r.error;
  return firstProblem([
    [isText(r.run_id), 'last_run.run_id is not a non-empty string'],
    [RUN_STATUSES.has(r.status), 'last_run.status is not one of archived, nothing-to-archive, failed'],
    [isInstant(r.started_at), 'last_run.started_at is not a date-time'],
    [isInstant(r.finished_at), 'last_run.finished_at is not a date-time'],
    [isCount(r.rows_archived), 'last_run.rows_archived is not a count'],
    [isCount(r.rows_skipped), 'last_run.rows_skipped is not a count'],
    [isCount(r.batches), 'last_run.batches is not a count'],
    [error === undefined || (isObject(error) && typeof error.code === 'string' && typeof error.message === 'string'), 'last_run.error is not a code and a message'],
    [r.stopped === undefined || r.stopped === true, 'last_run.stopped is not true'],
  ]);
}

/**
 * The timestamp must be one as PostgreSQL writes it: the page query casts it, and a value that
 * does not parse would fail every run with a SQL error instead of naming the document. Key values
 * are only checked to be strings: whether they fit the key columns' types is the table's
 * business (positionMismatch asks the database, and a watermark whose values no longer cast is
 * ignored, as after `ALTER COLUMN … TYPE`).
 */
function positionProblem(p: unknown, field: string, keyLength?: number): string | undefined {
  if (!isObject(p)) return `${field} is not an object`;
  if (typeof p.ts !== 'string' || parseTimestampText(p.ts) === undefined) return `${field}.ts is not a PostgreSQL timestamp`;
  if (!Array.isArray(p.key) || p.key.length === 0 || !p.key.every((k) => typeof k === 'string')) return `${field}.key is not a list of key values`;
  if (keyLength !== undefined && p.key.length !== keyLength) return `${field}.key has ${p.key.length} value(s) for a primary key of ${keyLength} column(s)`;
  return undefined;
}

function nullable(value: unknown, field: string, check: (v: Record<string, unknown>) => string | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  return isObject(value) ? check(value) : `${field} is not an object`;
}

function firstProblem(checks: readonly (readonly [boolean, string])[]): string | undefined {
  return checks.find(([ok]) => !ok)?.[1];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isText = (v: unknown): boolean => typeof v === 'string' && v !== '';
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isInstant = (v: unknown): boolean => typeof v === 'string' && !Number.isNaN(Date.parse(v));
