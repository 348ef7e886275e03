/**
 * `--check-audit`: every object the audit trail records as committed for a validated table is
 * still in the store. A batch removed whole — data object and sidecar, by a lifecycle expiration
 * rule or an `rm -r` of a day — leaves nothing under the table's prefix for the other checks to
 * find; only the trail still says it was there (docs/validate.md, "Checks").
 *
 * Records naming committed objects (audit-subscriber.ts): ARCHIVE_PROGRESS (batches committed
 * before their markers were removed), ARCHIVE_RECONCILED (a batch a later run confirmed), and the
 * table-level ARCHIVE_SUCCESS / ARCHIVE_FAILURE (every batch of the table the run committed — a
 * failure record lists those committed before the failure). Every key they list is a committed
 * object: batches that never committed are never recorded, and the tool never deletes or moves a
 * committed object. The run-level end records (no table), starts, restores, holds and errors name
 * no object.
 *
 * The trail is read once, streamed through the trail readers of `audit list` (storage and/or
 * database backend), after the archive was listed: a recorded key the listing does not hold is
 * asked of the store again before it is reported, so a batch committed between the listing and
 * the reading of the trail is not taken for a missing one. Memory: the listing (held anyway) and
 * the recorded keys that are not in it.
 */
import { isAuditRecordShape, type AuditRecord } from '../compliance/audit-record.js';
import type { StoredAuditRecord } from '../compliance/verify-audit-chain.js';
import { legacyTablePrefix, metadataKeyFor } from '../core/archive-layout.js';
import { mapOrdered } from '../core/map-ordered.js';
import { AuditlogError, describeError } from '../core/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import { classifyKey } from './classify-key.js';
import type { Finding } from './problem-codes.js';
import { isDayInRange, type DayRange } from './select-partitions.js';

/** One trail to read (`audit list`'s sources: the storage trail, the audit table, or both). */
export interface AuditTrailSource {
  name: string;
  read: () => AsyncIterable<StoredAuditRecord>;
}

/** A validated table, as check-audit needs it. */
export interface AuditCheckTarget {
  database: string;
  schema: string;
  table: string;
  /** The table's prefix (tablePrefix). */
  prefix: string;
  /** Data objects the listing found (committed or not). */
  listedDataKeys: ReadonlySet<string>;
}

/** A recorded committed object the listing did not find, with the first record naming it. */
export interface RecordedObject {
  /** The key as the trail records it. */
  recordedKey: string;
  /** Where validate looks for it (the recorded key, or its place under the table's current prefix for an old-layout key). */
  key: string;
  runId: string;
  event: string;
  at: string;
  /** ARCHIVE_RECONCILED: the run that wrote the object and deleted its rows. */
  batchRunId?: string;
  /** The other trail's source name, for the message. */
  source: string;
}

export interface AuditTrailSummary {
  /** The trails read (`storage …`, `table public.auditlog_audit_trail`). */
  sources: string[];
  /** Records read, over all sources. */
  records: number;
  /** Records that are not JSON of the record's shape: they may have named objects, so the check is incomplete. */
  unreadable: number;
  /** Committed-object entries of the records in the validated scope (an object named by several records counts each time). */
  recordedObjects: number;
}

/** Events whose `object_keys` are committed objects (table-level records only). */
const COMMITTED_OBJECT_EVENTS: ReadonlySet<string> = new Set(['ARCHIVE_PROGRESS', 'ARCHIVE_RECONCILED', 'ARCHIVE_SUCCESS', 'ARCHIVE_FAILURE']);

/** The committed objects a record names: none for records of no table or of other events. */
export function committedObjectKeys(record: AuditRecord): string[] {
  if (!COMMITTED_OBJECT_EVENTS.has(record.event) || record.table === null || !Array.isArray(record.object_keys)) return [];
  return record.object_keys.filter((k): k is string => typeof k === 'string');
}

/**
 * Reads every source and returns, per target (same order), the recorded committed objects of the
 * validated days that the listing did not find. Throws a one-line error when a trail cannot be read.
 */
