/**
 * The local fallback spool (`local_fallback_dir`). When storage stays unavailable after retries,
 * a failed batch — its rows as read, with their keys, versions (xmin) and the table's column
 * list — is written to a local directory so the next run does not have to read and encode it
 * again. The rows are NOT deleted: a spooled batch is a copy, not an archive. The next run
 * archives spooled batches first, through the normal pipeline (upload, read back, metadata,
 * guarded delete), so only rows still in the version that was spooled are deleted, and only once
 * their object is verified in the real destination.
 *
 * A spooled batch older than `local_fallback_retention_days`, or written for another column list,
 * is discarded: its rows are still in the table and are read again like any others.
 */
import type { Logger } from 'pino';
import { tablePrefix } from '../core/archive-layout.js';
import { describeError } from '../core/errors.js';
import { keyId, subsetRowSet, type RowSet } from '../core/row-set.js';
import type { TablePlan } from '../core/table-plan.js';
import { computeBatchId, sha256Hex } from '../core/batch-metadata.js';
import type { ObjectStore } from '../storage/object-store.js';

export const FALLBACK_FORMAT = 'auditlog-fallback-batch';
/**
 * 2: the lines as base64 of their exact bytes (version 1 held them as text, which changed bytes
 * that are not UTF-8, e.g. from an SQL_ASCII database; such files are discarded and read again).
 * 3: SHA-256 checksums of the lines and of the keys and versions. The replay's delete matches a
 * row's key and xmin, never its content, so a byte changed on the local disk would be archived in
 * place of the row it deletes (found in review). Version 2 files have no checksum and cannot be
 * told sound from damaged: they are discarded too (their rows are still in the table).
 */
export const FALLBACK_VERSION = 3;

export interface FallbackBatch {
  format: typeof FALLBACK_FORMAT;
  version: number;
  database: string;
  schema: string;
  table: string;
  run_id: string;
  created_at: string;
  /** Why it was spooled: the storage error after retries. */
  reason: string;
  columns: { name: string; type: string }[];
  record_count: number;
  rows: SpooledRows;
  /** SHA-256 (hex) of the lines' exact bytes, as decoded from `rows.lines_base64`. */
  lines_sha256: string;
  /** SHA-256 (hex) of `spooledIndexText(rows)`: the keys, xmins, flags and bounds the delete and metadata use. */
  index_sha256: string;
}

/** A RowSet as spooled: JSON has no bytes, so the lines (the object body) as base64 of their exact bytes. */
export type SpooledRows = Omit<RowSet, 'lines'> & { lines_base64: string };

/** Storage failures that mean "the destination is unavailable", as opposed to a decision or a bug. */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set(['STORAGE_UNREACHABLE', 'STORAGE_IO', 'STORAGE_CIRCUIT_OPEN']);

export function isStorageUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNAVAILABLE_CODES.has(code);
}

/** The key of a spooled batch, relative to the spool directory. */
export function fallbackKey(plan: Pick<TablePlan, 'database' | 'schema' | 'table'>, rows: RowSet): string {
  const batchId = computeBatchId(plan, rows.firstTs, rows.keys[0]!, rows.keys[rows.count - 1]!, rows.count);
  return `${tablePrefix(plan.database, plan.schema, plan.table)}${rows.day}-${rows.firstTimeOfDay}-${batchId}.json`;
}

/**
 * The name of a spool file as `fallbackKey` writes it: `<day>-<HHMMSSffffff>-<batch id>.json`,
 * directly in the table's directory. The spool lists, reads and deletes only files named so:
 * anything else there (a sidecar of an archive, a file put by hand) is never touched, so no other
 * file can be removed by a replay (found in review: with local_fallback_dir equal to local.path, a
 * replay deleted every committed .metadata.json sidecar it took for a spooled batch).
 */
const FALLBACK_FILE_NAME = /^\d{4}-\d{2}-\d{2}-\d{12}-[0-9a-f]{16}\.json$/;

