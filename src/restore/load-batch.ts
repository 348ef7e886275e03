/**
 * Loads one batch into the target: consecutive checked archive objects with the same column
 * list, up to --batch-size rows (a larger object is split over several batches). In one short
 * transaction (I5), the first of these that applies:
 *   direct     the lines converted to COPY text in this process (copy-text.ts), every key matched
 *              to the manifest on the way, COPY straight into the target — where that is provably
 *              the INSERT's result (restore-sql.ts directCopyPlan) and no key of the batch is there;
 *   converted  the same COPY text into the session's parsed staging table;
 *   json       COPY of the raw lines, parsed by json_populate_record with the archived types;
 * and for the last two: every line's key checked against its object's deletion manifest (unless
 * matched during the conversion), then one INSERT … SELECT … ON CONFLICT. Parsing JSON in
 * PostgreSQL cost more than the whole load into the target; batching small objects matters too:
 * per-transaction overhead dominated when each object was its own transaction.
 */
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { BatchMetadata, LineColumns } from '../core/batch-metadata.js';
import { AuditlogError, describeError, isAuditlogError, sqlState } from '../core/errors.js';
import { isQueryDeadlineError } from '../db/connect.js';
import type { Queryable } from '../db/queryable.js';
import type { TargetTable } from '../db/target-table.js';
import type { CheckedObject } from './check-object.js';
import { stagingColumns, type DriftPlan } from './schema-drift.js';
import { diagnoseEnumLabels, unknownEnumLabelsError } from './enum-labels.js';
import { commitOutcomeUnknown, detailOf, loadStoppedError, silentConnectionError } from './load-error.js';
import { parseLineObject } from '../validate/json-line-fields.js';
import { convertToCopyText, textCheckedKey, type ColumnKind, type Converted, type CopyColumn, type SourceLine } from './copy-text.js';
import { COLUMN_KINDS_SQL, COPY_LINES_SQL, copyParsedSql, countConflictsSql, directCopyPlan, createLinesTableSql, createParsedTablesSql, feedCountsSql, insertCountsUpdates, insertSql, manifestMismatchSql, parseLinesSql, type ConflictStrategy } from './restore-sql.js';

export interface LoadResult {
  rows: number;
  inserted: number;
  /** Rows whose key already existed: skipped (skip), replaced (overwrite) or updated (upsert). */
  conflicts: number;
  /** Rows a BEFORE INSERT/UPDATE trigger of the target dropped (returned NULL for): not in the target. */
  skippedByTriggers: number;
  path: LoadPath;
}

/**
 * Lines [from, to) of one object; `last`: the object's final segment (it is then fully loaded).
 * `superseded`: object lines not to load, their key archived again later (superseded-lines.ts).
 */
export interface BatchSegment {
  object: CheckedObject;
  starts: number[];
  from: number;
  to: number;
  last: boolean;
  superseded?: { has(line: number): boolean; readonly size: number };
}

/** Pure: the lines of a segment that are loaded, in order. */
export function segmentLines(s: BatchSegment): number[] {
  const out: number[] = [];
  for (let i = s.from; i < s.to; i++) if (s.superseded?.has(i) !== true) out.push(i);
  return out;
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i < to; i++) yield i;
}

/** Pure: how many lines of the segments are superseded (not loaded). */
export function supersededIn(segments: readonly BatchSegment[]): number {
  return segments.reduce((n, s) => n + (s.superseded === undefined ? 0 : s.to - s.from - segmentLines(s).length), 0);
}

export interface LoadOptions {
  strategy: ConflictStrategy;
  dryRun: boolean;
  /** Runs inside the batch's transaction, before COMMIT (a database restore watermark commits with the rows). */
  beforeCommit?: (q: Queryable) => Promise<void>;
  /** Runs inside the batch's transaction after its rows went in and beforeCommit, right before COMMIT: throws to roll the batch back (legal holds placed meanwhile: restore-holds.ts). */
  checkBeforeCommit?: (q: Queryable) => Promise<void>;
}

interface SessionTables {
  rowType: string;
  parsed: string;
  /** How each archived column converts to COPY text, in column order. */
  copyColumns: CopyColumn[];
}

