/**
 * `auditlog validate`: checks every selected table's part of the archive (docs/validate.md).
 * Reads the store (and, with checkDatabase, the tables; with auditSources, the audit trail) and
 * never writes to any of them. Objects are
 * checked a few at a time; each is read whole in its stored (compressed) form and streamed through
 * decompression, so memory grows with the concurrency and the object size, not with the archive.
 */
import type { Config, DatabaseConfig, TableConfig } from '../config/schema.js';
import { sha256Hex } from '../core/batch-metadata.js';
import { METADATA_SUFFIX, tablePrefix } from '../core/archive-layout.js';
import { COMPRESSIONS, COMPRESSION_SPECS, sidecarCompression } from '../core/compression.js';
import type { ObjectStore } from '../storage/object-store.js';
import { DecoderFailedError, decoderFailure } from '../archive/codec.js';
import { readBatchObjectState } from '../storage/batch-object-state.js';
import { DataLineChecker } from './check-data-lines.js';
import { collectUnlistedRecordedObjects, missingObjectFindings, type AuditTrailSource, type AuditTrailSummary, type RecordedObject } from './check-audit.js';
import { withDatabaseChecks, type RowPresenceCheck } from './check-database.js';
import { checkMetadata, type TableIdentity } from './check-metadata.js';
import { DuplicateKeyTracker } from './duplicate-keys.js';
import { listTableObjects, type ListedObject, type TableListing } from './list-table-objects.js';
import type { Finding } from './problem-codes.js';
import type { DayRange } from './select-partitions.js';
import { streamObjectLines } from './stream-object-lines.js';
import { buildReport, summarizeTable, type TableValidation, type ValidationReport } from './validate-report.js';

export interface ValidateProgress {
  objectsDone: number;
  objectsTotal: number;
  /** Stored bytes read or listed so far. */
  bytesDone: number;
}

export interface ValidateOptions {
  config: Config;
  store: ObjectStore;
  /** The configured databases narrowed to --database/--table. */
  databases: DatabaseConfig[];
  range?: DayRange;
  /** true: always read contents; false/undefined: only when at most deepThreshold objects are selected. */
  deep?: boolean;
  deepThreshold: number;
  concurrency: number;
  checkDatabase: boolean;
  /** --check-audit: the trail(s) to read; every committed object they record in the selection must be in the store. */
  auditSources?: readonly AuditTrailSource[];
  secrets?: readonly string[];
  onProgress?: (progress: ValidateProgress) => void;
  /** Records of the audit trail read so far (--check-audit). */
  onAuditProgress?: (records: number) => void;
  now?: () => number;
}

interface TableTarget {
  db: DatabaseConfig;
  table: TableConfig;
  id: TableIdentity;
  prefix: string;
  listing: TableListing;
}

export async function validateArchive(options: ValidateOptions): Promise<ValidationReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const targets: TableTarget[] = [];
  for (const db of options.databases) {
    for (const table of db.tables) {
      const prefix = tablePrefix(db.name, table.schema, table.name);
      targets.push({ db, table, id: { database: db.name, schema: table.schema, table: table.name }, prefix, listing: await listTableObjects(options.store, prefix, options.range) });
    }
  }
  // Read after the listing: a recorded key the listing lacks is asked of the store again before it
  // is reported (check-audit.ts), so a batch an archive run commits meanwhile is not "missing".
  let audit: { unlisted: Map<string, RecordedObject>[]; summary: AuditTrailSummary } | undefined;
  if (options.auditSources !== undefined) {
    const auditTargets = targets.map((t) => ({ ...t.id, prefix: t.prefix, listedDataKeys: new Set(t.listing.objects.filter((o) => o.dataSize !== undefined).map((o) => o.dataKey)) }));
    audit = await collectUnlistedRecordedObjects(options.auditSources, auditTargets, options.range, options.onAuditProgress);
  }
  const dataObjects = targets.reduce((n, t) => n + t.listing.objects.filter((o) => o.dataSize !== undefined).length, 0);
  const deep = options.deep === true || dataObjects <= options.deepThreshold;
  const progress: ValidateProgress = { objectsDone: 0, objectsTotal: targets.reduce((n, t) => n + t.listing.objects.length, 0), bytesDone: 0 };
  const tables: TableValidation[] = [];
  for (const db of options.databases) {
    const mine = targets.filter((t) => t.db === db);
    const run = async (presence?: (table: TableConfig) => Promise<RowPresenceCheck>): Promise<void> => {
      for (const t of mine) tables.push(await validateTable(t, { ...options, deep, progress }, presence === undefined ? undefined : await presence(t.table), audit?.unlisted[targets.indexOf(t)]));
    };
    if (options.checkDatabase) await withDatabaseChecks(options.config, db, options.secrets ?? [], run);
    else await run();
  }
  return buildReport(tables, { deep, range: options.range, checkDatabase: options.checkDatabase, ...(audit === undefined ? {} : { audit: audit.summary }), durationMs: now() - started });
}

