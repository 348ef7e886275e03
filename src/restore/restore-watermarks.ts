/**
 * Restore watermarks: which archive objects were restored into which target, so a rerun skips
 * them (unless --ignore-watermark). Kept like the archive watermarks (`watermarks.backend`):
 * a JSON document per (archived table, target) under `_auditlog/restore-state/` in the bucket or
 * directory, or rows of `auditlog_restore_watermarks` in the watermark schema of the database.
 * The database variant is written in the same transaction as the object's last rows, so rows
 * and record commit together; the storage variant after the batches' COMMITs, at most every
 * RECORD_INTERVAL_MS and at the end of the load (a crash in between restores those objects again
 * on rerun, which `--conflict skip` makes harmless). Once per batch, each write of the whole
 * document made a restore of n objects write n²/2 entries: 1.7 GB to restore 3,300 objects of
 * two rows (found by probing). With
 * either, an object split over batches is recorded with its last part only (load-objects.ts).
 * An entry counts only for the exact object bytes (SHA-256): a rewritten object is restored again.
 * And only for the table it was loaded into (its oid): a target dropped since, or dropped and
 * created again, is restored into afresh (found by probing: a dropped --target-table was reported
 * "already restored" and not created again).
 */
import { STATE_PREFIX, encodeKeySegment, encodeSchemaSegment, tablePrefix } from '../core/archive-layout.js';
import type { Config } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from '../db/queryable.js';
import { quoteQualified } from '../db/quote-ident.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { TableId } from '../state/table-state.js';

export const RESTORE_STATE_FORMAT = 'auditlog-restore-state';
export const RESTORE_WATERMARK_TABLE = 'auditlog_restore_watermarks';

export interface RestoredObject {
  sha256_compressed: string;
  rows: number;
  run_id: string;
  restored_at: string;
  /**
   * pg_class oid of the target the rows went into. Absent in entries written by earlier versions:
   * those count for whatever table bears the target's name, as they always did.
   */
  target_oid?: string;
}

/**
 * Pure: whether an object counts as restored into the target as it is now (`targetOid`, undefined
 * when no such table exists). The oid, not the relfilenode: VACUUM FULL, CLUSTER and rewriting
 * ALTER TABLEs change the relfilenode of a table that still holds every restored row, and a rerun
 * would then load everything again (and fail at the first row under --conflict fail). TRUNCATE
 * and DELETE therefore go unnoticed, as they always did: --ignore-watermark (docs/restore.md).
 */
export function isRestoredInto(entry: RestoredObject | undefined, sha256Compressed: string, targetOid: string | undefined): boolean {
  if (entry === undefined || targetOid === undefined || entry.sha256_compressed !== sha256Compressed) return false;
  return entry.target_oid === undefined || entry.target_oid === targetOid;
}

/** The store, recording every entry with the target's oid (known once the target is resolved or created). */
export function recordingTargetOid(store: RestoreWatermarkStore, targetOid: string): RestoreWatermarkStore {
  return {
    description: store.description,
    transactional: store.transactional,
    load: (id, target) => store.load(id, target),
    prepare: () => store.prepare(),
    record: (q, id, target, entries) => store.record(q, id, target, new Map([...entries].map(([key, entry]) => [key, { ...entry, target_oid: targetOid }]))),
    flush: () => store.flush(),
  };
}

export interface RestoreTarget {
  schema: string;
  table: string;
}

export interface RestoreWatermarkStore {
  readonly description: string;
  /** Objects already restored into the target, by object key. */
  load(id: TableId, target: RestoreTarget): Promise<Map<string, RestoredObject>>;
  /** Prepares storage (creates the table) before any transaction uses `record`. */
  prepare(): Promise<void>;
  /** True: `record` must run inside the object's load transaction (`q` is that transaction). */
  readonly transactional: boolean;
  record(q: Queryable, id: TableId, target: RestoreTarget, entries: ReadonlyMap<string, RestoredObject>): Promise<void>;
  /** Writes what `record` has not written yet; called once the load ends, whether it succeeded or not. */
  flush(): Promise<void>;
}

/** How often, at most, the storage variant writes its document during a load (ms). */
export const RECORD_INTERVAL_MS = 2_000;

/** `_auditlog/restore-state/<database>/<schema>.<table>/<target schema>.<target table>.json` */
export function restoreStateKey(id: TableId, target: RestoreTarget): string {
  return `${STATE_PREFIX}restore-state/${tablePrefix(id.database, id.schema, id.table)}${encodeSchemaSegment(target.schema)}.${encodeKeySegment(target.table)}.json`;
}

