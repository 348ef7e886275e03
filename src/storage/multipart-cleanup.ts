/**
 * Which leftovers of interrupted multipart uploads may be removed. Pure: the S3 store lists, this
 * decides, the store aborts and deletes.
 *
 * An upload is an orphan only when all of these hold:
 *   - its key is one this tool writes (a data object or sidecar in the archive layout, or state
 *     under `_auditlog/`): with an empty prefix the bucket may hold other applications' uploads;
 *   - it was initiated before the cutoff (an upload without a date is never touched);
 *   - this process is not uploading it (an age threshold alone would not protect a long upload).
 * A resume record is an orphan when this cleanup aborted its upload, or when its upload is not
 * listed and the record is older than the cutoff too: a record younger than the listing may
 * belong to an upload created after the listing was taken.
 */
import { MULTIPART_STATE_PREFIX, type MultipartState } from './multipart-state.js';
import { METADATA_SUFFIX, STATE_PREFIX, isDataKey } from '../core/archive-layout.js';

export interface ListedUpload {
  /** Relative to the store prefix. */
  key: string;
  uploadId: string;
  initiated?: Date;
}

export interface ListedStateRecord {
  /** Relative to the store prefix, under `_auditlog/multipart/`. */
  key: string;
  /** Undefined when unreadable or not a record this version writes. */
  state?: MultipartState;
  lastModified?: Date;
}

const PARTITIONED_OBJECT = /\/year=\d{4}\/month=\d{2}\/day=\d{2}\/[^/]+$/;

/** Whether a key (relative to the prefix) is one the archiver writes. */
export function isArchiverKey(key: string): boolean {
  if (key.startsWith(STATE_PREFIX)) return true;
  return (isDataKey(key) || key.endsWith(METADATA_SUFFIX)) && PARTITIONED_OBJECT.test(key);
}

export function selectOrphanUploads(
  uploads: readonly ListedUpload[],
  options: { cutoff: Date; inFlight: ReadonlySet<string> },
): { orphans: ListedUpload[]; kept: number } {
  const orphans = uploads.filter(
    (u) => isArchiverKey(u.key) && u.initiated !== undefined && u.initiated.getTime() < options.cutoff.getTime() && !options.inFlight.has(u.uploadId),
  );
  return { orphans, kept: uploads.length - orphans.length };
}

export function selectOrphanStateRecords(
  records: readonly ListedStateRecord[],
  options: { cutoff: Date; liveUploadIds: ReadonlySet<string>; abortedUploadIds: ReadonlySet<string>; inFlight: ReadonlySet<string> },
): { orphans: ListedStateRecord[]; kept: number } {
  const orphans = records.filter((r) => {
    if (!r.key.startsWith(MULTIPART_STATE_PREFIX)) return false;
    if (r.state !== undefined && options.abortedUploadIds.has(r.state.upload_id)) return true;
    if (r.state !== undefined && (options.liveUploadIds.has(r.state.upload_id) || options.inFlight.has(r.state.upload_id))) return false;
    const created = r.state === undefined ? r.lastModified : new Date(r.state.created_at);
    // An unparseable date or none at all: never old enough.
    return created !== undefined && Number.isFinite(created.getTime()) && created.getTime() < options.cutoff.getTime();
  });
  return { orphans, kept: records.length - orphans.length };
}