/** Temp tables of one restore connection, per distinct archived column list. */
export class RestoreSession {
  private readonly parsedTables = new Map<string, SessionTables>();
  private prepared = false;
  /**
   * The last conversion's output buffer, reused by the next batch of this session (its COPY has
   * finished by then): a fresh buffer of ~10 MB per batch cost page faults and peak RSS.
   */
  scratch: Buffer | undefined;

  constructor(readonly client: pg.ClientBase) {}

  async tablesFor(columns: BatchMetadata['columns']): Promise<SessionTables> {
    if (!this.prepared) {
      await this.client.query(createLinesTableSql());
      this.prepared = true;
    }
    const signature = JSON.stringify(columns.map((c) => [c.name, c.type]));
    let tables = this.parsedTables.get(signature);
    if (tables === undefined) {
      const built = createParsedTablesSql(this.parsedTables.size + 1, columns);
      for (const sql of built.sql) await this.client.query(sql);
      const kinds = await this.client.query<{ name: string; kind: ColumnKind }>(COLUMN_KINDS_SQL, [built.rowType]);
      const copyColumns = columns.map((c, i) => ({ name: c.name, kind: kinds.rows[i]?.name === c.name ? kinds.rows[i]!.kind : 'other' }));
      tables = { rowType: built.rowType, parsed: built.parsed, copyColumns };
      this.parsedTables.set(signature, tables);
    }
    return tables;
  }
}

/** Byte offset of each line of `raw`, plus one past the end. */
export function lineStarts(raw: Buffer): number[] {
  const starts = [0];
  let at = raw.indexOf(10);
  while (at !== -1) {
    starts.push(at + 1);
    at = raw.indexOf(10, at + 1);
  }
  return starts;
}

/** What the columns, column types and key of a batch's objects must share. */
export function batchSignature(meta: Pick<BatchMetadata, 'columns' | 'primary_key_columns'>): string {
  return JSON.stringify([meta.columns, meta.primary_key_columns]);
}

interface BatchInput {
  /** The batch's lines, numbered from 0 by their position here, without their '\n'. */
  lines: SourceLine[];
  manifest: string[][];
  /** The xmin each line's row had when archived (the sidecar's `xmins`), '' where a sidecar has none. */
  xmins: string[];
  jsonNull: LineColumns[];
  jsonText: LineColumns[];
  rows: number;
}

/** Pure: the batch's lines renumbered from 0, with the manifest and json rules renumbered alike. */
export function buildBatchInput(segments: readonly BatchSegment[]): BatchInput {
  const lines: SourceLine[] = [];
  const manifest: string[][] = [];
  const xmins: string[] = [];
  const jsonNull: LineColumns[] = [];
  const jsonText: LineColumns[] = [];
  for (const s of segments) {
    const { meta, raw } = s.object;
    // Without superseded lines (nearly always) a line's batch number is an offset: no map per line.
    const offset = lines.length - s.from;
    const moved = s.superseded !== undefined && s.superseded.size > 0 ? new Map<number, number>() : undefined;
    for (const i of moved === undefined ? range(s.from, s.to) : segmentLines(s)) {
      moved?.set(i, lines.length);
      lines.push({ raw, start: s.starts[i]!, end: s.starts[i + 1]! - 1 });
      manifest.push(meta.primary_keys[i]!);
      xmins.push(meta.xmins?.[i] ?? '');
    }
    const renumber = (entries: readonly LineColumns[] | undefined, into: LineColumns[]): void => {
      for (const e of entries ?? []) {
        const n = moved === undefined ? (e.line >= s.from && e.line < s.to ? e.line + offset : undefined) : moved.get(e.line);
        if (n !== undefined) into.push({ line: n, columns: e.columns });
      }
    };
    renumber(meta.json_null_values, jsonNull);
    renumber(meta.json_text_values, jsonText);
  }
  return { lines, manifest, xmins, jsonNull, jsonText, rows: lines.length };
}

/** Pure: `n\x02line\n` per line for COPY_LINES_SQL, n numbering the batch's lines from 0: the number travels with the line through COPY. */
export function rawLinesPayload(lines: readonly SourceLine[]): Buffer {
  const parts: Buffer[] = [];
  lines.forEach((l, n) => parts.push(Buffer.from(`${n}\x02`, 'latin1'), l.raw.subarray(l.start, l.end + 1)));
  return Buffer.concat(parts);
}