export function isFallbackFileName(name: string): boolean {
  return FALLBACK_FILE_NAME.test(name);
}

/** Keys of the spool files of one table, in listing order; nothing else under its directory. */
export async function* listFallbackKeys(dir: ObjectStore, plan: Pick<TablePlan, 'database' | 'schema' | 'table'>): AsyncIterable<string> {
  const prefix = tablePrefix(plan.database, plan.schema, plan.table);
  for await (const o of dir.list(prefix)) {
    if (o.key.startsWith(prefix) && isFallbackFileName(o.key.slice(prefix.length))) yield o.key;
  }
}

/**
 * What of a spooled RowSet besides its lines decides what is deleted and recorded: its keys and
 * xmins (the guarded delete matches them; a key swapped between two rows of one transaction would
 * delete a row under another row's content), flags and bounds. Fixed field order, so the text
 * does not depend on how a JSON parser orders keys.
 */
export function spooledIndexText(rows: Omit<SpooledRows, 'lines_base64'>): string {
  return JSON.stringify([rows.day, rows.firstTimeOfDay, rows.count, rows.xmins, rows.keys, rows.firstTs, rows.lastTs, rows.minKey, rows.maxKey, rows.flags]);
}

export function buildFallbackBatch(plan: TablePlan, rows: RowSet, runId: string, reason: string, now: Date): FallbackBatch {
  return {
    format: FALLBACK_FORMAT,
    version: FALLBACK_VERSION,
    database: plan.database,
    schema: plan.schema,
    table: plan.table,
    run_id: runId,
    created_at: now.toISOString(),
    reason,
    columns: plan.columns.map((c) => ({ name: c.name, type: c.type })),
    record_count: rows.count,
    rows: { ...withoutLines(rows), lines_base64: rows.lines.toString('base64') },
    lines_sha256: sha256Hex(rows.lines),
    index_sha256: sha256Hex(spooledIndexText(rows)),
  };
}

