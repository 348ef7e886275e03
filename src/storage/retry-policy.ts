/**
 * Which storage failures are worth another attempt, and what each one means for the user.
 * Retry only what can heal by itself (5xx, 408, 429, throttling, resets, timeouts, bytes
 * corrupted in transit); credentials, permissions, clock skew and a missing bucket fail fast,
 * because retrying them only delays the one-line error the operator needs (DESIGN.md §5b).
 */
import { parseRetryAfter } from '../core/backoff.js';
import { isAuditlogError, type ErrorCode } from '../core/errors.js';
import type { RetryErrorClass } from '../config/schema.js';

export type StorageErrorCode = Extract<
  ErrorCode,
  'STORAGE_UNREACHABLE' | 'STORAGE_ACCESS' | 'STORAGE_NOT_FOUND' | 'STORAGE_CONFLICT' | 'STORAGE_IO'
>;

export interface ErrorClassification {
  /** Whether the failure can heal by itself; `retry.retryable_errors` may still refuse its class. */
  retryable: boolean;
  /** The family of a retryable failure, matched against `retry.retryable_errors`. */
  retryClass?: RetryErrorClass;
  /** The AuditlogError code once retries are over (or at once when not retryable). */
  code: StorageErrorCode;
  /** Short and secret-free: HTTP status, S3 error code, Node error code — e.g. `HTTP 503 SlowDown`. */
  reason: string;
  /** S3 error code or Node error code when there is one (`SlowDown`, `AccessDenied`, `ECONNRESET`). */
  errorCode?: string;
  status?: number;
  /** What the server's error body said; may echo request data, so stores redact it before use. */
  serverMessage?: string;
  /** How long the server asked us to wait (Retry-After), in ms. */
  retryAfterMs?: number;
}

export type RetryPolicy = (error: unknown) => ErrorClassification;

/**
 * Thrown by a store when a response body ended before the length the server announced; a retry
 * can heal it, and read-back verification must never see a short object as the real one.
 */
export class IncompleteBodyError extends Error {
  constructor(
    readonly expectedBytes: number,
    readonly receivedBytes: number,
  ) {
    super(`response body ended after ${receivedBytes} of ${expectedBytes} bytes`);
    this.name = 'IncompleteBodyError';
  }
}

const ACCESS_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'RequestTimeTooSkewed',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidToken',
  'InvalidSecurity',
  'CredentialsProviderError',
]);

const NOT_FOUND_CODES = new Set(['NoSuchBucket']);

/**
 * NoSuchUpload: our multipart upload vanished (another process or a lifecycle rule aborted it).
 * PreconditionFailed (412) is an answer, never retried: the same request gets the same answer.
 */
const CONFLICT_CODES = new Set(['PreconditionFailed', 'OperationAborted', 'NoSuchUpload']);

/**
 * 409 ConditionalRequestConflict: another conditional write to the key was in progress at that
 * instant; S3 asks for the request again. Retried like contention; if it outlasts the retries it is
 * still a conflict, not an unhealthy endpoint.
 */
const RETRYABLE_CONFLICT_CODES = new Set(['ConditionalRequestConflict']);

/** Server-side throttling and transient faults, whatever status they arrive with. */
const RETRYABLE_S3_CODES = new Map<string, RetryErrorClass>([
  ['SlowDown', 'throttling'],
  ['Throttling', 'throttling'],
  ['ThrottlingException', 'throttling'],
  ['ThrottledException', 'throttling'],
  ['RequestThrottled', 'throttling'],
  ['RequestThrottledException', 'throttling'],
  ['TooManyRequestsException', 'throttling'],
  ['RequestLimitExceeded', 'throttling'],
  ['BandwidthLimitExceeded', 'throttling'],
  ['InternalError', 'server_error'],
  ['ServiceUnavailable', 'server_error'],
  ['RequestTimeout', 'timeout'],
  ['TimeoutError', 'timeout'],
  ['IncompleteBodyError', 'connection'],
]);

/** The bytes arrived damaged (or cut short): another attempt sends them again. */
const CORRUPTED_IN_TRANSIT_CODES = new Map<string, RetryErrorClass>([
  ['BadDigest', 'checksum'],
  ['XAmzContentSHA256Mismatch', 'checksum'],
  ['InvalidDigest', 'checksum'],
  ['IncompleteBody', 'connection'],
]);