/** The segment and object line of batch line `n`. */
/** The object and line (from 0 within the object) of the batch's line `n`; messages count lines from 1, as validate and `sed -n` do. */
function locate(segments: readonly BatchSegment[], n: number): { key: string; line: number } {
  let first = 0;
  for (const s of segments) {
    const loaded = segmentLines(s);
    if (n < first + loaded.length) return { key: s.object.key, line: loaded[n - first]! };
    first += loaded.length;
  }
  return { key: segments[segments.length - 1]!.object.key, line: -1 };
}

/** How a batch reached the target: COPY straight into it, COPY of converted rows into the staging table, or PostgreSQL parsing the JSON lines. */
export type LoadPath = 'direct' | 'converted' | 'json';

export async function loadBatch(session: RestoreSession, segments: readonly BatchSegment[], drift: DriftPlan, target: TargetTable, options: LoadOptions): Promise<LoadResult> {
  // Whether the COMMIT was sent decides what a connection given up as silent means (load-error.ts).
  const commit = { sent: false };
  try {
    return await loadBatchOnce(session, segments, drift, target, options, commit);
  } catch (error) {
    if (!isQueryDeadlineError(error)) throw error;
    const objects = [...new Set(segments.map((s) => s.object.key))];
    throw silentConnectionError(error, target, objects, { sent: commit.sent, recordedWithRows: options.beforeCommit !== undefined, strategy: options.strategy });
  }
}

async function loadBatchOnce(session: RestoreSession, segments: readonly BatchSegment[], drift: DriftPlan, target: TargetTable, options: LoadOptions, commitState: { sent: boolean }): Promise<LoadResult> {
  const { client } = session;
  const meta = segments[0]!.object.meta;
  const staged = stagingColumns(meta.columns, drift);
  const tables = await session.tablesFor(staged);
  const input = buildBatchInput(segments);
  const repeated = firstRepeatedRow(input.manifest, input.xmins);
  if (repeated !== undefined) {
    // One row version (key and xmin) is archived once: two lines of it are a damaged archive (an
    // object copied under another name), and the INSERT kept one of them silently, exit 0 even
    // under --conflict fail (found by probing). Two versions of a key (deleted and inserted again
    // during a run, archived twice by it) have two xmins, and are not damage (found in review).
    const [first, second] = [locate(segments, repeated.first), locate(segments, repeated.second)];
    throw new AuditlogError(
      'RESTORE_CORRUPT_OBJECT',
      `archive object ${second.key}: line ${second.line + 1} holds the same row (key and version) as line ${first.line + 1} of archive object ${first.key}, and a row version is archived once: one of the two objects is a copy (inspect both; validate reports DUPLICATE_KEY when they are on the same day); nothing of ${second.key} was loaded in this batch`,
      { details: { key: second.key, check: 'duplicate-row', other: first.key } },
    );
  }
  // Converted in this process when exact (copy-text.ts): PostgreSQL then loads COPY text instead of parsing JSON.
  const key = textCheckedKey(staged, meta.primary_key_columns);
  // The direct COPY needs the keys matched during the conversion. Decided before converting, so a
  // batch is converted once: its lines then need no line numbers.
  const direct = options.dryRun || key === undefined ? undefined : directCopyPlan(drift, target, meta);
  const ranges = keyRanges(segments);
  const tryDirect = direct !== undefined && ranges !== undefined && distinctKeys(input.manifest) && (await noKeyInRanges(client, direct.existingKeySql, ranges));
  const convert = (lineNumbers: boolean): Converted | undefined => {
    const result = convertToCopyText(input.lines, tables.copyColumns, input, key === undefined ? undefined : { key, keys: input.manifest }, lineNumbers, session.scratch);
    if (result !== undefined) session.scratch = result.buffer;
    return result;
  };
  let converted = convert(!tryDirect);
  // A deferrable key (or foreign key) checked at COMMIT gave a bare duplicate-key error there
  // instead of RESTORE_CONFLICT naming the key: checked per statement, as for an immediate one (found by probing).
  const begin = 'BEGIN; SET CONSTRAINTS ALL IMMEDIATE';
  const commit = async (): Promise<void> => {
    commitState.sent = true;
    await client.query('COMMIT');
  };
  await client.query(begin);
  try {
    if (tryDirect && converted !== undefined) {
      // Only rows the manifest lists go in: the keys were matched to it during the conversion.
      if (converted.keysMatch) {
        if (await copyDirect(client, direct!.copySql, converted.copy, input.rows)) {
          // No row was there before (noKeyInRanges): none changed, so no hold check.
          await options.beforeCommit?.(client);
          await commit();
          return { rows: input.rows, inserted: input.rows, conflicts: 0, skippedByTriggers: 0, path: 'direct' };
        }
        await client.query(begin);
      }
      converted = convert(true);
    }
    const { inserted, skippedByTriggers } = await loadThroughStaging(client, tables, segments, input, converted, drift, target, options, commit);
    return { rows: input.rows, inserted, conflicts: input.rows - inserted - skippedByTriggers, skippedByTriggers, path: converted === undefined ? 'json' : 'converted' };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (isAuditlogError(error)) throw error;
    const objects = [...new Set(segments.map((s) => s.object.key))];
    // A COMMIT sent and answered by a lost connection (reset, terminated backend) may have
    // committed: never reported as rolled back (found in review; the deadline's case is loadBatch's).
    if (commitState.sent && commitOutcomeUnknown(error)) {
      throw silentConnectionError(new AuditlogError('DB_QUERY', describeError(error), { cause: error }), target, objects, {
        sent: true,
        recordedWithRows: options.beforeCommit !== undefined,
        strategy: options.strategy,
      });
    }
    // PostgreSQL names no line when one is not JSON (or, in COPY, a CRLF ending): found here, so the
    // error names that object and line, not the batch's first object, and --on-corrupt skip can
    // leave that object out (found by probing).
    const damaged = sqlState(error)?.startsWith('22') === true ? firstDamagedLine(input.lines) : undefined;
    if (damaged !== undefined) {
      const at = locate(segments, damaged);
      throw new AuditlogError('RESTORE_CORRUPT_OBJECT', `archive object ${at.key}: line ${at.line + 1} is not a JSON line restore can load (${describeError(error)}); nothing of it was loaded in this batch (inspect the object; auditlog validate --deep names such lines)`, {
        details: { key: at.key, check: 'line' },
        cause: error,
      });
    }
    const labels = sqlState(error) === '22P02' ? await diagnoseEnumLabels(client, drift, input.lines) : undefined;
    if (labels !== undefined) throw unknownEnumLabelsError(labels, target, objects, options.dryRun);
    throw loadStoppedError(error, target, objects, conflictHint(error, target, options.strategy));
  }
}

