/**
 * ObjectStore over S3 or an S3-compatible server (MinIO, R2, Ceph, ...).
 *
 * Bodies are always Buffers with an explicit ContentLength: a streamed body is sent with
 * aws-chunked framing, which some servers store verbatim (DESIGN.md §5). Large objects go up as
 * a multipart upload of buffered parts. The SDK's retries are off; {@link withRetry} is the only
 * retry layer, so attempts are counted and delays honour Retry-After.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { AuditlogError, isAuditlogError } from '../core/errors.js';
import type { S3Config } from '../config/schema.js';
import type { CheckOptions, CleanupItem, CleanupOptions, CleanupReport, ConditionalCreateSupport, DeleteFailure, DeleteManyResult, ListOptions, ObjectInfo, ObjectStore, PutOptions, PutResult } from './object-store.js';
import { selectOrphanStateRecords, selectOrphanUploads, type ListedStateRecord, type ListedUpload } from './multipart-cleanup.js';
import {
  canResume,
  isSamePart,
  MULTIPART_STATE_PREFIX,
  multipartStateKey,
  parseMultipartState,
  planParts,
  serializeMultipartState,
  type ListedPart,
  type MultipartState,
} from './multipart-state.js';
import { classifyS3Error, IncompleteBodyError, type ErrorClassification } from './retry-policy.js';
import { validateKeyPrefix, validateObjectKey } from './validate-object-key.js';
import { STATE_PREFIX } from '../core/archive-layout.js';
import { verifyPutBody } from './verify-put-body.js';
import { RetryAbortedError, RetryGaveUpError, withRetry, type RetryHooks } from './with-retry.js';

const MIB = 1024 * 1024;
/** S3 refuses parts smaller than this, except the last. */
export const MIN_PART_SIZE_BYTES = 5 * MIB;
const MAX_PARTS = 10_000;
/** S3 takes at most this many keys in one DeleteObjects request. */
export const MAX_KEYS_PER_DELETE_OBJECTS = 1_000;

/** What happened to a multipart upload, for logs. */
export type MultipartEvent =
  | { kind: 'resumed'; key: string; uploadId: string; partsReused: number; partsUploaded: number }
  | { kind: 'restarted'; key: string; reason: 'upload-gone' | 'different-body' | 'unreadable-record' | 'parts-unlistable' };

export interface S3ObjectStoreOptions extends RetryHooks {
  /** Bodies of at least this many bytes go up as a multipart upload. Default: s3.multipart_threshold_mb. */
  multipartThresholdBytes?: number;
  /** Size of each multipart part except the last; at least 5 MiB. Default: s3.multipart_part_size_mb. */
  partSizeBytes?: number;
  /** Parts in flight at once. Default 4. */
  partConcurrency?: number;
  /** Keys per ListObjectsV2 page, uploads per ListMultipartUploads page, parts per ListParts page (S3 caps them at 1000). */
  listPageSize?: number;
  /** After each part the server accepted: the crash tests' hook (AUDITLOG_FAULT=mid-multipart). */
  onPartUploaded?: (event: { key: string; partNumber: number }) => void;
  onMultipart?: (event: MultipartEvent) => void;
}

type Operation = 'put' | 'get' | 'head' | 'delete' | 'delete-many' | 'list' | 'check' | 'list-uploads' | 'list-parts' | 'abort';

/** The IAM action each operation needs, for "access denied" messages. */
const ACTION: Record<Operation, string> = {
  put: 's3:PutObject',
  get: 's3:GetObject',
  head: 's3:GetObject (and s3:ListBucket, without which S3 answers 403 for missing keys)',
  delete: 's3:DeleteObject',
  'delete-many': 's3:DeleteObject',
  list: 's3:ListBucket',
  check: 's3:ListBucket',
  'list-uploads': 's3:ListBucketMultipartUploads',
  'list-parts': 's3:ListMultipartUploadParts',
  abort: 's3:AbortMultipartUpload',
};