interface RestoreStateDocument {
  format: typeof RESTORE_STATE_FORMAT;
  format_version: 1;
  database: string;
  schema: string;
  table: string;
  target: RestoreTarget;
  objects: Record<string, RestoredObject>;
}

export class ObjectRestoreWatermarkStore implements RestoreWatermarkStore {
  readonly description: string;
  readonly transactional = false;
  private readonly docs = new Map<string, RestoreStateDocument>();
  /** Writes one after another: concurrent batches must not let an older document overwrite a newer one. */
  private writes: Promise<void> = Promise.resolve();
  /** Documents with entries not written yet, and when each was last written (performance.now()). */
  private readonly dirty = new Set<string>();
  private readonly lastWritten = new Map<string, number>();

  constructor(private readonly store: ObjectStore) {
    this.description = `${store.description} (_auditlog/restore-state/)`;
  }

  async prepare(): Promise<void> {}

  async load(id: TableId, target: RestoreTarget): Promise<Map<string, RestoredObject>> {
    const doc = await this.read(id, target, true);
    return new Map(Object.entries(doc.objects));
  }

  async record(_q: Queryable, id: TableId, target: RestoreTarget, entries: ReadonlyMap<string, RestoredObject>): Promise<void> {
    if (entries.size === 0) return;
    const key = restoreStateKey(id, target);
    const doc = await this.read(id, target);
    for (const [object, entry] of entries) doc.objects[object] = entry;
    this.dirty.add(key);
    if (performance.now() - (this.lastWritten.get(key) ?? -Infinity) >= RECORD_INTERVAL_MS) await this.write(key);
  }

  async flush(): Promise<void> {
    for (const key of [...this.dirty]) await this.write(key);
  }

  /** The document as it is now in memory; one write after another, each of the latest state. */
  private async write(key: string): Promise<void> {
    const write = this.writes.then(async () => {
      if (!this.dirty.has(key)) return;
      this.dirty.delete(key);
      this.lastWritten.set(key, performance.now());
      const doc = this.docs.get(key)!;
      try {
        await this.store.put(key, Buffer.from(JSON.stringify(doc, null, 1) + '\n', 'utf8'), { contentType: 'application/json' });
      } catch (error) {
        this.dirty.add(key);
        throw error;
      }
    });
    this.writes = write.catch(() => undefined);
    await write;
  }