function withoutLines(rows: RowSet): Omit<RowSet, 'lines'> {
  const { lines: _lines, ...rest } = rows;
  return rest;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStringArray = (v: unknown, length?: number): v is string[] => Array.isArray(v) && v.every(isString) && (length === undefined || v.length === length);
const isIndexArray = (v: unknown, below: number): v is number[] => Array.isArray(v) && v.every((i) => isCount(i) && i < below);
const SHA256_HEX = /^[0-9a-f]{64}$/;
const XMIN = /^\d+$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const TIME_OF_DAY = /^\d{12}$/;

/**
 * What is wrong with the shape of a spooled document, or undefined when every field the replay
 * uses is there with its type and the counts agree (keys, xmins and lines one per row). A file is
 * anything a disk or a hand left there: a `null`, a truncated array or a missing line must be
 * discarded, not fail the table at every run (found in review: `null` crashed with INTERNAL, a
 * missing line stopped the table with VERIFY_FAILED, both until retention). Pure.
 */
function shapeProblem(doc: unknown, plan: TablePlan): string | undefined {
  if (!isObject(doc)) return `not a JSON object (${doc === null ? 'null' : Array.isArray(doc) ? 'an array' : typeof doc})`;
  for (const field of ['format', 'database', 'schema', 'table', 'run_id', 'created_at', 'reason', 'lines_sha256', 'index_sha256'] as const) {
    if (!isString(doc[field])) return field === 'lines_sha256' || field === 'index_sha256' ? 'no checksum' : `no ${field}`;
  }
  if (!SHA256_HEX.test(doc.lines_sha256 as string) || !SHA256_HEX.test(doc.index_sha256 as string)) return 'no checksum';
  if (!Array.isArray(doc.columns) || !doc.columns.every((c) => isObject(c) && isString(c.name) && isString(c.type))) return 'no column list';
  if (!isCount(doc.record_count) || doc.record_count === 0) return 'no record_count';
  const r = doc.rows;
  if (!isObject(r)) return 'no rows';
  const n = doc.record_count;
  if (r.count !== n) return `rows.count ${String(r.count)} is not record_count ${n}`;
  const keyLength = plan.primaryKey.length;
  if (!Array.isArray(r.keys) || r.keys.length !== n || !r.keys.every((k) => isStringArray(k, keyLength))) return `keys are not ${n} keys of ${keyLength} column(s)`;
  if (!isStringArray(r.xmins, n) || !r.xmins.every((x) => XMIN.test(x))) return `xmins are not ${n} transaction ids`;
  if (!isString(r.day) || !DAY.test(r.day) || !isString(r.firstTimeOfDay) || !TIME_OF_DAY.test(r.firstTimeOfDay)) return 'no day or time of day';
  if (!isString(r.firstTs) || !isString(r.lastTs) || !isStringArray(r.minKey, keyLength) || !isStringArray(r.maxKey, keyLength)) return 'no bounds';
  if (!Array.isArray(r.flags) || !r.flags.every((f) => isObject(f) && isCount(f.line) && f.line < n && isIndexArray(f.jsonNull, plan.columns.length) && isIndexArray(f.jsonText, plan.columns.length))) {
    return 'malformed flags';
  }
  if (!isString(r.lines_base64)) return 'no lines';
  // Buffer.from skips characters that are not base64: only the exact encoding the spool writes.
  const lines = Buffer.from(r.lines_base64, 'base64');
  if (lines.toString('base64') !== r.lines_base64) return 'lines are not base64';
  const newlines = lines.reduce((sum, byte) => sum + (byte === 10 ? 1 : 0), 0);
  if (newlines !== n || lines[lines.length - 1] !== 10) return `${newlines} line(s) for ${n} row(s)`;
  return undefined;
}

/** Whether a spooled batch may be archived now; otherwise why it is discarded. Pure; never throws on any `doc`. */
export function checkFallbackBatch(doc: unknown, plan: TablePlan, now: Date, retentionDays: number): { usable: true } | { usable: false; reason: string } {
  if (!isObject(doc)) return { usable: false, reason: shapeProblem(doc, plan)! };
  if (doc.format === FALLBACK_FORMAT && (doc.version === 1 || doc.version === 2)) return { usable: false, reason: `written by an older version (${doc.version}) without a checksum of its rows` };
  if (doc.format !== FALLBACK_FORMAT || doc.version !== FALLBACK_VERSION) return { usable: false, reason: 'unknown format' };
  const problem = shapeProblem(doc, plan);
  if (problem !== undefined) return { usable: false, reason: `malformed: ${problem}` };
  const d = doc as unknown as FallbackBatch;
  if (d.database !== plan.database || d.schema !== plan.schema || d.table !== plan.table) return { usable: false, reason: 'written for another table' };
  const ageDays = (now.getTime() - Date.parse(d.created_at)) / 86_400_000;
  if (!(ageDays <= retentionDays)) return { usable: false, reason: `older than local_fallback_retention_days (${retentionDays})` };
  const columns = JSON.stringify(plan.columns.map((c) => ({ name: c.name, type: c.type })));
  if (JSON.stringify(d.columns.map((c) => ({ name: c.name, type: c.type }))) !== columns) return { usable: false, reason: 'the table\'s columns changed since it was written' };
  // Damage on the local disk: what would be archived and deleted is not what was spooled.
  const r = d.rows;
  if (sha256Hex(Buffer.from(r.lines_base64, 'base64')) !== d.lines_sha256) return { usable: false, reason: 'the lines do not match their checksum (damaged)' };
  const { lines_base64: _lines, ...index } = r;
  if (sha256Hex(spooledIndexText(index)) !== d.index_sha256) return { usable: false, reason: 'the keys or versions do not match their checksum (damaged)' };
  return { usable: true };
}

export interface SpooledBatch {
  key: string;
  /** The parsed JSON, unchecked: `checkFallbackBatch` says whether it is a usable FallbackBatch. */
  doc: unknown;
  /** Why the file cannot be read (then it is discarded like an unusable one). */
  problem?: string;
}

export class FallbackSpool {
  constructor(
    private readonly dir: ObjectStore,
    private readonly retentionDays: number,
    private readonly logger: Logger,
  ) {}

  get description(): string {
    return this.dir.description;
  }

  async save(plan: TablePlan, rows: RowSet, runId: string, error: unknown): Promise<string> {
    const key = fallbackKey(plan, rows);
    const doc = buildFallbackBatch(plan, rows, runId, describeError(error), new Date());
    await this.dir.put(key, Buffer.from(JSON.stringify(doc) + '\n', 'utf8'), { contentType: 'application/json' });
    return key;
  }

  /** The spooled batches of one table, oldest key first. */
  async list(plan: Pick<TablePlan, 'database' | 'schema' | 'table'>): Promise<SpooledBatch[]> {
    const out: SpooledBatch[] = [];
    for await (const key of listFallbackKeys(this.dir, plan)) {
      try {
        const body = await this.dir.get(key);
        out.push(body === undefined ? { key, doc: undefined, problem: 'gone' } : { key, doc: JSON.parse(body.toString('utf8')) as unknown });
      } catch (error) {
        out.push({ key, doc: undefined, problem: describeError(error) });
      }
    }
    return out;
  }

  /**
   * Archives every usable spooled batch of the table with `archive` (the normal batch pipeline),
   * removing each once archived; discards the unusable ones. Stops at the first failure, keeping
   * that batch and the ones after it for the next run.
   */
  async replay(
    plan: TablePlan,
    archive: (rows: RowSet) => Promise<unknown>,
    /** Keys of these rows that a record-level legal hold now matches. */
    heldKeys: (keys: readonly (readonly string[])[]) => Promise<string[][]> = async () => [],
  ): Promise<{ replayed: number; discarded: number }> {
    let replayed = 0;
    let discarded = 0;
    for (const item of await this.list(plan)) {
      let check: ReturnType<typeof checkFallbackBatch>;
      try {
        check = item.problem !== undefined ? { usable: false, reason: item.problem } : checkFallbackBatch(item.doc, plan, new Date(), this.retentionDays);
        // The file's name is its batch's (fallbackKey): a name that does not fit its rows was not written so.
        if (check.usable && fallbackKey(plan, (item.doc as FallbackBatch).rows as unknown as RowSet) !== item.key) check = { usable: false, reason: 'its name does not match its rows' };
      } catch (error) {
        // A check that fails is no reason to stop the table: the file is discarded like any unusable one.
        check = { usable: false, reason: describeError(error) };
      }
      if (!check.usable) {
        this.logger.warn({ file: item.key, reason: check.reason }, 'discarding a spooled batch; its rows are still in the table and are read again');
        await this.dir.delete(item.key);
        discarded++;
        continue;
      }
      // Rows a legal hold placed since the spool now matches must not reach the archive, not even
      // in an upload the delete would then rewrite (found in review: a versioned bucket keeps it).
      const spooled = (item.doc as FallbackBatch).rows;
      const { lines_base64: lines, ...rest } = spooled;
      const rows: RowSet = { ...rest, lines: Buffer.from(lines, 'base64') };
      const held = new Set((await heldKeys(rows.keys)).map(keyId));
      const kept = rows.keys.flatMap((k, i) => (held.has(keyId(k)) ? [] : [i]));
      if (kept.length > 0) await archive(kept.length === rows.count ? rows : subsetRowSet(rows, kept));
      if (held.size > 0) this.logger.info({ file: item.key, held: held.size }, 'rows of a spooled batch are now under a legal hold: left out, they stay in the table');
      await this.dir.delete(item.key);
      replayed++;
    }
    if (replayed > 0) this.logger.info({ batches: replayed }, 'archived the batches spooled to local_fallback_dir by an earlier run');
    return { replayed, discarded };
  }
}
