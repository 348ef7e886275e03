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

/** Whether a spooled batch may be archived now; otherwise why it is discarded. Pure. */
export function checkFallbackBatch(doc: FallbackBatch, plan: TablePlan, now: Date, retentionDays: number): { usable: true } | { usable: false; reason: string } {
  if (doc.format === FALLBACK_FORMAT && (doc.version === 1 || doc.version === 2)) return { usable: false, reason: `written by an older version (${doc.version}) without a checksum of its rows` };
  if (doc.format !== FALLBACK_FORMAT || doc.version !== FALLBACK_VERSION) return { usable: false, reason: 'unknown format' };
  if (doc.database !== plan.database || doc.schema !== plan.schema || doc.table !== plan.table) return { usable: false, reason: 'written for another table' };
  const ageDays = (now.getTime() - Date.parse(doc.created_at)) / 86_400_000;
  if (!(ageDays <= retentionDays)) return { usable: false, reason: `older than local_fallback_retention_days (${retentionDays})` };
  const columns = JSON.stringify(plan.columns.map((c) => ({ name: c.name, type: c.type })));
  if (JSON.stringify(doc.columns) !== columns) return { usable: false, reason: 'the table\'s columns changed since it was written' };
  const r = doc.rows;
  if (r === undefined || typeof r.lines_base64 !== 'string' || r.count !== doc.record_count || r.keys.length !== r.count || r.xmins.length !== r.count) return { usable: false, reason: 'incomplete' };
  // Damage on the local disk: what would be archived and deleted is not what was spooled.
  if (typeof doc.lines_sha256 !== 'string' || typeof doc.index_sha256 !== 'string') return { usable: false, reason: 'no checksum' };
  if (sha256Hex(Buffer.from(r.lines_base64, 'base64')) !== doc.lines_sha256) return { usable: false, reason: 'the lines do not match their checksum (damaged)' };
  const { lines_base64: _lines, ...index } = r;
  if (sha256Hex(spooledIndexText(index)) !== doc.index_sha256) return { usable: false, reason: 'the keys or versions do not match their checksum (damaged)' };
  return { usable: true };
}

export interface SpooledBatch {
  key: string;
  doc: FallbackBatch | undefined;
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
        out.push({ key, doc: body === undefined ? undefined : (JSON.parse(body.toString('utf8')) as FallbackBatch) });
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
      const check = item.doc === undefined ? { usable: false as const, reason: item.problem ?? 'unreadable' } : checkFallbackBatch(item.doc, plan, new Date(), this.retentionDays);
      if (!check.usable) {
        this.logger.warn({ file: item.key, reason: check.reason }, 'discarding a spooled batch; its rows are still in the table and are read again');
        await this.dir.delete(item.key);
        discarded++;
        continue;
      }
      // Rows a legal hold placed since the spool now matches must not reach the archive, not even
      // in an upload the delete would then rewrite (found in review: a versioned bucket keeps it).
      const spooled = item.doc!.rows;
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
