/**
 * Where archives live. Use cases depend on this interface only; `s3-object-store.ts` and
 * `local-object-store.ts` implement it. Keys are '/'-separated, relative to the store's root
 * (the S3 prefix or the local directory), never starting with '/'.
 *
 * Implementations translate their own failures into AuditlogError codes:
 * STORAGE_UNREACHABLE (network, DNS, timeouts, 5xx after retries), STORAGE_ACCESS (403, bad
 * credentials, clock skew), STORAGE_NOT_FOUND (bucket missing), STORAGE_IO (anything else).
 * A missing *object* is not an error: `head`/`get` return undefined.
 */
export interface PutOptions {
  /** Hex SHA-256 of `body`; S3 checks it server-side (ChecksumSHA256), so a corrupted upload is refused. */
  sha256Hex?: string;
  contentType?: string;
  /** Apply the configured storage class/SSE (data objects); metadata sidecars stay in STANDARD. */
  isDataObject?: boolean;
  /**
   * Ask the store to confirm it received exactly these bytes, where it can do so without reading
   * them back (S3: the ETag of a single-part PUT is the MD5 of what the server stored, unless the
   * object is encrypted with KMS or a customer key). The answer is PutResult.bytesConfirmed.
   */
  confirmBytes?: boolean;
  /**
   * Create-only: write the object only if nothing is at the key (S3: `If-None-Match: *`; local:
   * a no-replace link). When something is, nothing is written and the put resolves with
   * `PutResult.alreadyExists` — an answer, not a failure. Only meaningful on a store whose
   * `conditionalCreate()` resolved true; elsewhere the caller must not ask for it.
   */
  ifAbsent?: boolean;
}

export interface PutResult {
  /**
   * True only when the store proved, from its own answer to this PUT, that it holds exactly the
   * bytes written. False or absent means "not proven" (never "damaged"): read the object back.
   */
  bytesConfirmed?: boolean;
  /**
   * Set only for an `ifAbsent` put that was refused because an object is already at the key (S3
   * 412 PreconditionFailed, local EEXIST): nothing was written. It may be this put's own earlier
   * attempt (a retry after a lost answer) or anyone else's write: the caller compares content.
   */
  alreadyExists?: boolean;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** When the store reports it (list on S3): the object's last write. */
  lastModified?: Date;
  /** Server-side encryption the store reports for the object, when it reports one. */
  serverSideEncryption?: string;
}

export interface ListOptions {
  startAfter?: string;
}

export interface CheckOptions {
  /** Aborted: give the check up now (a health check past its timeout, a stop requested). */
  signal?: AbortSignal;
  /**
   * A dry run's check (and `config validate`'s): prove what writing needs without writing anything.
   * Local: the directory's permissions, or those of the nearest parent it would be created in,
   * instead of a probe file written in it (which created a missing directory). S3's check only
   * reads (HeadBucket) either way.
   */
  writeNothing?: boolean;
  /**
   * A health probe's check: it may write its probe file, but leaves nothing behind, not even a
   * missing local directory (checked then as writeNothing checks it). `health` created it, after
   * which the read-only commands no longer told a mistyped local.path from an empty archive.
   */
  createNothing?: boolean;
}

export interface ObjectStore {
  /** A human-readable location for messages, e.g. `s3://bucket/prefix/` or `/var/archive/`. Never contains secrets. */
  readonly description: string;
  /** Writes the whole object. Atomic: readers see the old object or the new one, never a part. */
  put(key: string, body: Buffer, options?: PutOptions): Promise<PutResult | void>;
  /** Reads the whole object; undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Deletes many objects in as few requests as the store allows (S3: DeleteObjects, 1,000 keys a
   * request). Missing objects are not an error. A request that fails as a whole throws like
   * `delete`; keys the store refused one by one are returned in `failed`, and every other key is gone.
   */
  deleteMany(keys: readonly string[]): Promise<DeleteManyResult>;
  /**
   * Every object under the prefix (recursively), in key order. With `startAfter` (a full key, not
   * a prefix), only keys that sort after it: a store may ignore it and list more, so a caller that
   * relies on it filters too.
   */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /**
   * Proves the store is reachable and writable-in-principle (bucket exists, credentials accepted).
   * With `signal`, an abort ends the check at once, request in flight and retries included, with
   * the signal's reason (an AuditlogError as it is, anything else as STORAGE_UNREACHABLE).
   */
  check(options?: CheckOptions): Promise<void>;
  /**
   * Whether `put` honours `ifAbsent` atomically on this store. Found once per store and cached (S3:
   * a probe object PUT twice with If-None-Match under `_auditlog/probe/`; local: always). Never
   * throws: a probe that cannot tell answers false, and the caller keeps to HEAD-then-PUT. A
   * store without it (wrappers, test doubles) has no conditional create.
   */
  conditionalCreate?(): Promise<ConditionalCreateSupport>;
  /**
   * Removes what interrupted writes older than `olderThan` left behind: incomplete multipart
   * uploads under the prefix and their resume records (S3), temp files of atomic writes (local).
   * Never touches a committed object, nor a write this process has in flight.
   */
  cleanupInterrupted?(options: CleanupOptions): Promise<CleanupReport>;
}

export interface ConditionalCreateSupport {
  supported: boolean;
  /** One line for the log, no secrets: why it is or is not supported. */
  reason: string;
}

export interface DeleteManyResult {
  /** Keys that are still there, each with a one-line reason (no secrets). */
  failed: DeleteFailure[];
}

export interface DeleteFailure {
  key: string;
  reason: string;
}

export interface CleanupOptions {
  /** Leftovers started before this instant are removed; later ones may still be in progress elsewhere. */
  olderThan: Date;
  /** Report what would be removed, remove nothing. */
  dryRun: boolean;
}

export type CleanupKind = 'multipart-upload' | 'multipart-state' | 'temp-file';

export interface CleanupItem {
  kind: CleanupKind;
  /** Relative to the store root, like every other key. */
  key: string;
  uploadId?: string;
  /** When the leftover was started (ISO 8601), when known. */
  since?: string;
  action: 'aborted' | 'deleted' | 'would-abort' | 'would-delete' | 'failed';
  /** Why it failed (one line, no secrets): only with `action: failed`. */
  error?: string;
}

export interface CleanupReport {
  items: CleanupItem[];
  /** Leftovers seen but kept: too young, in flight in this process, or not written by this tool. */
  kept: number;
}