interface TableRun extends ValidateOptions {
  deep: boolean;
  progress: ValidateProgress;
}

async function validateTable(target: TableTarget, run: TableRun, presence: RowPresenceCheck | undefined, recordedUnlisted: Map<string, RecordedObject> | undefined): Promise<TableValidation> {
  const { objects, strays } = target.listing;
  const findings: Finding[] = strays.map((key) => ({
    code: 'STRAY_OBJECT' as const,
    key,
    message: 'not an object this tool writes (no data object or sidecar name in a day partition); move it out of the archive prefix',
  }));
  const duplicates = new DuplicateKeyTracker(objects.map((o) => o.day));
  const counts = { objects: objects.filter((o) => o.dataSize !== undefined).length, rows: 0, bytes: 0 };
  await forEachLimited(objects, run.concurrency, async (o, index) => {
    counts.bytes += o.dataSize ?? 0;
    const result = await checkObject(run.store, target, o, run.deep);
    findings.push(...result.findings);
    if (result.manifest !== undefined) {
      counts.rows += result.manifest.primaryKeys.length;
      duplicates.add(index, result.manifest.primaryKeys, result.manifest.xmins);
      if (presence !== undefined) findings.push(...(await presence(o.dataKey, result.manifest.primaryKeys, result.manifest.xmins)));
    }
    duplicates.finish(index);
    run.progress.objectsDone++;
    run.progress.bytesDone += (o.dataSize ?? 0) + (o.metadataSize ?? 0);
    run.onProgress?.({ ...run.progress });
  });
  findings.push(...duplicates.findings((i) => objects[i]!.dataKey));
  // After the object checks: a recorded object whose sidecar is still there is ORPHAN_METADATA already.
  if (recordedUnlisted !== undefined) findings.push(...(await missingObjectFindings(run.store, recordedUnlisted, findings, run.concurrency)));
  return summarizeTable(target.id, counts, findings);
}

interface ObjectResult {
  findings: Finding[];
  /** The manifest of a committed object whose sidecar is readable: for the duplicate and database checks. */
  manifest?: { primaryKeys: string[][]; xmins: string[] };
}

async function checkObject(store: ObjectStore, target: { id: TableIdentity; prefix: string }, o: ListedObject, deep: boolean): Promise<ObjectResult> {
  const result = await checkListedObject(store, target.id, o, deep);
  if (!result.findings.some((f) => f.code === 'MISSING_METADATA' || f.code === 'ORPHAN_METADATA')) return result;
  // Objects, then markers, were listed one after the other, and the object was read later still:
  // an archive run at work meanwhile may have committed this batch or given it up. Only a gap
  // that is still there, with no marker, is one (found by probing validate alongside archive).
  // A sidecar listed alone is asked about under the object it describes: the listing named it
  // after the gzip object, and a zstd batch committed meanwhile was reported ORPHAN_METADATA.
  for (const dataKey of o.dataSize === undefined ? await describedDataKeys(store, o) : [o.dataKey]) {
    const now = await readBatchObjectState(store, target.prefix, dataKey);
    switch (now.state) {
      case 'in-flight':
        return checkListedObject(store, target.id, { ...o, dataKey, uncommitted: true }, deep);
      case 'gone':
        return { findings: [] };
      case 'committed':
        // Checked again as it is now; a second gap (it vanished once more) is reported as found.
        return checkListedObject(store, target.id, { ...o, dataKey, dataSize: now.data.size, metadataSize: now.metadata.size }, deep);
    }
    // Still a gap under this name: the next, when an unreadable sidecar left more than one possible.
  }
  return result;
}