/** Pure: a unique violation under skip/overwrite/upsert is of another unique index than the key ON CONFLICT names (found by probing). */
export function conflictHint(error: unknown, target: { key: readonly string[] }, strategy: ConflictStrategy): string | undefined {
  if (strategy === 'fail' || sqlState(error) !== '23505') return undefined;
  return `--conflict ${strategy} handles only the target's key (${target.key.join(', ')}); a row that collides on another unique index stops the restore`;
}

/**
 * Pure: of the rows given to the INSERT, those it neither inserted nor updated nor skipped as a
 * conflict — a trigger returned NULL for them. With `skip` a conflicting row is not returned
 * either: the keys the target held before are taken for conflicts first, also where a trigger
 * dropped such a row (its key is in the target all the same).
 */
export function droppedByTriggers(strategy: ConflictStrategy, feed: { given: number; existing: number }, returned: number): number {
  const notReturned = feed.given - returned;
  return Math.max(0, strategy === 'skip' ? notReturned - feed.existing : notReturned);
}

/**
 * Outside the batch's transaction: a key range the target's type cannot read (a sidecar edited
 * by hand) is an error here that must not stop the restore, only the direct COPY.
 */
async function noKeyInRanges(client: pg.ClientBase, sql: string, ranges: [string[], string[]]): Promise<boolean> {
  try {
    return (await client.query(sql, ranges)).rows.length === 0;
  } catch (error) {
    // A connection given up as silent is no unreadable range: the batch stops (loadBatch).
    if (isQueryDeadlineError(error)) throw error;
    return false;
  }
}

/** Pure: the first line that is not a JSON object on a line of its own (a carriage return before its newline included); undefined when none. */
export function firstDamagedLine(lines: readonly SourceLine[]): number | undefined {
  for (let i = 0; i < lines.length; i++) {
    const { raw, start, end } = lines[i]!;
    if ((end > start && raw[end - 1] === 0x0d) || parseLineObject(raw.toString('utf8', start, end)) === undefined) return i;
  }
  return undefined;
}

