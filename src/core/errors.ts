/**
 * The one error type of the project. Every failure that reaches a user carries a stable `code`
 * (scripts match on it), a one-line message that names the problem and the fix, JSON-safe
 * `details`, and the underlying `cause`. The CLI catches it once and maps `exitCode`.
 */
export type ErrorCode =
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_PARSE'
  | 'CONFIG_INVALID'
  | 'CONFIG_ENV_MISSING'
  /** `auditlog daemon`: a section it binds when it starts (storage, monitoring, notifications...) changed in its file; it needs a restart. */
  | 'CONFIG_CHANGED'
  | 'USAGE'
  | 'DB_CONNECT'
  | 'DB_QUERY'
  /** The archiver's role lacks a privilege the archive needs on a table (SELECT, UPDATE, DELETE). */
  | 'DB_PRIVILEGE'
  /** The database session would not enforce what the archive relies on (read-only, session_replication_role). */
  | 'DB_SESSION'
  | 'TABLE_NOT_FOUND'
  | 'TABLE_NOT_SUPPORTED'
  | 'COLUMN_NOT_FOUND'
  | 'NO_PRIMARY_KEY'
  /** The table's columns changed (ALTER TABLE) while a run was archiving it: the batch's delete was rolled back. */
  | 'TABLE_CHANGED'
  | 'LOCK_HELD'
  /** The table lock was lost mid-run (connection gone, heartbeat failed, lock removed): the table stopped before its next delete. */
  | 'LOCK_LOST'
  | 'STORAGE_UNREACHABLE'
  | 'STORAGE_ACCESS'
  | 'STORAGE_NOT_FOUND'
  | 'STORAGE_CONFLICT'
  | 'STORAGE_IO'
  /** The storage circuit breaker is open: the endpoint kept failing, calls fail at once until a trial succeeds. */
  | 'STORAGE_CIRCUIT_OPEN'
  | 'VERIFY_FAILED'
  | 'DELETE_MISMATCH'
  | 'EMBEDDED_POSTGRES'
  /** A restored row's key already exists in the target and `--conflict fail` was chosen. */
  | 'RESTORE_CONFLICT'
  /** An archive object does not match its metadata (checksums, record count, manifest) or its metadata is missing. */
  | 'RESTORE_CORRUPT_OBJECT'
  /** The archived columns do not fit the target table in a way restore can resolve by itself. */
  | 'SCHEMA_DRIFT'
  /** The restore ran but left archived rows out (objects in flight) or left the target incomplete (indexes not recreated). */
  | 'RESTORE_INCOMPLETE'
  /** A record-level legal hold's `where` text is not a safe, valid boolean expression on its table. */
  | 'LEGAL_HOLD_INVALID'
  /** A legal-hold source (holds table, HTTP API) could not be read: tables it might hold are not archived (fail closed). */
  | 'LEGAL_HOLD_UNAVAILABLE'
  /** A legal hold on the table was placed while the run archived it: the batch's delete was rolled back. */
  | 'LEGAL_HOLD_PLACED'
  /** A restore would change rows under an active legal hold (--conflict overwrite/upsert into a held table): refused before loading. */
  | 'LEGAL_HOLD_ACTIVE'
  /** A table's retention lies outside the compliance bounds, or names an unknown classification. */
  | 'POLICY_VIOLATION'
  /** The table must be encrypted at rest and the storage is not configured for server-side encryption. */
  | 'ENCRYPTION_REQUIRED'
  /** The uploaded object does not report the server-side encryption it was written with. */
  | 'ENCRYPTION_MISMATCH'
  /** An audit record could not be written. */
  | 'AUDIT_WRITE_FAILED'
  /** A row cannot be archived: its JSON line is over PostgreSQL's 1 GB value limit, or longer than the longest string Node.js holds. */
  | 'ROW_TOO_LARGE'
  /**
   * A table-state document or checkpoint in the state store is not valid JSON or not of the
   * expected shape (hand-edited, truncated, written by a newer version): the table is not archived
   * until `auditlog watermarks reset` discards it.
   */
  | 'STATE_INVALID'
  /** A one-shot run was stopped on request (SIGTERM, SIGINT): what committed stands, the rest was not started. */
  | 'STOPPED'
  | 'INTERNAL';

/** Exit codes of DESIGN.md §3: 1 = the work ran and something failed, 2 = usage or configuration. */
const USAGE_CODES: ReadonlySet<ErrorCode> = new Set([
  'CONFIG_NOT_FOUND',
  'CONFIG_PARSE',
  'CONFIG_INVALID',
  'CONFIG_ENV_MISSING',
  'CONFIG_CHANGED',
  'USAGE',
]);

export type ErrorDetails = Record<string, string | number | boolean | null | undefined | string[]>;

export class AuditlogError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AuditlogError';
    this.code = code;
    this.details = options.details ?? {};
  }

  get exitCode(): 1 | 2 {
    return USAGE_CODES.has(this.code) ? 2 : 1;
  }

  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isAuditlogError(error: unknown): error is AuditlogError {
  return error instanceof AuditlogError;
}

/**
 * The error of a run stopped on request. The abort reason names what stopped it (the CLI aborts
 * with the signal's name); `rest` says what happens to the work not done.
 */
export function stopRequestedError(signal: AbortSignal | undefined, rest: string): AuditlogError {
  const by = typeof signal?.reason === 'string' ? signal.reason : 'a stop request';
  return new AuditlogError('STOPPED', `stopped by ${by}: ${rest}`, { details: { stopped_by: by } });
}

/** The SQLSTATE of an error PostgreSQL sent (five characters), if it is one: Node's own errors carry other codes. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A stable code for any thrown value, for reports: ours, DB_QUERY for a database error (it has a SQLSTATE), else INTERNAL. */
export function errorCodeOf(error: unknown): ErrorCode {
  if (isAuditlogError(error)) return error.code;
  return sqlState(error) !== undefined ? 'DB_QUERY' : 'INTERNAL';
}

/** A message for any thrown value, for logs: never includes a stack or a secret-bearing object dump. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