async function checkListedObject(store: ObjectStore, table: TableIdentity, o: ListedObject, deep: boolean): Promise<ObjectResult> {
  if (o.uncommitted) {
    const what = o.dataSize === undefined ? 'no data object written yet' : o.metadataSize === undefined ? 'uploaded, no metadata yet' : 'uploaded with metadata';
    return {
      findings: [
        {
          code: 'UNCOMMITTED_OBJECT',
          key: o.dataKey,
          message: `a pending marker says this batch's delete may not have committed (${what}): a run is in progress (committed batches' markers are removed in bulk, shortly after their commit), was cut short, or could not remove its markers; the next \`auditlog archive\` run reconciles it against the table — not trusted until then`,
        },
      ],
    };
  }
  if (o.metadataSize === undefined) {
    return { findings: [{ code: 'MISSING_METADATA', key: o.dataKey, message: 'data object without its .metadata.json sidecar; restore the sidecar from a backup, or check the object by hand (docs/format.md)' }] };
  }
  if (o.dataSize === undefined) return { findings: [orphanMetadata({ ...o, dataKey: await describedDataKey(store, o) })] };
  const metaBody = await store.get(o.metadataKey);
  if (metaBody === undefined) return { findings: [{ code: 'MISSING_METADATA', key: o.dataKey, message: 'the metadata sidecar disappeared while validating; validate again' }] };
  const { meta, findings } = checkMetadata(metaBody, o.metadataKey, o.dataKey, table, o.dataSize);
  if (meta === undefined) return { findings };
  const result: ObjectResult = { findings, manifest: { primaryKeys: meta.primary_keys, xmins: meta.xmins } };
  // A wrong size says the bytes are not the archived ones; every content finding would only repeat it.
  if (!deep || findings.some((f) => f.code === 'SIZE_MISMATCH')) return result;
  const body = await store.get(o.dataKey);
  if (body === undefined) return { findings: [orphanMetadata(o)] };
  const sha = sha256Hex(body);
  if (sha !== meta.sha256_compressed) {
    findings.push({ code: 'SHA256_MISMATCH', key: o.dataKey, message: `SHA-256 of the stored bytes is ${sha}, metadata says ${meta.sha256_compressed}; the object was damaged or replaced — restore it from a copy` });
    return result;
  }
  const checker = new DataLineChecker(meta, o.day, o.dataKey);
  try {
    const streamed = await streamObjectLines(body, (line) => checker.addLine(line), { compression: meta.compression, expectedBytes: meta.uncompressed_bytes });
    findings.push(...checker.finish(streamed.sha256Uncompressed));
  } catch (error) {
    // Out of memory says nothing about the object: validate fails rather than report it damaged.
    if (error instanceof DecoderFailedError) throw decoderFailure(o.dataKey, error, 'validate stopped without a report');
    findings.push({ code: 'DECOMPRESS_FAILED', key: o.dataKey, message: `the stored bytes match the metadata but do not decompress (${error instanceof Error ? error.message : String(error)}); the batch was written damaged — its rows cannot be restored from this object` });
  }
  return result;
}

/** The data object a sidecar without one names by its `compression` (the listing could only guess gzip). */
async function describedDataKey(store: ObjectStore, o: ListedObject): Promise<string> {
  return (await describedDataKeys(store, o))[0]!;
}

/**
 * The data objects a sidecar listed without one may describe: the one its `compression` names,
 * or, when it is unreadable (or gone), each codec's, the listing's gzip guess first.
 */
async function describedDataKeys(store: ObjectStore, o: ListedObject): Promise<string[]> {
  const body = await store.get(o.metadataKey).catch(() => undefined);
  const compression = body === undefined ? undefined : sidecarCompression(body);
  const base = o.metadataKey.slice(0, -METADATA_SUFFIX.length);
  if (compression !== undefined) return [base + COMPRESSION_SPECS[compression].dataSuffix];
  return [o.dataKey, ...COMPRESSIONS.map((c) => base + COMPRESSION_SPECS[c].dataSuffix).filter((k) => k !== o.dataKey)];
}

function orphanMetadata(o: ListedObject): Finding {
  return { code: 'ORPHAN_METADATA', key: o.metadataKey, message: `metadata sidecar without its data object ${o.dataKey}; the archived rows are gone from the archive — restore the object from a copy` };
}

/** Runs fn over items with at most `limit` at once; rejects with the first failure. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