export async function collectUnlistedRecordedObjects(
  sources: readonly AuditTrailSource[],
  targets: readonly AuditCheckTarget[],
  range: DayRange | undefined,
  onRecord?: (records: number) => void,
): Promise<{ unlisted: Map<string, RecordedObject>[]; summary: AuditTrailSummary }> {
  const unlisted = targets.map(() => new Map<string, RecordedObject>());
  const summary: AuditTrailSummary = { sources: sources.map((s) => s.name), records: 0, unreadable: 0, recordedObjects: 0 };
  const byTable = new Map<string, number[]>();
  targets.forEach((t, i) => {
    const id = JSON.stringify([t.database, t.schema, t.table]);
    byTable.set(id, [...(byTable.get(id) ?? []), i]);
  });
  for (const source of sources) {
    try {
      for await (const stored of source.read()) {
        summary.records++;
        onRecord?.(summary.records);
        let record: AuditRecord;
        try {
          const parsed = JSON.parse(stored.body.toString('utf8')) as unknown;
          if (!isAuditRecordShape(parsed)) throw new Error('not an audit record');
          record = parsed;
        } catch {
          summary.unreadable++;
          continue;
        }
        const keys = committedObjectKeys(record);
        if (keys.length === 0) continue;
        const indexes = byTable.get(JSON.stringify([record.database, record.schema, record.table]));
        if (indexes === undefined) continue;
        for (const i of indexes) {
          const target = targets[i]!;
          for (const recordedKey of keys) {
            const key = validatedKey(target, recordedKey);
            if (key === undefined) continue;
            const day = classifyKey(key.slice(target.prefix.length));
            if (day.kind !== 'data' || !isDayInRange(day.day, range)) continue;
            summary.recordedObjects++;
            if (target.listedDataKeys.has(key) || unlisted[i]!.has(recordedKey)) continue;
            const batchRunId = record.details?.batch_run_id;
            unlisted[i]!.set(recordedKey, {
              recordedKey,
              key,
              runId: record.run_id,
              event: record.event,
              at: record.at,
              source: source.name,
              ...(typeof batchRunId === 'string' ? { batchRunId } : {}),
            });
          }
        }
      }
    } catch (error) {
      throw trailReadError(source, error);
    }
  }
  return { unlisted, summary };
}

/**
 * Where validate expects a recorded key of the table: under its prefix as recorded, or — a key
 * written by a version before schema dots were escaped (legacy-prefix.ts) — at the same place
 * under the current prefix, where operations.md says to move it. undefined: not under either.
 */
function validatedKey(target: AuditCheckTarget, recordedKey: string): string | undefined {
  if (recordedKey.startsWith(target.prefix)) return recordedKey;
  const legacy = legacyTablePrefix(target.database, target.schema, target.table);
  if (legacy !== undefined && recordedKey.startsWith(legacy)) return target.prefix + recordedKey.slice(legacy.length);
  return undefined;
}

/**
 * The recorded objects that are really gone: not in the store now (asked again: the batch may
 * have been committed after the listing), and not already reported as ORPHAN_METADATA (the sidecar
 * is there, its data object is not: one damage, one finding). An old-layout key that was not moved
 * is still where it was written: not missing (`archive` warns that it should be moved).
 */
export async function missingObjectFindings(store: ObjectStore, unlisted: Map<string, RecordedObject>, tableFindings: readonly Finding[], concurrency: number): Promise<Finding[]> {
  const orphans = new Set(tableFindings.filter((f) => f.code === 'ORPHAN_METADATA').map((f) => f.key));
  const candidates = [...unlisted.values()].filter((o) => !orphans.has(metadataKeyFor(o.key)));
  const out: Finding[] = [];
  // One HEAD (two for an old-layout key) per candidate, a few at once: a lifecycle rule may have
  // expired many days.
  const stillGone = async (o: RecordedObject): Promise<boolean> => {
    if ((await store.head(o.key)) !== undefined) return false;
    return o.recordedKey === o.key || (await store.head(o.recordedKey)) === undefined;
  };
  const checked = mapOrdered(candidates, concurrency, async (o) => ({ o, gone: await stillGone(o) }));
  for await (const { o, gone } of checked) if (gone) out.push(missingObject(o));
  return out;
}

function missingObject(o: RecordedObject): Finding {
  const by = o.batchRunId === undefined || o.batchRunId === o.runId ? `run ${o.runId}` : `run ${o.runId} (written by run ${o.batchRunId})`;
  const moved = o.recordedKey === o.key ? '' : ` (written as ${o.recordedKey} before schema dots were escaped; looked for there too)`;
  return {
    code: 'MISSING_OBJECT',
    key: o.key,
    runId: o.runId,
    message: `the audit trail records this object as committed (${o.event} of ${by} at ${o.at}, ${o.source}), and it is not in the store${moved}: its rows were deleted from the table and may be lost — restore the object and its sidecar from a backup or a versioned bucket (bucket versioning keeps deleted objects as noncurrent versions), and check lifecycle expiration rules on the prefix`,
  };
}

/** One line naming the trail and the fix; the error's own code (STORAGE_*, DB_*, CONFIG_INVALID) is kept: scripts match on it. */
function trailReadError(source: AuditTrailSource, error: unknown): AuditlogError {
  const what = `--check-audit: the audit trail (${source.name}) could not be read`;
  if (error instanceof AuditlogError) return new AuditlogError(error.code, `${what}: ${error.message}`, { cause: error, details: error.details });
  return new AuditlogError('STORAGE_IO', `${what} (${describeError(error)}); check access to it, or validate without --check-audit`, { cause: error });
}