const RETRYABLE_NETWORK_CODES = new Map<string, RetryErrorClass>([
  ['ECONNRESET', 'connection'],
  ['ECONNREFUSED', 'connection'],
  ['ECONNABORTED', 'connection'],
  ['ETIMEDOUT', 'timeout'],
  ['ESOCKETTIMEDOUT', 'timeout'],
  ['EPIPE', 'connection'],
  ['EHOSTUNREACH', 'connection'],
  ['EHOSTDOWN', 'connection'],
  ['ENETUNREACH', 'connection'],
  ['ENETDOWN', 'connection'],
  ['ENETRESET', 'connection'],
  ['EAI_AGAIN', 'connection'],
  ['UND_ERR_SOCKET', 'connection'],
  ['UND_ERR_CONNECT_TIMEOUT', 'timeout'],
  ['ERR_HTTP2_STREAM_ERROR', 'connection'],
]);

/** Network failures that another attempt will not fix (a wrong host name). */
const FATAL_NETWORK_CODES = new Set(['ENOTFOUND', 'ERR_INVALID_URL', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { statusCode?: unknown; headers?: Record<string, string | undefined> };
}

/** Classifies an error of @aws-sdk/client-s3 (or of the HTTP layer under it). */
export function classifyS3Error(error: unknown, nowMs: number = Date.now()): ErrorClassification {
  if (isAuditlogError(error)) {
    return { retryable: false, code: isStorageCode(error.code) ? error.code : 'STORAGE_IO', reason: error.code };
  }
  const shape: ErrorShape = typeof error === 'object' && error !== null ? (error as ErrorShape) : {};
  const status = readStatus(shape);
  const s3Code = readS3Code(shape, status);
  const nodeCode = typeof shape.code === 'string' ? shape.code : undefined;
  const retryAfterMs = parseRetryAfter(readHeader(shape, 'retry-after'), nowMs);
  const serverMessage = status !== undefined && typeof shape.message === 'string' && shape.message !== 'UnknownError' ? shape.message : undefined;
  const base = {
    ...(status === undefined ? {} : { status }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(serverMessage === undefined ? {} : { serverMessage }),
  };
  const reason = describeReason(status, s3Code, nodeCode);
  const errorCode = s3Code ?? nodeCode;
  const result = (retryable: boolean, code: StorageErrorCode, retryClass?: RetryErrorClass): ErrorClassification => ({
    retryable,
    ...(retryClass === undefined ? {} : { retryClass }),
    code,
    reason,
    ...(errorCode === undefined ? {} : { errorCode }),
    ...base,
  });

  if (s3Code !== undefined) {
    if (ACCESS_CODES.has(s3Code)) return result(false, 'STORAGE_ACCESS');
    if (NOT_FOUND_CODES.has(s3Code)) return result(false, 'STORAGE_NOT_FOUND');
    if (CONFLICT_CODES.has(s3Code)) return result(false, 'STORAGE_CONFLICT');
    if (RETRYABLE_CONFLICT_CODES.has(s3Code)) return result(true, 'STORAGE_CONFLICT', 'throttling');
    const transient = RETRYABLE_S3_CODES.get(s3Code);
    if (transient !== undefined) return result(true, 'STORAGE_UNREACHABLE', transient);
    const corrupted = CORRUPTED_IN_TRANSIT_CODES.get(s3Code);
    if (corrupted !== undefined) return result(true, 'STORAGE_IO', corrupted);
  }
  if (nodeCode !== undefined) {
    const network = RETRYABLE_NETWORK_CODES.get(nodeCode);
    if (network !== undefined) return result(true, 'STORAGE_UNREACHABLE', network);
    if (FATAL_NETWORK_CODES.has(nodeCode)) return result(false, 'STORAGE_UNREACHABLE');
  }
  if (typeof shape.message === 'string' && /socket hang up/i.test(shape.message)) return result(true, 'STORAGE_UNREACHABLE', 'connection');
  if (status !== undefined) {
    // A server that does not implement a request (e.g. ListMultipartUploads on some S3-compatible
    // servers) answers the same every time: retrying only delays the run and trips the circuit.
    if (status === 501 || s3Code === 'NotImplemented') return result(false, 'STORAGE_IO');
    if (status >= 500) return result(true, 'STORAGE_UNREACHABLE', 'server_error');
    if (status === 429) return result(true, 'STORAGE_UNREACHABLE', 'throttling');
    if (status === 408) return result(true, 'STORAGE_UNREACHABLE', 'timeout');
    if (status === 401 || status === 403) return result(false, 'STORAGE_ACCESS');
    if (status === 404) return result(false, 'STORAGE_NOT_FOUND');
    if (status === 409 || status === 412) return result(false, 'STORAGE_CONFLICT');
  }
  return result(false, 'STORAGE_IO');
}

/** ESTALE: an NFS handle went stale, i.e. the file server's connection was lost. */
const RETRYABLE_FS_CODES = new Map<string, RetryErrorClass>([
  ['EAGAIN', 'busy'],
  ['EBUSY', 'busy'],
  ['EMFILE', 'busy'],
  ['ENFILE', 'busy'],
  ['EINTR', 'busy'],
  ['ETIMEDOUT', 'timeout'],
  ['ESTALE', 'connection'],
]);
const ACCESS_FS_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);
const CONFLICT_FS_CODES = new Set(['EEXIST', 'EISDIR', 'ENOTDIR', 'ENOTEMPTY']);

/** Classifies a `node:fs` error of the local store. */
export function classifyFsError(error: unknown): ErrorClassification {
  if (isAuditlogError(error)) {
    return { retryable: false, code: isStorageCode(error.code) ? error.code : 'STORAGE_IO', reason: error.code };
  }
  const code = typeof error === 'object' && error !== null && typeof (error as ErrorShape).code === 'string' ? ((error as ErrorShape).code as string) : undefined;
  const reason = code ?? (error instanceof Error ? error.name : 'unknown error');
  const withCode = code === undefined ? {} : { errorCode: code };
  const retryClass = code === undefined ? undefined : RETRYABLE_FS_CODES.get(code);
  if (retryClass !== undefined) return { retryable: true, retryClass, code: 'STORAGE_IO', reason, ...withCode };
  if (code !== undefined && ACCESS_FS_CODES.has(code)) return { retryable: false, code: 'STORAGE_ACCESS', reason, ...withCode };
  if (code !== undefined && CONFLICT_FS_CODES.has(code)) return { retryable: false, code: 'STORAGE_CONFLICT', reason, ...withCode };
  if (code === 'ENOENT') return { retryable: false, code: 'STORAGE_NOT_FOUND', reason, ...withCode };
  return { retryable: false, code: 'STORAGE_IO', reason, ...withCode };
}

const STORAGE_CODES: ReadonlySet<ErrorCode> = new Set<StorageErrorCode>(['STORAGE_UNREACHABLE', 'STORAGE_ACCESS', 'STORAGE_NOT_FOUND', 'STORAGE_CONFLICT', 'STORAGE_IO']);

function isStorageCode(code: ErrorCode): code is StorageErrorCode {
  return STORAGE_CODES.has(code);
}

function readStatus(shape: ErrorShape): number | undefined {
  const fromMetadata = shape.$metadata?.httpStatusCode;
  if (typeof fromMetadata === 'number') return fromMetadata;
  const fromResponse = shape.$response?.statusCode;
  return typeof fromResponse === 'number' ? fromResponse : undefined;
}

/**
 * The S3 error code. Bodiless responses (HEAD) reach us as `NotFound` or `Unknown`, which say
 * nothing the status does not; network errors carry a plain `Error`/`TimeoutError` name.
 */
function readS3Code(shape: ErrorShape, status: number | undefined): string | undefined {
  if (typeof shape.Code === 'string' && shape.Code !== '') return shape.Code;
  const name = typeof shape.name === 'string' ? shape.name : undefined;
  if (name === undefined || name === 'Error' || name === 'Unknown' || name === 'UnknownError') return undefined;
  if (status === undefined && !RETRYABLE_S3_CODES.has(name) && !ACCESS_CODES.has(name)) return undefined;
  return name;
}

function readHeader(shape: ErrorShape, header: string): string | undefined {
  const headers = shape.$response?.headers;
  if (headers === undefined) return undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === header) return value;
  }
  return undefined;
}

function describeReason(status: number | undefined, s3Code: string | undefined, nodeCode: string | undefined): string {
  const parts: string[] = [];
  if (status !== undefined) parts.push(`HTTP ${status}`);
  if (s3Code !== undefined) parts.push(s3Code);
  if (nodeCode !== undefined && nodeCode !== s3Code) parts.push(s3Code === undefined ? nodeCode : `(${nodeCode})`);
  return parts.length === 0 ? 'unknown error' : parts.join(' ');
}