/** Pure: the first line whose row (key as text, and xmin) an earlier line holds too, with that earlier line; undefined when none. */
export function firstRepeatedRow(manifest: readonly (readonly string[])[], xmins: readonly string[]): { first: number; second: number } | undefined {
  // Distinct first columns make distinct keys, whatever the other columns: the usual, cheap case.
  if (distinctKeys(manifest)) return undefined;
  const seen = new Map<string, number>();
  for (let i = 0; i < manifest.length; i++) {
    const id = JSON.stringify([manifest[i], xmins[i] ?? '']);
    const first = seen.get(id);
    if (first !== undefined) return { first, second: i };
    seen.set(id, i);
  }
  return undefined;
}

function distinctKeys(manifest: readonly (readonly string[])[]): boolean {
  // Archived keys usually grow with the timestamp: strictly increasing as numbers proves them
  // distinct (rounding to a double never reverses an order) without a set of 20,000 strings.
  let previous = -Infinity;
  let increasing = true;
  for (const k of manifest) {
    const n = Number(k[0]);
    if (!(n > previous)) {
      increasing = false;
      break;
    }
    previous = n;
  }
  return increasing || new Set(manifest.map((k) => k[0])).size === manifest.length;
}

/** Each object's [min keys], [max keys] as text for existingKeySql; undefined if a sidecar lacks them. */
function keyRanges(segments: readonly BatchSegment[]): [string[], string[]] | undefined {
  const lo: string[] = [];
  const hi: string[] = [];
  for (const s of segments) {
    const { min_primary_key: min, max_primary_key: max } = s.object.meta;
    if (typeof min?.[0] !== 'string' || typeof max?.[0] !== 'string') return undefined;
    lo.push(min[0]);
    hi.push(max[0]);
  }
  return [lo, hi];
}

/**
 * COPY into the target; false on a unique violation (a key of the batch is there after all,
 * also twice in the batch), with the transaction rolled back: the caller goes the staging way.
 */
async function copyDirect(client: pg.ClientBase, sql: string, copy: Buffer, rows: number): Promise<boolean> {
  try {
    await copyIn(client, sql, copy, rows);
    return true;
  } catch (error) {
    if ((error as { code?: string }).code !== '23505') throw error;
    await client.query('ROLLBACK');
    return false;
  }
}

/** COPY of converted rows, which must load one row per line (defence in depth: the conversion escapes every newline). */
async function copyIn(client: pg.ClientBase, sql: string, payload: Buffer, rows: number): Promise<void> {
  const stream = client.query(copyStreams.from(sql));
  await pipeline(Readable.from([payload]), stream);
  if (stream.rowCount !== rows) throw new AuditlogError('RESTORE_CORRUPT_OBJECT', `COPY loaded ${stream.rowCount} rows for ${rows} archive lines; nothing of this batch was committed`);
}