  /** `strict`: an unreadable document is an error; otherwise (--ignore-watermark) it is started afresh. */
  private async read(id: TableId, target: RestoreTarget, strict = false): Promise<RestoreStateDocument> {
    const key = restoreStateKey(id, target);
    let doc = this.docs.get(key);
    if (doc === undefined) {
      const body = await this.store.get(key);
      let parsed: unknown;
      try {
        parsed = body === undefined ? undefined : JSON.parse(body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      // JSON of another shape (`null`, another format, no objects) is as unreadable as a broken
      // document: taken as "nothing restored", it loaded everything again, twice into a target
      // without a key (found by probing).
      if (strict && body !== undefined && !isRestoreStateDocument(parsed)) {
        throw new AuditlogError('STORAGE_IO', `restore watermark ${key} is unreadable; pass --ignore-watermark to restore everything selected again (it is then rewritten)`, { details: { key } });
      }
      // Two batches recording at once both read it the first time (record() is no longer in the
      // write queue): the first to finish keeps its document, or one's entries would be lost.
      const read = this.docs.get(key);
      if (read !== undefined) return read;
      doc = isRestoreStateDocument(parsed) ? parsed : { format: RESTORE_STATE_FORMAT, format_version: 1, database: id.database, schema: id.schema, table: id.table, target, objects: {} };
      this.docs.set(key, doc);
    }
    return doc;
  }
}

function isRestoreStateDocument(value: unknown): value is RestoreStateDocument {
  const doc = value as Partial<RestoreStateDocument> | null | undefined;
  return doc?.format === RESTORE_STATE_FORMAT && typeof doc.objects === 'object' && doc.objects !== null && !Array.isArray(doc.objects);
}

export class DatabaseRestoreWatermarkStore implements RestoreWatermarkStore {
  readonly description: string;
  readonly transactional = true;
  private readonly qualified: string;

  /** Nothing waits: every entry committed with its rows. */
  async flush(): Promise<void> {}

  constructor(
    private readonly q: Queryable,
    schema: string,
  ) {
    this.qualified = quoteQualified(schema, RESTORE_WATERMARK_TABLE);
    this.description = `table ${schema}.${RESTORE_WATERMARK_TABLE}`;
  }

  async prepare(): Promise<void> {
    try {
      await this.q.query(
        `CREATE TABLE IF NOT EXISTS ${this.qualified} (
           database_name text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,
           target_schema text NOT NULL, target_table text NOT NULL, object_key text NOT NULL,
           sha256_compressed text NOT NULL, rows bigint NOT NULL, run_id text NOT NULL, restored_at timestamptz NOT NULL DEFAULT now(),
           target_oid oid,
           PRIMARY KEY (database_name, schema_name, table_name, target_schema, target_table, object_key))`,
      );
    } catch (error) {
      // Two restores creating it at once: one wins, the other sees a duplicate catalog row.
      const code = (error as { code?: string }).code;
      if (code !== '23505' && code !== '42P07') throw error;
    }
    // Created by an earlier version, without target_oid: added once (checked first, so that
    // later runs take no ACCESS EXCLUSIVE lock on it).
    const has = await this.q.query<{ found: string }>(
      `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = 'target_oid' AND NOT attisdropped)::text AS found`,
      [this.qualified],
    );
    if (has.rows[0]?.found === 'true') return;
    try {
      await this.q.query(`ALTER TABLE ${this.qualified} ADD COLUMN IF NOT EXISTS target_oid oid`);
    } catch (error) {
      if ((error as { code?: string }).code !== '42501') throw error;
      throw new AuditlogError(
        'DB_PRIVILEGE',
        `restore watermark ${this.description} lacks the column target_oid this version records, and the restoring role may not add it; run ALTER TABLE ${this.qualified} ADD COLUMN target_oid oid as its owner. Nothing was restored`,
        { cause: error },
      );
    }
  }

  async load(id: TableId, target: RestoreTarget): Promise<Map<string, RestoredObject>> {
    const exists = await this.q.query<{ found: string }>('SELECT (pg_catalog.to_regclass($1) IS NOT NULL)::text AS found', [this.qualified]);
    if (exists.rows[0]?.found !== 'true') return new Map();
    // to_jsonb: a table of an earlier version has no target_oid column (prepare() adds it, but a
    // dry run does not prepare); its entries then read as without one.
    const r = await this.q.query<{ object_key: string; sha256_compressed: string; rows: string; run_id: string; restored_at: string; target_oid: string | null }>(
      `SELECT object_key, sha256_compressed, rows::text AS rows, run_id, restored_at::text AS restored_at, pg_catalog.to_jsonb(w) ->> 'target_oid' AS target_oid FROM ${this.qualified} w
        WHERE database_name = $1 AND schema_name = $2 AND table_name = $3 AND target_schema = $4 AND target_table = $5`,
      [id.database, id.schema, id.table, target.schema, target.table],
    );
    return new Map(
      r.rows.map((row) => [
        row.object_key,
        { sha256_compressed: row.sha256_compressed, rows: Number(row.rows), run_id: row.run_id, restored_at: row.restored_at, ...(row.target_oid === null ? {} : { target_oid: row.target_oid }) },
      ]),
    );
  }

  async record(q: Queryable, id: TableId, target: RestoreTarget, entries: ReadonlyMap<string, RestoredObject>): Promise<void> {
    for (const [key, entry] of entries) await this.recordOne(q, id, target, key, entry);
  }

  private async recordOne(q: Queryable, id: TableId, target: RestoreTarget, key: string, entry: RestoredObject): Promise<void> {
    await q.query(
      `INSERT INTO ${this.qualified} (database_name, schema_name, table_name, target_schema, target_table, object_key, sha256_compressed, rows, run_id, restored_at, target_oid)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::timestamptz, $11::oid)
       ON CONFLICT (database_name, schema_name, table_name, target_schema, target_table, object_key)
       DO UPDATE SET sha256_compressed = EXCLUDED.sha256_compressed, rows = EXCLUDED.rows, run_id = EXCLUDED.run_id, restored_at = EXCLUDED.restored_at, target_oid = EXCLUDED.target_oid`,
      [id.database, id.schema, id.table, target.schema, target.table, key, entry.sha256_compressed, entry.rows, entry.run_id, entry.restored_at, entry.target_oid ?? null],
    );
  }
}

export function openRestoreWatermarks(config: Pick<Config, 'watermarks'>, store: ObjectStore, q: Queryable): RestoreWatermarkStore {
  return config.watermarks.backend === 'database' ? new DatabaseRestoreWatermarkStore(q, config.watermarks.schema) : new ObjectRestoreWatermarkStore(store);
}
