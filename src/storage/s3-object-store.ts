/**
 * ObjectStore over S3 or an S3-compatible server (MinIO, R2, Ceph, ...).
 *
 * Bodies are always Buffers with an explicit ContentLength: a streamed body is sent with
 * aws-chunked framing, which some servers store verbatim (DESIGN.md §5). Large objects go up as
 * a multipart upload of buffered parts. The SDK's retries are off; {@link withRetry} is the only
 * retry layer, so attempts are counted and delays honour Retry-After.
 */
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { AuditlogError } from '../core/errors.js';
import type { S3Config } from '../config/schema.js';
import type { ObjectInfo, ObjectStore, PutOptions } from './object-store.js';
import { classifyS3Error, IncompleteBodyError, type ErrorClassification } from './retry-policy.js';
import { validateKeyPrefix, validateObjectKey } from './validate-object-key.js';
import { verifyPutBody } from './verify-put-body.js';
import { RetryGaveUpError, withRetry, type RetryHooks } from './with-retry.js';

const MIB = 1024 * 1024;
export const DEFAULT_MULTIPART_THRESHOLD_BYTES = 16 * MIB;
export const DEFAULT_PART_SIZE_BYTES = 8 * MIB;
/** S3 refuses parts smaller than this, except the last. */
export const MIN_PART_SIZE_BYTES = 5 * MIB;
const MAX_PARTS = 10_000;

export interface S3ObjectStoreOptions extends RetryHooks {
  /** Bodies of at least this many bytes go up as a multipart upload. Default 16 MiB. */
  multipartThresholdBytes?: number;
  /** Size of each multipart part except the last; at least 5 MiB. Default 8 MiB. */
  partSizeBytes?: number;
  /** Parts in flight at once. Default 4. */
  partConcurrency?: number;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). */
  listPageSize?: number;
}

type Operation = 'put' | 'get' | 'head' | 'delete' | 'list' | 'check';

/** The IAM action each operation needs, for "access denied" messages. */
const ACTION: Record<Operation, string> = {
  put: 's3:PutObject',
  get: 's3:GetObject',
  head: 's3:GetObject (and s3:ListBucket, without which S3 answers 403 for missing keys)',
  delete: 's3:DeleteObject',
  list: 's3:ListBucket',
  check: 's3:ListBucket',
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
    this.multipartThreshold = options.multipartThresholdBytes ?? DEFAULT_MULTIPART_THRESHOLD_BYTES;
    this.partSize = Math.max(MIN_PART_SIZE_BYTES, options.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES);
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 4);
    this.listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.client = new S3Client(buildClientConfig(config));
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    const fullKey = this.toFullKey(key, 'put');
    const digest = options.sha256Hex === undefined ? undefined : verifyPutBody(body, options.sha256Hex, this.target(fullKey));
    if (body.length >= this.multipartThreshold) {
      await this.putMultipart(fullKey, body, options, digest !== undefined);
      return;
    }
    await this.run('put', fullKey, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: fullKey,
          Body: body,
          ContentLength: body.length,
          ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
          ...(digest === undefined ? {} : { ChecksumSHA256: digest.toString('base64') }),
          ...this.writeSettings(options),
        }),
      ),
    );
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

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
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
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.prefix)) continue;
        yield { key: object.Key.slice(this.prefix.length), size: object.Size ?? 0 };
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

  async check(): Promise<void> {
    await this.run('check', undefined, () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  /** Closes the client's pooled connections. The store cannot be used afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  private async putMultipart(fullKey: string, body: Buffer, options: PutOptions, withChecksums: boolean): Promise<void> {
    const partSize = Math.max(this.partSize, Math.ceil(body.length / MAX_PARTS));
    const created = await this.run('put', fullKey, () =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: fullKey,
          ...(options.contentType === undefined ? {} : { ContentType: options.contentType }),
          ...(withChecksums ? { ChecksumAlgorithm: 'SHA256' as const } : {}),
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
    try {
      const ranges: Array<{ partNumber: number; start: number; end: number }> = [];
      for (let start = 0, partNumber = 1; start < body.length; start += partSize, partNumber += 1) {
        ranges.push({ partNumber, start, end: Math.min(body.length, start + partSize) });
      }
      const parts = await mapWithConcurrency(ranges, this.partConcurrency, async ({ partNumber, start, end }): Promise<CompletedPart> => {
        const partBody = body.subarray(start, end);
        // Per-part SHA-256: S3 has no whole-object SHA-256 for multipart, so each part is checked server-side.
        const checksum = withChecksums ? createHash('sha256').update(partBody).digest('base64') : undefined;
        const output = await this.run('put', fullKey, () =>
          this.client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: fullKey,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: partBody,
              ContentLength: partBody.length,
              ...(checksum === undefined ? {} : { ChecksumSHA256: checksum }),
            }),
          ),
        );
        if (output.ETag === undefined) {
          throw new AuditlogError('STORAGE_IO', `S3 put ${this.target(fullKey)} failed: UploadPart ${partNumber} returned no ETag`, {
            details: { ...this.details('put', fullKey), partNumber },
          });
        }
        return { PartNumber: partNumber, ETag: output.ETag, ...(checksum === undefined ? {} : { ChecksumSHA256: checksum }) };
      });
      await this.completeMultipart(fullKey, uploadId, parts, body.length);
    } catch (error) {
      await this.abortMultipart(fullKey, uploadId);
      throw error;
    }
  }

  /**
   * CompleteMultipartUpload may answer 200 with an <Error> body; the SDK turns that into a
   * (retryable) 5xx error. A retry after a lost response finds the upload gone (NoSuchUpload):
   * the object is then there if its size is ours — the caller's read-back proves the content.
   */
  private async completeMultipart(fullKey: string, uploadId: string, parts: CompletedPart[], size: number): Promise<void> {
    const done = await this.run('put', fullKey, async (attempt) => {
      try {
        return await this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
        );
      } catch (error) {
        if (attempt > 1 && classifyS3Error(error).errorCode === 'NoSuchUpload') {
          const existing = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey })).catch(() => undefined);
          if (existing?.ContentLength === size) return { ETag: existing.ETag ?? 'unknown' };
        }
        throw error;
      }
    });
    if (done.ETag === undefined) {
      throw new AuditlogError('STORAGE_IO', `S3 put ${this.target(fullKey)} failed: CompleteMultipartUpload returned no ETag; the object is not trusted — rerun, and check ${this.endpointLabel}`, {
        details: this.details('put', fullKey),
      });
    }
  }

  /** Best effort: a failure here must not hide the error that made us abort. */
  private async abortMultipart(fullKey: string, uploadId: string): Promise<void> {
    try {
      await this.run('put', fullKey, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId })));
    } catch {
      // A leftover upload is swept at the next start, and a bucket lifecycle rule removes it anyway.
    }
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

  private async run<T>(operation: Operation, fullKey: string | undefined, fn: (attempt: number) => Promise<T>): Promise<T> {
    try {
      return await withRetry(fn, { policy: (error) => classifyS3Error(error), retry: this.config.retry, ...this.hooks });
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
          return classification.retryable
            ? `${head} failed${after} (${reason}): check that ${this.endpointLabel} is reachable and healthy, or raise s3.retry.max_attempts`
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