/** Stage the batch's parsed rows, check them against the manifest, INSERT … SELECT … ON CONFLICT; returns the rows inserted and those the target's triggers dropped. Ends the transaction. */
async function loadThroughStaging(
  client: pg.ClientBase,
  tables: SessionTables,
  segments: readonly BatchSegment[],
  input: BatchInput,
  converted: Converted | undefined,
  drift: DriftPlan,
  target: TargetTable,
  options: LoadOptions,
  commit: () => Promise<void>,
): Promise<InsertCounts> {
  const meta = segments[0]!.object.meta;
  const { rowType, parsed } = tables;
  if (converted !== undefined) {
    await copyIn(client, copyParsedSql(meta.columns, parsed), converted.copy, input.rows);
  } else {
    const parse = parseLinesSql({ columns: stagingColumns(meta.columns, drift), json_null_values: input.jsonNull, json_text_values: input.jsonText }, rowType, parsed);
    await pipeline(Readable.from([rawLinesPayload(input.lines)]), client.query(copyStreams.from(COPY_LINES_SQL)));
    const parsedRows = await client.query(parse.sql, parse.values);
    if (parsedRows.rowCount !== input.rows) throw new Error(`parsed ${parsedRows.rowCount} rows of ${input.rows} lines`);
  }
  // Keys already matched to the manifest as text during the conversion need no second pass.
  const mismatch = converted?.keysMatch === true ? { rows: [] } : await client.query<{ n: string }>(manifestMismatchSql(meta, parsed), [JSON.stringify(input.manifest)]);
  if (mismatch.rows[0] !== undefined) {
    const at = locate(segments, Number(mismatch.rows[0].n));
    throw new AuditlogError('RESTORE_CORRUPT_OBJECT', `archive object ${at.key}: line ${at.line + 1} holds a row whose key is not the manifest's key for that line; nothing of it was loaded in this batch (inspect the object)`, {
      details: { key: at.key, check: 'manifest' },
    });
  }
  if (options.dryRun) {
    const sql = countConflictsSql(drift, target, parsed);
    const inserted = input.rows - (sql === undefined ? 0 : Number((await client.query<{ n: string }>(sql)).rows[0]?.n ?? 0));
    await client.query('ROLLBACK');
    return { inserted, skippedByTriggers: 0 };
  }
  const counts = await insertRows(client, drift, target, parsed, options.strategy, segments);
  await options.beforeCommit?.(client);
  // The last statement before COMMIT: a hold committed after it is the only one this batch misses.
  await options.checkBeforeCommit?.(client);
  await commit();
  return counts;
}

interface InsertCounts {
  inserted: number;
  skippedByTriggers: number;
}

async function insertRows(client: pg.ClientBase, drift: DriftPlan, target: TargetTable, parsed: string, strategy: ConflictStrategy, segments: readonly BatchSegment[]): Promise<InsertCounts> {
  try {
    const conflictsSql = insertCountsUpdates(strategy, target) ? undefined : countConflictsSql(drift, target, parsed);
    const conflicts = conflictsSql === undefined ? 0 : Number((await client.query<{ n: string }>(conflictsSql)).rows[0]?.n ?? 0);
    // Only where a trigger may drop rows: one more pass over the staged rows per batch.
    const feed = target.triggersMayDropRows ? (await client.query<{ given: number; existing: number }>(feedCountsSql(drift, target, parsed))).rows[0] : undefined;
    const r = await client.query<{ inserted: number; returned: number }>(insertSql(drift, target, parsed, strategy));
    const inserted = Number(r.rows[0]?.inserted ?? 0) - conflicts;
    if (feed === undefined) return { inserted, skippedByTriggers: 0 };
    const skippedByTriggers = droppedByTriggers(strategy, feed, Number(r.rows[0]?.returned ?? 0));
    if (conflictsSql === undefined) return { inserted, skippedByTriggers };
    // A partitioned target returns no xmax to tell inserted from updated rows, and an update a
    // trigger dropped is neither: count the keys there now against those there before (found in review).
    const after = (await client.query<{ existing: number }>(feedCountsSql(drift, target, parsed))).rows[0];
    return { inserted: Number(after?.existing ?? 0) - feed.existing, skippedByTriggers };
  } catch (error) {
    const pgError = error as { code?: string; detail?: string; constraint?: string };
    if (strategy === 'fail' && pgError.code === '23505') {
      const keys = [...new Set(segments.map((s) => s.object.key))];
      const where = keys.length === 1 ? keys[0]! : `${keys[0]} (and ${keys.length - 1} more objects of this batch)`;
      // An object split over batches is recorded in the restore watermark only with its last part:
      // a restore stopped between two parts leaves the first ones loaded and unrecorded, with either
      // watermark backend, so the same command meets them again (found by probing).
      const split = segments.find((s) => s.from > 0 || !s.last);
      const resume = split === undefined ? '' : `; if an earlier restore into this target stopped inside ${split.object.key} (larger than --batch-size, recorded as restored only once all of it is loaded), rerun the same command with --conflict skip`;
      const detail = detailOf(error, target.key);
      throw new AuditlogError('RESTORE_CONFLICT', `restoring ${where} into ${target.schema}.${target.table}: ${detail ?? 'a key already exists'}; this batch was rolled back (choose --conflict skip, overwrite or upsert, or restore into a new --target-table)${resume}`, {
        details: { key: keys[0]!, constraint: pgError.constraint ?? null, detail: detail ?? null },
        cause: error,
      });
    }
    throw error;
  }
}