export class S3ObjectStore implements ObjectStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly endpointLabel: string;
  private readonly secrets: string[];
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly listPageSize: number;
  private readonly hooks: RetryHooks;
  private readonly onPartUploaded: S3ObjectStoreOptions['onPartUploaded'];
  private readonly onMultipart: S3ObjectStoreOptions['onMultipart'];
  /** Upload ids this process is writing: the cleanup never aborts them, however old. */
  private readonly inFlightUploads = new Set<string>();
  /** Set once the server refused DeleteObjects as unsupported: from then on one DeleteObject per key. */
  private bulkDeleteUnsupported = false;
  /** The one probe of If-None-Match support (see conditionalCreate), shared by every caller. */
  private conditionalProbe: Promise<ConditionalCreateSupport> | undefined;

  constructor(
    private readonly config: S3Config,
    options: S3ObjectStoreOptions = {},
  ) {
    const { sleep, random, onRetry, beforeAttempt, afterAttempt } = options;
    this.hooks = { sleep, random, onRetry, beforeAttempt, afterAttempt };
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.endpointLabel = describeS3Endpoint(config);
    this.description = `s3://${config.bucket}/${config.prefix}`;
    this.secrets = [config.secret_access_key, config.session_token, config.access_key_id, ...endpointSecrets(config.endpoint)].filter(
      (value): value is string => value !== undefined && value.length >= 4,
    );
    this.onPartUploaded = options.onPartUploaded;
    this.onMultipart = options.onMultipart;
    this.multipartThreshold = options.multipartThresholdBytes ?? config.multipart_threshold_mb * MIB;
    this.partSize = Math.max(MIN_PART_SIZE_BYTES, options.partSizeBytes ?? config.multipart_part_size_mb * MIB);
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 4);
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.client = new S3Client(buildClientConfig(config));
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<PutResult> {
    const fullKey = this.toFullKey(key, 'put');
    const digest = options.sha256Hex === undefined ? undefined : verifyPutBody(body, options.sha256Hex, this.target(fullKey));
    if (body.length >= this.multipartThreshold) {
      // The probe proved If-None-Match on PutObject only; a server may still ignore it on
      // CompleteMultipartUpload. So a create-only multipart put also checks the key first, as
      // every put did before create-only writes: never less safe than that.
      if (options.ifAbsent === true && (await this.head(key)) !== undefined) return { alreadyExists: true };
      // A multipart ETag is not the MD5 of the object: nothing to confirm from it.
      const created = await this.putMultipart(fullKey, body, options, digest !== undefined);
      return created ? {} : { alreadyExists: true };
    }
    const output = await this.run('put', fullKey, async () => {
      try {
        return await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: fullKey,
            Body: body,
            ContentLength: body.length,
            ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
            ...(digest === undefined ? {} : { ChecksumSHA256: digest.toString('base64') }),
            ...(options.ifAbsent === true ? { IfNoneMatch: '*' } : {}),
            ...this.writeSettings(options),
          }),
        );
      } catch (error) {
        // Inside the retried function: a retry whose first attempt landed is refused the same way.
        if (options.ifAbsent === true && isPreconditionFailed(error)) return 'exists' as const;
        throw error;
      }
    });
    if (output === 'exists') return { alreadyExists: true };
    return options.confirmBytes === true ? { bytesConfirmed: etagIsMd5Of(output.ETag, body) } : {};
  }

  /**
   * Probed once per store, at first call: a fresh key under `_auditlog/probe/` is PUT twice with
   * `If-None-Match: *`. Supported only if the first is stored and the second refused with 412; a
   * server that ignores the header (s3rver, older gateways) stores both. Any failure of the probe
   * itself (no s3:PutObject there, a proxy that drops the header, storage down) answers "not
   * supported" — the archiver then works as without the feature, and a real outage fails the
   * run's own requests. The probe object is removed; one left by a crash is a few bytes under
   * `_auditlog/`, which readers skip.
   */
  conditionalCreate(): Promise<ConditionalCreateSupport> {
    this.conditionalProbe ??= this.probeConditionalCreate();
    return this.conditionalProbe;
  }

  private async probeConditionalCreate(): Promise<ConditionalCreateSupport> {
    const key = `${STATE_PREFIX}probe/${Date.now()}-${randomBytes(8).toString('hex')}`;
    const body = Buffer.from('auditlog-manager conditional write probe\n');
    const options: PutOptions = { ifAbsent: true, contentType: 'text/plain' };
    try {
      const first = await this.put(key, body, options);
      if (first.alreadyExists === true) return { supported: false, reason: `the first create-only PUT of the fresh key ${key} was refused: inconclusive` };
      const second = await this.put(key, body, options);
      return second.alreadyExists === true
        ? { supported: true, reason: `${this.endpointLabel} refuses a PUT with If-None-Match: * over an existing object (412)` }
        : { supported: false, reason: `${this.endpointLabel} stored a second PUT with If-None-Match: * over an existing object (it ignores the header)` };
    } catch (error) {
      return { supported: false, reason: `the probe failed (${error instanceof Error ? this.redact(oneLine(error.message)) : 'unknown error'})` };
    } finally {
      await this.delete(key).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    const fullKey = this.toFullKey(key, 'get');
    return this.run('get', fullKey, async () => {
      let output;
      try {
        output = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw error;
      }
      // Read inside the retried function: a connection dropped mid-body is retried like any reset.
      const bytes = output.Body === undefined ? new Uint8Array(0) : await output.Body.transformToByteArray();
      const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (output.ContentLength !== undefined && body.length !== output.ContentLength) {
        throw new IncompleteBodyError(output.ContentLength, body.length);
      }
      return body;
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const fullKey = this.toFullKey(key, 'head');
    return this.run('head', fullKey, async () => {
      try {
        const output = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
        return {
          key,
          size: output.ContentLength ?? 0,
          ...(output.ServerSideEncryption === undefined ? {} : { serverSideEncryption: output.ServerSideEncryption }),
        };
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw error;
      }
    });
  }

  async delete(key: string): Promise<void> {
    const fullKey = this.toFullKey(key, 'delete');
    await this.run('delete', fullKey, async () => {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      } catch (error) {
        if (!isMissingObject(error)) throw error;
      }
    });
  }

  /**
   * DeleteObjects in chunks of up to 1,000 keys, Quiet (the answer lists only the keys that failed).
   * A server without it (GCS's XML API answers 501 NotImplemented) gets one DeleteObject per key,
   * for the rest of this store's life: asking again would cost a refused request per call.
   */
  async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    // Every key is checked before anything is deleted: a bad key is a bug, never half a deletion.
    const fullKeys = keys.map((key) => this.toFullKey(key, 'delete-many'));
    const failed: DeleteFailure[] = [];
    for (let start = 0; start < fullKeys.length; start += MAX_KEYS_PER_DELETE_OBJECTS) {
      const chunk = fullKeys.slice(start, start + MAX_KEYS_PER_DELETE_OBJECTS);
      const refused = this.bulkDeleteUnsupported ? 'unsupported' : await this.deleteObjects(chunk);
      if (refused === 'unsupported') {
        this.bulkDeleteUnsupported = true;
        failed.push(...(await this.deleteEach(chunk)));
      } else {
        failed.push(...refused);
      }
    }
    return { failed };
  }

  /** One DeleteObjects request: the keys the server refused, or 'unsupported' when it has no DeleteObjects. */
  private async deleteObjects(fullKeys: readonly string[]): Promise<DeleteFailure[] | 'unsupported'> {
    const output = await this.run('delete-many', fullKeys.length === 1 ? fullKeys[0] : this.prefix, async () => {
      const command = new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: fullKeys.map((Key) => ({ Key })), Quiet: true } });
      try {
        return await this.client.send(withContentMd5(command));
      } catch (error) {
        if (isBulkDeleteUnsupported(error)) return 'unsupported' as const;
        throw error;
      }
    });
    if (output === 'unsupported') return output;
    return (output.Errors ?? [])
      .filter((e) => e.Code !== 'NoSuchKey')
      .map((e) => ({
        key: e.Key !== undefined && e.Key.startsWith(this.prefix) ? e.Key.slice(this.prefix.length) : (e.Key ?? '(no key in the answer)'),
        reason: this.redact(oneLine(`${e.Code ?? 'error'}${e.Message === undefined ? '' : `: ${e.Message}`}`)),
      }));
  }

  /**
   * One DeleteObject per key, stopping at the first that fails (after its retries): what fails one
   * key here (storage down, access refused) fails the next alike, and trying each in turn would
   * hold the caller — the table's final marker removal, under its lock — for every key's retries.
   */
  private async deleteEach(fullKeys: readonly string[]): Promise<DeleteFailure[]> {
    const keys = fullKeys.map((fullKey) => fullKey.slice(this.prefix.length));
    for (const [i, key] of keys.entries()) {
      try {
        await this.delete(key);
      } catch (error) {
        const reason = error instanceof Error ? this.redact(oneLine(error.message)) : 'unknown error';
        return [{ key, reason }, ...keys.slice(i + 1).map((rest) => ({ key: rest, reason: `not tried after the failure of ${key}: ${reason}` }))];
      }
    }
    return [];
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    validateKeyPrefix(prefix, 's3 list');
    const fullPrefix = `${this.prefix}${prefix}`;
    let continuationToken: string | undefined;
    for (;;) {
      const token = continuationToken;
      const page = await this.run('list', fullPrefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: fullPrefix,
            MaxKeys: this.listPageSize,
            ...(options.startAfter === undefined ? {} : { StartAfter: `${this.prefix}${options.startAfter}` }),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.prefix)) continue;
        // An empty key ending in "/" is a folder placeholder from an S3 console ("Create folder"):
        // it holds nothing, and no key this tool writes ends in "/". Listed, it was a stray to
        // validate and, under _pending/, a marker no archive run could read (its table stopped).
        if (object.Key.endsWith('/') && (object.Size ?? 0) === 0) continue;
        yield {
          key: object.Key.slice(this.prefix.length),
          size: object.Size ?? 0,
          ...(object.LastModified === undefined ? {} : { lastModified: object.LastModified }),
        };
      }
      if (page.IsTruncated !== true) break;
      // Ending here would silently drop the rest of the listing, and validation would miss objects.
      if (page.NextContinuationToken === undefined || page.NextContinuationToken === token) {
        throw new AuditlogError('STORAGE_IO', `S3 list ${this.target(fullPrefix)} failed: the server said the listing continues but gave no new continuation token; check ListObjectsV2 support of ${this.endpointLabel}`, {
          details: this.details('list', fullPrefix),
        });
      }
      continuationToken = page.NextContinuationToken;
    }
  }

  async check(options: CheckOptions = {}): Promise<void> {
    const signal = options.signal;
    // The signal reaches the request itself: an abort destroys its socket, so nothing of a check
    // outlives its verdict (found by probing: against a server that accepts and never answers,
    // `auditlog health` printed DOWN at 5 s and exited after 5 attempts × request_timeout_ms).
    const send = (): Promise<unknown> => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), signal === undefined ? {} : { abortSignal: signal });
    try {
      await this.run('check', undefined, send, signal);
    } catch (error) {
      if (error instanceof RetryAbortedError) throw this.checkGivenUp(error.reason, error, error.lastFailure);
      if (signal?.aborted === true && !isAuditlogError(error)) throw this.checkGivenUp(signal.reason, error);
      throw error;
    }
  }

  /** The check's signal aborted: its reason when that is already an AuditlogError, else STORAGE_UNREACHABLE naming why. */
  private checkGivenUp(reason: unknown, cause: unknown, lastFailure?: string): AuditlogError {
    if (isAuditlogError(reason)) return reason;
    const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? `stopped by ${reason}` : 'given up';
    // A server that answered, with errors retried until the deadline, is not one that never answered.
    const last = lastFailure === undefined ? undefined : this.redact(lastFailure);
    const advice = last === undefined ? `check that ${this.endpointLabel} is reachable and answers within s3.request_timeout_ms` : `${this.endpointLabel} answered, with errors retried until then`;
    return new AuditlogError('STORAGE_UNREACHABLE', `S3 check ${this.target(undefined)} given up (${why}${last === undefined ? '' : `; last attempt: ${last}`}): ${advice}`, {
      details: { ...this.details('check', undefined), reason: why, ...(last === undefined ? {} : { last_failure: last }) },
      cause,
    });
  }

  /** Closes the client's pooled connections. The store cannot be used afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  /**
   * A multipart upload that survives a crash: its resume record is written right after
   * CreateMultipartUpload, so a rerun putting the same body under the same key (archive keys are
   * deterministic per batch) lists the parts already there and sends only the missing or
   * different ones. Any doubt restarts the upload, which is always safe: the caller reads the
   * whole object back before trusting it (I3).
   */
  private async putMultipart(fullKey: string, body: Buffer, options: PutOptions, withChecksums: boolean): Promise<boolean> {
    const partSize = Math.max(this.partSize, Math.ceil(body.length / MAX_PARTS));
    const wanted: Omit<MultipartState, 'upload_id' | 'created_at'> = {
      key: fullKey,
      size: body.length,
      part_size: partSize,
      sha256: options.sha256Hex ?? createHash('sha256').update(body).digest('hex'),
      checksum: withChecksums ? 'SHA256' : 'none',
      settings: JSON.stringify({ contentType: options.contentType ?? null, ...this.writeSettings(options) }),
    };
    const stateKey = `${this.prefix}${multipartStateKey(fullKey)}`;
    const resumed = await this.resumeUpload(stateKey, wanted);
    const { uploadId, listed } = resumed ?? (await this.createUpload(stateKey, wanted, options));
    this.inFlightUploads.add(uploadId);
    let reused = 0;
    try {
      const parts = await mapWithConcurrency(planParts(body.length, partSize), this.partConcurrency, async ({ partNumber, start, end }): Promise<CompletedPart> => {
        const partBody = body.subarray(start, end);
        const sha256Base64 = createHash('sha256').update(partBody).digest('base64');
        // Per-part SHA-256: S3 has no whole-object SHA-256 for multipart, so each part is checked server-side.
        const checksum = withChecksums ? { ChecksumSHA256: sha256Base64 } : {};
        const already = listed.get(partNumber);
        if (already !== undefined && isSamePart(already, { size: partBody.length, sha256Base64, md5Hex: () => createHash('md5').update(partBody).digest('hex') })) {
          reused += 1;
          return { PartNumber: partNumber, ETag: already.etag, ...checksum };
        }
        const output = await this.run('put', fullKey, () =>
          this.client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: fullKey,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: partBody,
              ContentLength: partBody.length,
              ...checksum,
            }),
          ),
        );
        if (output.ETag === undefined) {
          throw new AuditlogError('STORAGE_IO', `S3 put ${this.target(fullKey)} failed: UploadPart ${partNumber} returned no ETag`, {
            details: { ...this.details('put', fullKey), partNumber },
          });
        }
        this.onPartUploaded?.({ key: fullKey, partNumber });
        return { PartNumber: partNumber, ETag: output.ETag, ...checksum };
      });
      if (!(await this.completeMultipart(fullKey, uploadId, parts, body.length, options.ifAbsent === true))) {
        // Create-only and an object is already there: the parts are not wanted (aborted below).
        throw new MultipartRefused();
      }
      if (resumed !== undefined) {
        this.onMultipart?.({ kind: 'resumed', key: fullKey, uploadId, partsReused: reused, partsUploaded: parts.length - reused });
      }
    } catch (error) {
      await this.abortMultipart(fullKey, uploadId);
      await this.deleteQuietly(stateKey);
      if (error instanceof MultipartRefused) return false;
      throw error;
    } finally {
      this.inFlightUploads.delete(uploadId);
    }
    // A record left behind (this delete failed) points at a finished upload: the next put of the
    // key finds it gone and starts afresh, and the cleanup removes it once it is old.
    await this.deleteQuietly(stateKey);
    return true;
  }

  /** The upload an earlier (crashed) put left for this exact body, with the parts it holds; else undefined, after clearing the stale one. */
  private async resumeUpload(
    stateKey: string,
    wanted: Omit<MultipartState, 'upload_id' | 'created_at'>,
  ): Promise<{ uploadId: string; listed: Map<number, ListedPart> } | undefined> {
    const raw = await this.getRaw(stateKey);
    if (raw === undefined) return undefined;
    const previous = parseMultipartState(raw);
    if (previous === undefined) {
      // Not ours to interpret: the upload it named, if any, is aborted by the cleanup once old.
      this.onMultipart?.({ kind: 'restarted', key: wanted.key, reason: 'unreadable-record' });
      return undefined;
    }
    if (!canResume(previous, wanted)) {
      // The batch was read differently this time (rows changed, another page size): its old parts are useless.
      if (previous.key === wanted.key) await this.abortMultipart(previous.key, previous.upload_id);
      this.onMultipart?.({ kind: 'restarted', key: wanted.key, reason: 'different-body' });
      return undefined;
    }
    let listed: Map<number, ListedPart> | undefined;
    try {
      listed = await this.listParts(previous.key, previous.upload_id);
    } catch (error) {
      // Refused (no s3:ListMultipartUploadParts) or not understood: the old parts cannot be
      // checked, so they are not used. Storage that is down fails the put, as any request would.
      if (!isAuditlogError(error) || !(error.code === 'STORAGE_ACCESS' || (error.code === 'STORAGE_IO' && error.details.transient !== true))) throw error;
      await this.abortMultipart(previous.key, previous.upload_id);
      this.onMultipart?.({ kind: 'restarted', key: wanted.key, reason: 'parts-unlistable' });
      return undefined;
    }
    if (listed === undefined) {
      this.onMultipart?.({ kind: 'restarted', key: wanted.key, reason: 'upload-gone' });
      return undefined;
    }
    return { uploadId: previous.upload_id, listed };
  }

  private async createUpload(
    stateKey: string,
    wanted: Omit<MultipartState, 'upload_id' | 'created_at'>,
    options: PutOptions,
  ): Promise<{ uploadId: string; listed: Map<number, ListedPart> }> {
    const fullKey = wanted.key;
    const created = await this.run('put', fullKey, () =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: fullKey,
          ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
          ...(wanted.checksum === 'SHA256' ? { ChecksumAlgorithm: 'SHA256' as const } : {}),
          ...this.writeSettings(options),
        }),
      ),
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined || uploadId === '') {
      throw new AuditlogError('STORAGE_IO', `S3 put ${this.target(fullKey)} failed: CreateMultipartUpload returned no UploadId; check that ${this.endpointLabel} supports multipart uploads`, {
        details: this.details('put', fullKey),
      });
    }
    // Before any part: a crash from here on leaves a record that lets the rerun resume.
    const state: MultipartState = { ...wanted, upload_id: uploadId, created_at: new Date().toISOString() };
    try {
      await this.putRaw(stateKey, serializeMultipartState(state));
    } catch (error) {
      await this.abortMultipart(fullKey, uploadId);
      throw error;
    }
    return { uploadId, listed: new Map() };
  }

  /** Every part of the upload (ListParts, paginated), or undefined when the upload no longer exists. */
  private async listParts(fullKey: string, uploadId: string): Promise<Map<number, ListedPart> | undefined> {
    const parts = new Map<number, ListedPart>();
    let marker: string | undefined;
    for (;;) {
      const after = marker;
      const page = await this.run('list-parts', fullKey, async () => {
        try {
          return await this.client.send(
            new ListPartsCommand({
              Bucket: this.bucket,
              Key: fullKey,
              UploadId: uploadId,
              MaxParts: this.listPageSize,
              ...(after === undefined ? {} : { PartNumberMarker: after }),
            }),
          );
        } catch (error) {
          if (isMissingUpload(error)) return undefined;
          throw error;
        }
      });
      if (page === undefined) return undefined;
      for (const part of page.Parts ?? []) {
        if (part.PartNumber === undefined || part.ETag === undefined || part.Size === undefined) continue;
        parts.set(part.PartNumber, {
          partNumber: part.PartNumber,
          size: part.Size,
          etag: part.ETag,
          ...(part.ChecksumSHA256 === undefined ? {} : { checksumSha256: part.ChecksumSHA256 }),
        });
      }
      if (page.IsTruncated !== true) return parts;
      const next = page.NextPartNumberMarker;
      // A listing that does not advance would loop forever; without the rest, resuming is unsafe.
      if (next === undefined || next === after) {
        throw new AuditlogError('STORAGE_IO', `S3 list-parts ${this.target(fullKey)} failed: the server said the listing continues but gave no new part number marker; check ListParts support of ${this.endpointLabel}`, {
          details: this.details('list-parts', fullKey),
        });
      }
      marker = next;
    }
  }

  /**
   * CompleteMultipartUpload may answer 200 with an <Error> body; the SDK turns that into a
   * (retryable) 5xx error. A retry after a lost response finds the upload gone (NoSuchUpload):
   * the object is then there if its size is ours — the caller's read-back proves the content.
   */
  /**
   * False when `ifAbsent` and an object was already at the key (412): nothing was written. The
   * condition goes on CompleteMultipartUpload, the request that creates the object, so a late
   * completion of an earlier attempt is refused as well.
   */
  private async completeMultipart(fullKey: string, uploadId: string, parts: CompletedPart[], size: number, ifAbsent: boolean): Promise<boolean> {
    const done = await this.run('put', fullKey, async (attempt) => {
      try {
        return await this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts }, ...(ifAbsent ? { IfNoneMatch: '*' } : {}) }),
        );
      } catch (error) {
        if (ifAbsent && isPreconditionFailed(error)) return 'exists' as const;
        // An earlier attempt completed, or was refused, unseen: create-only cannot tell which, so
        // it reports the object that is there and lets the caller compare its content.
        if (ifAbsent && attempt > 1 && classifyS3Error(error).errorCode === 'NoSuchUpload') return 'exists' as const;
        if (attempt > 1 && classifyS3Error(error).errorCode === 'NoSuchUpload') {
          const existing = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey })).catch(() => undefined);
          if (existing?.ContentLength === size) return { ETag: existing.ETag ?? 'unknown' };
        }
        throw error;
      }
    });
    if (done === 'exists') return false;
    if (done.ETag === undefined) {
      throw new AuditlogError('STORAGE_IO', `S3 put ${this.target(fullKey)} failed: CompleteMultipartUpload returned no ETag; the object is not trusted — rerun, and check ${this.endpointLabel}`, {
        details: this.details('put', fullKey),
      });
    }
    return true;
  }

  /** Best effort: a failure here must not hide the error that made us abort. */
  private async abortMultipart(fullKey: string, uploadId: string): Promise<void> {
    try {
      await this.abortUpload(fullKey, uploadId);
    } catch {
      // A leftover upload is swept at the next start, and a bucket lifecycle rule removes it anyway.
    }
  }

  /** 'gone' when the server no longer knows the upload (already completed or aborted). */
  private async abortUpload(fullKey: string, uploadId: string): Promise<'aborted' | 'gone'> {
    return this.run('abort', fullKey, async () => {
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }));
        return 'aborted' as const;
      } catch (error) {
        if (isMissingUpload(error)) return 'gone' as const;
        throw error;
      }
    });
  }

  /**
   * Aborts incomplete multipart uploads under the prefix initiated before `olderThan` (never one
   * this process is writing, never a key this tool does not write) and deletes their resume
   * records, plus old records whose upload is gone. See multipart-cleanup.ts for the rules.
   */
  async cleanupInterrupted(options: CleanupOptions): Promise<CleanupReport> {
    const uploads = await this.listUploads();
    const { orphans, kept } = selectOrphanUploads(uploads, { cutoff: options.olderThan, inFlight: this.inFlightUploads });
    const items: CleanupItem[] = [];
    const aborted = new Set<string>();
    for (const upload of orphans) {
      const item: CleanupItem = {
        kind: 'multipart-upload',
        key: upload.key,
        uploadId: upload.uploadId,
        ...(upload.initiated === undefined ? {} : { since: upload.initiated.toISOString() }),
        action: options.dryRun ? 'would-abort' : 'aborted',
      };
      if (!options.dryRun) {
        try {
          await this.abortUpload(`${this.prefix}${upload.key}`, upload.uploadId);
        } catch (error) {
          item.action = 'failed';
          item.error = error instanceof Error ? this.redact(oneLine(error.message)) : 'unknown error';
        }
      }
      if (item.action !== 'failed') aborted.add(upload.uploadId);
      items.push(item);
    }
    const records: ListedStateRecord[] = [];
    for await (const info of this.list(MULTIPART_STATE_PREFIX)) {
      const body = await this.get(info.key);
      const state = body === undefined ? undefined : parseMultipartState(body);
      records.push({ key: info.key, ...(state === undefined ? {} : { state }), ...(info.lastModified === undefined ? {} : { lastModified: info.lastModified }) });
    }
    const live = new Set(uploads.map((u) => u.uploadId).filter((id) => !aborted.has(id)));
    const stale = selectOrphanStateRecords(records, {
      cutoff: options.olderThan,
      liveUploadIds: live,
      // In a dry run nothing was aborted, but the report should show the records that would go.
      abortedUploadIds: aborted,
      inFlight: this.inFlightUploads,
    });
    for (const record of stale.orphans) {
      const item: CleanupItem = {
        kind: 'multipart-state',
        key: record.key,
        ...(record.state === undefined ? {} : { uploadId: record.state.upload_id, since: record.state.created_at }),
        action: options.dryRun ? 'would-delete' : 'deleted',
      };
      if (!options.dryRun) {
        try {
          await this.delete(record.key);
        } catch (error) {
          item.action = 'failed';
          item.error = error instanceof Error ? this.redact(oneLine(error.message)) : 'unknown error';
        }
      }
      items.push(item);
    }
    return { items, kept: kept + stale.kept };
  }

  /** Incomplete multipart uploads under the prefix (ListMultipartUploads, paginated), keys relative to it. */
  private async listUploads(): Promise<ListedUpload[]> {
    const uploads: ListedUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const markers = { keyMarker, uploadIdMarker };
      const page = await this.run('list-uploads', this.prefix, () =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix,
            MaxUploads: this.listPageSize,
            ...(markers.keyMarker === undefined ? {} : { KeyMarker: markers.keyMarker }),
            ...(markers.uploadIdMarker === undefined ? {} : { UploadIdMarker: markers.uploadIdMarker }),
          }),
        ),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined || !upload.Key.startsWith(this.prefix)) continue;
        uploads.push({ key: upload.Key.slice(this.prefix.length), uploadId: upload.UploadId, ...(upload.Initiated === undefined ? {} : { initiated: upload.Initiated }) });
      }
      if (page.IsTruncated !== true) return uploads;
      if (page.NextKeyMarker === undefined || (page.NextKeyMarker === markers.keyMarker && page.NextUploadIdMarker === markers.uploadIdMarker)) {
        throw new AuditlogError('STORAGE_IO', `S3 list-uploads ${this.target(this.prefix)} failed: the server said the listing continues but gave no new marker; check ListMultipartUploads support of ${this.endpointLabel}`, {
          details: this.details('list-uploads', this.prefix),
        });
      }
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** GetObject of a full key (the resume record lives outside the caller's key space checks). */
  private async getRaw(fullKey: string): Promise<Buffer | undefined> {
    return this.get(fullKey.slice(this.prefix.length));
  }

  private async putRaw(fullKey: string, body: Buffer): Promise<void> {
    // A small JSON record: the ordinary put (checksummed, encrypted like every object we write).
    await this.put(fullKey.slice(this.prefix.length), body, { sha256Hex: createHash('sha256').update(body).digest('hex'), contentType: 'application/json' });
  }

  private async deleteQuietly(fullKey: string): Promise<void> {
    await this.delete(fullKey.slice(this.prefix.length)).catch(() => undefined);
  }

  private writeSettings(options: PutOptions): {
    StorageClass?: Exclude<S3Config['storage_class'], 'STANDARD'>;
    ServerSideEncryption?: 'AES256' | 'aws:kms';
    SSEKMSKeyId?: string;
  } {
    // Encryption applies to every object we write (sidecars list primary keys); the storage
    // class only to data objects, so sidecars stay cheap and fast to read.
    const storageClass = options.isDataObject === true && this.config.storage_class !== 'STANDARD' ? this.config.storage_class : undefined;
    return {
      ...(storageClass === undefined ? {} : { StorageClass: storageClass }),
      ...(this.config.sse === 'none' ? {} : { ServerSideEncryption: this.config.sse }),
      ...(this.config.sse === 'aws:kms' && this.config.sse_kms_key_id !== undefined ? { SSEKMSKeyId: this.config.sse_kms_key_id } : {}),
    };
  }

  private toFullKey(key: string, operation: Operation): string {
    validateObjectKey(key, `s3 ${operation}`);
    const fullKey = `${this.prefix}${key}`;
    validateObjectKey(fullKey, `s3 ${operation}`);
    return fullKey;
  }

  private target(fullKey: string | undefined): string {
    return fullKey === undefined ? `s3://${this.bucket}` : `s3://${this.bucket}/${fullKey}`;
  }

  private details(operation: Operation, fullKey: string | undefined): Record<string, string> {
    return { operation, bucket: this.bucket, ...(fullKey === undefined ? {} : { key: fullKey }), endpoint: this.endpointLabel };
  }

  private async run<T>(operation: Operation, fullKey: string | undefined, fn: (attempt: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await withRetry(fn, { policy: (error) => classifyS3Error(error), retry: this.config.retry, ...this.hooks, ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      if (error instanceof RetryGaveUpError) throw this.translate(operation, fullKey, error);
      throw error;
    }
  }

  private translate(operation: Operation, fullKey: string | undefined, failure: RetryGaveUpError): AuditlogError {
    const { classification, attempts } = failure;
    const target = this.target(fullKey);
    const reason = this.redact(classification.reason);
    const details = {
      ...this.details(operation, fullKey),
      reason,
      attempts,
      // A failure that could have healed by itself: the circuit breaker counts these against the endpoint.
      transient: classification.retryable,
      ...(classification.status === undefined ? {} : { status: classification.status }),
    };
    const head = `S3 ${operation} ${target}`;
    const after =
      failure.excludedClass !== undefined
        ? ` (not retried: \`${failure.excludedClass}\` is not in s3.retry.retryable_errors)`
        : attempts > 1
          ? ` after ${attempts} attempts`
          : '';
    const serverSays =
      classification.serverMessage === undefined || classification.code !== 'STORAGE_IO' ? '' : `: ${this.redact(oneLine(classification.serverMessage))}`;
    const message = ((): string => {
      switch (classification.code) {
        case 'STORAGE_UNREACHABLE':
          // After timeouts more attempts only make the wait longer (each one waits out
          // request_timeout_ms): the advice to raise max_attempts was wrong there (found by probing).
          if (classification.retryable && classification.retryClass === 'timeout') {
            return `${head} failed${after} (${reason}): ${this.endpointLabel} did not answer within s3.request_timeout_ms (${this.config.request_timeout_ms} ms); check that it is reachable from this host (network, firewall, proxy) and healthy, or raise s3.request_timeout_ms if it is only slow`;
          }
          if (classification.retryable) return `${head} failed${after} (${reason}): check that ${this.endpointLabel} is reachable and healthy, or raise s3.retry.max_attempts`;
          const bucketHost = this.unresolvedBucketHost(failure.cause);
          return bucketHost !== undefined
            ? `${head} failed (${reason}): cannot resolve ${bucketHost}, the bucket's virtual-hosted-style address at ${this.endpointLabel}; set s3.force_path_style: true (most S3-compatible servers need it), or fix s3.endpoint`
            : `${head} failed (${reason}): cannot reach ${this.endpointLabel}; check s3.endpoint, DNS and TLS settings`;
        case 'STORAGE_ACCESS':
          return `${head} was refused (${reason}): ${this.adviseAccess(operation, classification)}`;
        case 'STORAGE_NOT_FOUND':
          return `${head} failed (${reason}): bucket "${this.bucket}" does not exist at ${this.endpointLabel}; create it or fix s3.bucket (and s3.region/s3.endpoint)`;
        case 'STORAGE_CONFLICT':
          return `${head} failed (${reason}): the object changed or exists in a conflicting state; nothing was overwritten — inspect it before rerunning`;
        case 'STORAGE_IO':
          return `${head} failed${after} (${reason}${serverSays}): ${this.adviseIo(classification)}`;
      }
    })();
    return new AuditlogError(classification.code, message, { details, cause: failure.cause });
  }

  /**
   * `<bucket>.<endpoint host>` when that is the name whose lookup failed, else undefined: without
   * s3.force_path_style the SDK sends requests there, and naming only the endpoint (which resolves)
   * misled (found by probing: MinIO at http://localhost:9000 without force_path_style said "cannot
   * reach http://localhost:9000").
   */
  private unresolvedBucketHost(cause: unknown): string | undefined {
    if (this.config.endpoint === undefined || this.config.force_path_style) return undefined;
    const hostname = (cause as { hostname?: unknown } | null)?.hostname;
    try {
      const bucketHost = `${this.bucket}.${new URL(this.config.endpoint).hostname}`;
      return hostname === bucketHost ? bucketHost : undefined;
    } catch {
      return undefined;
    }
  }

  private adviseAccess(operation: Operation, classification: ErrorClassification): string {
    switch (classification.errorCode) {
      case 'InvalidAccessKeyId':
        return `the access key id is unknown to ${this.endpointLabel}; fix s3.access_key_id (or the AWS credential chain)`;
      case 'SignatureDoesNotMatch':
        return 'the secret access key does not match the access key id; fix s3.secret_access_key (or the AWS credential chain)';
      case 'RequestTimeTooSkewed':
        return "this machine's clock differs too much from the server's; synchronise it (NTP) and retry";
      case 'ExpiredToken':
      case 'TokenRefreshRequired':
      case 'InvalidToken':
        return 'the temporary credentials expired or are invalid; refresh s3.session_token or the AWS credential chain';
      case 'CredentialsProviderError':
        return 'no AWS credentials were found; set s3.access_key_id/secret_access_key, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role';
      default:
        return `the credentials lack permission ${ACTION[operation]} on bucket "${this.bucket}" (prefix "${this.prefix}"); grant it or fix the credentials`;
    }
  }

  private adviseIo(classification: ErrorClassification): string {
    if (classification.status !== undefined && classification.status >= 300 && classification.status < 400) {
      return `the bucket is probably in another region than s3.region (${this.config.region}) or s3.endpoint is wrong; fix them`;
    }
    if (classification.retryable) return 'the bytes kept arriving damaged; check the network path (proxies, MTU) and retry';
    return `check that ${this.endpointLabel} supports this request and that s3.* settings are right`;
  }

  /** Server messages may echo request data; our own secrets must never leave in a message. */
  private redact(text: string): string {
    let result = text;
    for (const secret of this.secrets) result = result.split(secret).join('***');
    return result;
  }
}

function buildClientConfig(config: S3Config): S3ClientConfig {
  return {
    region: config.region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    forcePathStyle: config.force_path_style,
    ...(config.access_key_id !== undefined && config.secret_access_key !== undefined
      ? {
          credentials: {
            accessKeyId: config.access_key_id,
            secretAccessKey: config.secret_access_key,
            ...(config.session_token === undefined ? {} : { sessionToken: config.session_token }),
          },
        }
      : {}),
    // One retry layer, ours (with-retry.ts): counted, jittered, honouring Retry-After.
    maxAttempts: 1,
    // Since early 2025 the SDK sends CRC32 checksums by default, which some S3-compatible servers
    // reject or store wrongly; we send the SHA-256 we computed ourselves instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: config.request_timeout_ms,
      requestTimeout: config.request_timeout_ms,
      // Without it a breached requestTimeout is only a logged warning.
      throwOnRequestTimeout: true,
      // requestTimeout stops at the response headers; a body that stalls is caught by the idle timeout.
      socketTimeout: config.request_timeout_ms,
    },
  };
}

/**
 * Whether a single-part PUT's ETag is the MD5 of `body`. S3 and the S3-compatible servers we know
 * compute it over the bytes they stored; where they do not (SSE-KMS, SSE-C, some gateways) it
 * differs, which only means the caller reads the object back — a match is never a coincidence.
 */
export function etagIsMd5Of(etag: string | undefined, body: Buffer): boolean {
  if (etag === undefined) return false;
  const hex = etag.replace(/^(W\/)?"|"$/g, '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(hex) && hex === createHash('md5').update(body).digest('hex');
}

/**
 * DeleteObjects must carry a checksum of its body. Under `requestChecksumCalculation: WHEN_REQUIRED`
 * the SDK still adds `x-amz-checksum-crc32` (the operation requires one) but no longer Content-MD5,
 * which S3-compatible servers that predate the SDK's 2025 checksum change (older MinIO and Ceph,
 * some hosted S3) require and refuse the request without. S3 accepts both, so send both.
 */
function withContentMd5(command: DeleteObjectsCommand): DeleteObjectsCommand {
  command.middlewareStack.add(
    (next) => async (args) => {
      // The build step runs after serialization (the body is the XML) and before signing.
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      const body = request.body;
      if (request.headers !== undefined && (typeof body === 'string' || body instanceof Uint8Array)) {
        request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'auditlogDeleteObjectsContentMd5' },
  );
  return command;
}

/**
 * A server (or policy) without a DeleteObjects we can use: GCS's XML API answers 501
 * NotImplemented, others 405 for the unknown `POST ?delete`, MissingContentMD5 when a proxy drops
 * the header, another 400 about the request's form (e.g. two checksum headers), or 403 where a
 * gateway or policy refuses the bulk call but allows DeleteObject. Any refusal that is not
 * retryable and not a missing bucket means the same: per-key deletes, which every store has,
 * instead of markers left for the next run on every run. If those are refused too, the first
 * refusal ends the attempt (deleteEach).
 */
function isBulkDeleteUnsupported(error: unknown): boolean {
  const { status, errorCode, retryable, code } = classifyS3Error(error);
  if (status === 501 || status === 405 || errorCode === 'NotImplemented' || errorCode === 'MethodNotAllowed' || errorCode === 'MissingContentMD5') return true;
  return !retryable && code !== 'STORAGE_NOT_FOUND' && status !== undefined && status >= 400 && status < 500;
}

/** 412: a create-only write (If-None-Match: *) found an object at the key. */
function isPreconditionFailed(error: unknown): boolean {
  const { status, errorCode } = classifyS3Error(error);
  return status === 412 || errorCode === 'PreconditionFailed';
}

/** Unwinds a create-only multipart upload whose completion was refused, through its abort path. */
class MultipartRefused extends Error {}

function isMissingUpload(error: unknown): boolean {
  return classifyS3Error(error).errorCode === 'NoSuchUpload';
}

function isMissingObject(error: unknown): boolean {
  const classification = classifyS3Error(error);
  if (classification.errorCode === 'NoSuchKey') return true;
  // HEAD answers have no body, so a missing key is a bare 404 (a missing bucket too; check() tells them apart).
  return classification.status === 404 && classification.errorCode !== 'NoSuchBucket' && classification.errorCode !== 'NoSuchUpload';
}

/** Where the store sends its requests, for messages: never contains credentials. */
export function describeS3Endpoint(config: Pick<S3Config, 'endpoint' | 'region'>): string {
  return config.endpoint === undefined ? `AWS S3 (${config.region})` : redactEndpoint(config.endpoint);
}

/** The endpoint for messages: userinfo stripped, so credentials embedded in the URL never leak. */
function redactEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(invalid endpoint)';
  }
}

function endpointSecrets(endpoint: string | undefined): string[] {
  if (endpoint === undefined) return [];
  try {
    const url = new URL(endpoint);
    return [decodeURIComponent(url.username), decodeURIComponent(url.password)];
  } catch {
    return [];
  }
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

/**
 * Maps with at most `limit` calls in flight. On the first failure no new call starts, and the
 * returned promise settles only after every started call has — so an abort that follows never
 * races an in-flight part upload.
 */
async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next;
      next += 1;
      try {
        results[index] = await fn(items[index] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
