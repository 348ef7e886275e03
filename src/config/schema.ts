/**
 * The one configuration schema (DESIGN.md §3). Pure: no I/O. `load-config.ts` reads the file,
 * expands `${VAR}` and hands the result here.
 */
import { COMPRESSIONS, COMPRESSION_SPECS, MAX_ZSTD_CONTENT_BYTES, type Compression } from '../core/compression.js';
import { z } from 'zod';
import { parse as parseConnectionString } from 'pg-connection-string';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { checkRetentionPolicy } from '../compliance/retention-policy.js';
import { holdTableNameProblem } from '../compliance/legal-hold.js';
import { scheduleProblem } from '../daemon/run-daemon.js';
import { encodeKeySegment, tablePrefix } from '../core/archive-layout.js';
import { findPrefixSettingProblem } from '../storage/validate-object-key.js';
import { columnMapChains } from '../restore/column-map.js';

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
/**
 * Upper bound of every `*_ms` setting: 2^31-1 ms (~24.8 days) is the largest timeout PostgreSQL
 * accepts (statement_timeout, lock_timeout... are int4 milliseconds; a larger one makes every
 * connection fail) and the largest delay of a Node.js timer (a larger one fires after 1 ms with a
 * TimeoutOverflowWarning: a heartbeat or backoff would spin).
 */
export const MAX_MILLISECONDS = 2_147_483_647;
const maxMillisecondsMessage = `expected at most ${MAX_MILLISECONDS} ms (~24.8 days, the longest timeout PostgreSQL and Node.js timers accept)`;
const positiveMs = positiveInt.max(MAX_MILLISECONDS, maxMillisecondsMessage);
const nonNegativeMs = nonNegativeInt.max(MAX_MILLISECONDS, maxMillisecondsMessage);
// PostgreSQL's NAMEDATALEN limit counts UTF-8 bytes, not characters: `.max(63)` would let a 40-character
// non-ASCII name through and PostgreSQL would silently truncate it to a different identifier.
const identifier = z
  .string()
  .min(1)
  .refine((s) => new TextEncoder().encode(s).length <= 63, 'at most 63 bytes: PostgreSQL truncates longer identifiers');

/**
 * Families of storage failures that can heal by themselves (src/storage/retry-policy.ts maps every
 * AWS/Node/fs error onto one): `throttling` 429/SlowDown, `server_error` other 5xx, `timeout`
 * request and connect timeouts (408), `connection` resets/refused/DNS retry/short bodies,
 * `checksum` bytes damaged in transit (BadDigest), `busy` a local file system's EAGAIN/EBUSY/EMFILE.
 */
export const RETRY_ERROR_CLASSES = ['throttling', 'server_error', 'timeout', 'connection', 'checksum', 'busy'] as const;
export type RetryErrorClass = (typeof RETRY_ERROR_CLASSES)[number];

export const retrySchema = z
  .object({
    max_attempts: positiveInt.max(20).default(5).describe('Attempts per storage request, including the first.'),
    base_delay_ms: positiveMs.default(200).describe('First backoff delay; doubles each attempt, with full jitter.'),
    max_delay_ms: positiveMs.default(10_000).describe('Upper bound of one backoff delay.'),
    // Optional rather than defaulted: unset means every class, and configs built in code need not list them.
    retryable_errors: z
      .array(z.enum(RETRY_ERROR_CLASSES))
      .optional()
      .describe('Failure classes that are retried (throttling, server_error, timeout, connection, checksum, busy); others fail at once. Default: all of them.'),
  })
  .strict()
  .describe('Retries of storage requests (under `s3:` or `local:`).');

export const circuitBreakerSchema = z
  .object({
    failure_threshold: positiveInt
      .max(1_000)
      .default(5)
      .describe('Consecutive storage operations that failed after their retries (endpoint unreachable or unhealthy) before the circuit opens.'),
    recovery_timeout_ms: positiveMs.default(30_000).describe('How long an open circuit fails every call at once before one trial call is let through.'),
  })
  .strict()
  .describe('Stops calling storage that keeps failing (under `s3:` or `local:`).');

const rateLimit = z
  .number()
  .positive()
  .max(100_000)
  .optional()
  .describe('Most storage requests per second (every attempt, retries included); unlimited when unset. A 503 SlowDown halves it for a while either way.');

export const s3Schema = z
  .object({
    bucket: z.string().min(3).describe('Bucket name.'),
    prefix: z.string().default('').describe('Key prefix for everything the archiver writes, e.g. `archives/`: relative, ending in `/`, with no empty, `.` or `..` segment.'),
    region: z.string().min(1).default('us-east-1').describe('Region of the bucket.'),
    // Without the protocol constraint `minio:9000` parses as a URL whose scheme is `minio:`.
    endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional().describe('Endpoint of an S3-compatible server (MinIO, R2, Ceph...).'),
    force_path_style: z.boolean().default(false).describe('Use path-style URLs (needed by most S3-compatible servers).'),
    access_key_id: z.string().min(1).optional().describe('Access key; else the default AWS credential chain.'),
    secret_access_key: z.string().min(1).optional().describe('Secret key (secret: masked when printed).'),
    session_token: z.string().min(1).optional().describe('Session token for temporary credentials (secret).'),
    storage_class: z
      .enum(['STANDARD', 'INTELLIGENT_TIERING', 'STANDARD_IA', 'ONEZONE_IA', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'])
      .default('STANDARD')
      .describe('Storage class of data objects. GLACIER and DEEP_ARCHIVE are refused: objects are read back before any delete; reach them with a bucket lifecycle rule.'),
    sse: z.enum(['none', 'AES256', 'aws:kms']).default('none').describe('Server-side encryption: SSE-S3 (AES256) or SSE-KMS.'),
    sse_kms_key_id: z.string().min(1).optional().describe('KMS key id or ARN for `sse: aws:kms`.'),
    request_timeout_ms: positiveMs.default(60_000).describe('Timeout of one storage request.'),
    retry: retrySchema.prefault({}),
    circuit_breaker: circuitBreakerSchema.prefault({}),
    rate_limit_requests_per_second: rateLimit,
    // Whole MiB: S3 parts must be at least 5 MiB (except the last), and a single PutObject at most 5 GiB.
    multipart_threshold_mb: z
      .number()
      .int()
      .min(5)
      .max(5_120)
      .default(10)
      .describe('Objects of at least this many MiB are uploaded in parts (multipart upload), each part checked by its SHA-256, resumable after a crash.'),
    multipart_part_size_mb: z.number().int().min(5).max(5_120).default(8).describe('Size of each multipart part in MiB (S3 requires at least 5); grown automatically so an object needs at most 10,000 parts.'),
    multipart_orphan_age_hours: z
      .number()
      .min(1)
      .max(24 * 365)
      .default(24)
      .describe('Incomplete multipart uploads under the prefix older than this many hours are aborted by the cleanup (at start and `auditlog cleanup`); at least 1. Only the uploads of the process running the cleanup are protected whatever their age: keep it above the longest upload and the longest time between a killed run and its rerun (docs/operations.md, Cleanup).'),
    multipart_cleanup_at_start: z.boolean().default(true).describe('Abort orphaned multipart uploads (older than multipart_orphan_age_hours) at the start of every archive run.'),
  })
  .strict()
  .superRefine((s3, ctx) => {
    if ((s3.access_key_id === undefined) !== (s3.secret_access_key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [s3.access_key_id === undefined ? 'access_key_id' : 'secret_access_key'],
        message: 'access_key_id and secret_access_key must be set together (or both left out to use the AWS credential chain)',
      });
    }
    if (s3.storage_class === 'GLACIER' || s3.storage_class === 'DEEP_ARCHIVE') {
      // Every object is read back and checked before its rows are deleted; these classes cannot be read without a restore.
      ctx.addIssue({
        code: 'custom',
        path: ['storage_class'],
        message: `${s3.storage_class} objects cannot be read back without a restore, so none could be verified before delete: use GLACIER_IR, or a bucket lifecycle rule that moves objects to ${s3.storage_class} later`,
      });
    }
    if (s3.sse_kms_key_id !== undefined && s3.sse !== 'aws:kms') {
      ctx.addIssue({ code: 'custom', path: ['sse_kms_key_id'], message: 'sse_kms_key_id needs `sse: aws:kms`' });
    }
    if (s3.prefix !== '' && !s3.prefix.endsWith('/')) {
      ctx.addIssue({ code: 'custom', path: ['prefix'], message: 'expected a prefix ending in "/" (e.g. "archives/")' });
    }
    const prefixProblem = findPrefixSettingProblem(s3.prefix);
    if (prefixProblem !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['prefix'], message: `expected a relative key prefix like "archives/" or "team/audit/", but ${prefixProblem}` });
    }
  })
  .describe('Archive to S3 or an S3-compatible server. Exactly one of `s3` and `local`.');

export const localSchema = z
  .object({
    path: z.string().min(1).describe('Directory that holds the archive (created if missing).'),
    retry: retrySchema.prefault({}),
    circuit_breaker: circuitBreakerSchema.prefault({}),
    rate_limit_requests_per_second: rateLimit,
  })
  .strict()
  .describe('Archive to a local directory (tests, demos, mounted volumes). Exactly one of `s3` and `local`.');

/**
 * Largest retention_days (~273 years): far beyond any legal retention, yet far inside PostgreSQL's
 * timestamp range (4713 BC): `now() - retention` of a few million days is "timestamp out of range",
 * and would only fail once a run computed its cutoff. The wizard's --retention-days uses it too.
 */
export const MAX_RETENTION_DAYS = 100_000;

/** A zstd object holds at most MAX_ZSTD_CONTENT_BYTES of lines (the WASM decoder's heap, core/compression.ts). */
const ZSTD_BATCH_BYTES = `expected at most ${MAX_ZSTD_CONTENT_BYTES} with compression: zstd (a zstd object holds at most 512 MiB of JSON lines)`;

/** Why a compression_level is not one of its codec's levels (core/compression.ts), or undefined. */
function compressionLevelProblem(level: number | undefined, compression: Compression, inherited: string): string | undefined {
  const spec = COMPRESSION_SPECS[compression];
  // Below 1 the key's own check has said so already.
  if (level === undefined || level < 1 || (level >= spec.minLevel && level <= spec.maxLevel)) return undefined;
  return `expected an integer from ${spec.minLevel} to ${spec.maxLevel} (${compression} levels${inherited})`;
}

/** `defaults.max_batch_bytes` unless set: 8 MiB of JSON lines per page (the cost estimate assumes it without --config). */
export const DEFAULT_MAX_BATCH_BYTES = 8_388_608;
/** The largest `batch_size`, `min_batch_size` and `max_batch_size` accepted (`auditlog cost --batch-size` too). */
export const MAX_BATCH_SIZE = 1_000_000;

/** Settings a table inherits from `defaults` unless it sets its own. */
const tunables = {
  retention_days: positiveInt.max(MAX_RETENTION_DAYS).describe('Rows whose timestamp is older than this many days are archived.'),
  batch_size: positiveInt.max(MAX_BATCH_SIZE).describe('Rows per page read, and at most per batch (one object per batch); the starting size when batches adapt.'),
  min_batch_size: positiveInt.max(MAX_BATCH_SIZE).describe('Smallest page the adaptive sizing shrinks to when queries run over target_query_time_ms.'),
  max_batch_size: positiveInt.max(MAX_BATCH_SIZE).describe('Largest page the adaptive sizing grows to when queries run well under the target (default: batch_size, i.e. only shrink); at least the batch_size in force.'),
  target_query_time_ms: positiveMs.describe('Page query time the adaptive sizing steers toward.'),
  // Bytes, not MiB, so tests can use small bounds; 1 MiB at least so a typo cannot make every page one row.
  max_batch_bytes: z
    .number()
    .int()
    .min(1_048_576)
    .max(1_073_741_824)
    .describe(
      'Most bytes of JSON lines per page read (1 MiB–1 GiB): pages of wide rows shrink to fit, below min_batch_size and down to one row. Bounds memory, which holds each batch several times over.',
    ),
  compression: z
    .enum(COMPRESSIONS)
    .describe('Codec of data objects: `gzip` (`.jsonl.gz`) or `zstd` (`.jsonl.zst`: on the benchmark audit rows a few % larger than gzip 6, for much less CPU; docs/benchmarks.md). Objects already archived keep theirs: a table may hold both.'),
  // The range depends on the codec, so it is checked where both are known (checkCompressionLevels).
  compression_level: z
    .number()
    .int()
    .min(1)
    .describe(
      'Level of the codec: gzip 1–9 (default 6; lower is faster), zstd 1–19 (default 1: on the benchmark audit rows smaller than level 3, and faster; docs/benchmarks.md); higher is slower. A level set in `defaults` is for the codec set there: a table with another `compression` uses its codec\'s default unless it sets its own level.',
    ),
  pause_between_batches_ms: nonNegativeMs.describe('Pause after each batch to leave room for the application (batches then run one at a time).'),
  batches_in_flight: positiveInt
    .max(16)
    .describe('Batches of one table uploaded, verified and deleted at once; memory grows with this times the page size (at most max_batch_bytes of lines).'),
  vacuum_after: z
    .boolean()
    .describe('Run `VACUUM (ANALYZE)` on the table after a run archived rows from it (outside any transaction), timed as the `vacuum` phase; a failed vacuum is a warning, never a failed table.'),
};

export const defaultsSchema = z
  .object({
    retention_days: tunables.retention_days.default(90),
    batch_size: tunables.batch_size.default(10_000),
    min_batch_size: tunables.min_batch_size.default(1_000),
    max_batch_size: tunables.max_batch_size.optional(),
    target_query_time_ms: tunables.target_query_time_ms.default(2_000),
    max_batch_bytes: tunables.max_batch_bytes.default(DEFAULT_MAX_BATCH_BYTES),
    compression: tunables.compression.default('gzip'),
    compression_level: tunables.compression_level.optional(),
    pause_between_batches_ms: tunables.pause_between_batches_ms.default(0),
    batches_in_flight: tunables.batches_in_flight.default(3),
    vacuum_after: tunables.vacuum_after.default(false),
    statement_timeout_ms: positiveMs
      .default(300_000)
      .describe('statement_timeout of the archiver sessions. Also their client-side deadline, plus 5 s: a connection that sends nothing for that long while a query waits is given up (DB_QUERY "no answer from the database").'),
    lock_timeout_ms: positiveMs.default(5_000).describe('lock_timeout of the archiver sessions.'),
    idle_in_transaction_session_timeout_ms: positiveMs
      .default(60_000)
      .describe(
        "idle_in_transaction_session_timeout of the archiver sessions. Each delete transaction waits, idle, while the batch's metadata sidecar is written (docs/format.md, step 3): a storage stall longer than this ends it, nothing is deleted, and the next run reconciles the batch.",
      ),
  })
  .strict()
  .superRefine((d, ctx) => {
    const problem = compressionLevelProblem(d.compression_level, d.compression, '');
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['compression_level'], message: problem });
    if (d.compression === 'zstd' && d.max_batch_bytes > MAX_ZSTD_CONTENT_BYTES) ctx.addIssue({ code: 'custom', path: ['max_batch_bytes'], message: ZSTD_BATCH_BYTES });
  })
  .describe('Settings every table inherits unless it sets its own; the timeouts apply to every session of the archiver.');

export const tableSchema = z
  .object({
    name: identifier.describe('Table name, exactly as in the catalog (case-sensitive, no quoting needed).'),
    schema: identifier.default('public').describe('Schema of the table.'),
    timestamp_column: identifier.describe('Column compared with the retention (timestamptz, timestamp or date; timestamp and date values are taken as UTC).'),
    primary_key: z
      .union([identifier, z.array(identifier).min(1)])
      .optional()
      .describe('Primary key column(s); default: read from the catalog.'),
    retention_days: tunables.retention_days.optional(),
    batch_size: tunables.batch_size.optional(),
    min_batch_size: tunables.min_batch_size.optional(),
    max_batch_size: tunables.max_batch_size.optional(),
    target_query_time_ms: tunables.target_query_time_ms.optional(),
    max_batch_bytes: tunables.max_batch_bytes.optional(),
    compression: tunables.compression.optional(),
    compression_level: tunables.compression_level.optional(),
    pause_between_batches_ms: tunables.pause_between_batches_ms.optional(),
    batches_in_flight: tunables.batches_in_flight.optional(),
    vacuum_after: tunables.vacuum_after.optional(),
    column_map: z
      .record(
        identifier,
        z.union([
          identifier,
          z
            .object({
              to: identifier.describe('Column name in the target table.'),
              archived_before: z.iso.datetime({ offset: true }).describe('ISO 8601 instant of the rename: only objects archived (sidecar created_at) before it are mapped.'),
            })
            .strict(),
        ]),
      )
      .optional()
      .describe(
        'Restore only: archived column name → column name in the target table, for columns renamed since they were archived; applied only to objects that do not already have the new name. `{ to, archived_before }` applies it only to objects archived before that instant, required for a chain or swap of names.',
      ),
    classification: z
      .string()
      .min(1)
      .optional()
      .describe('Data classification of the table (a key of compliance.data_classifications): its retention bounds and encryption requirement apply.'),
    critical: z.boolean().optional().describe('The table must be archived with server-side encryption (SSE-S3 or SSE-KMS) when compliance.enforce_encryption is on; else it is refused.'),
    allow_delete_triggers: z
      .boolean()
      .optional()
      .describe(
        'Archive the table even though enabled user DELETE triggers (on it, or on a partition) fire on the archiver\'s deletes; without it such a table is refused, since what a trigger deletes or keeps is archived nowhere. Trigger functions then run with search_path pg_catalog: schema-qualify their names or `ALTER FUNCTION … SET search_path`.',
      ),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.compression !== undefined) {
      const problem = compressionLevelProblem(t.compression_level, t.compression, '');
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['compression_level'], message: problem });
    }
    if (t.column_map !== undefined) {
      for (const c of columnMapChains(t.column_map)) {
        ctx.addIssue({
          code: 'custom',
          path: ['column_map', c.from],
          message: `"${c.from}" → "${c.to}" is part of a chain or swap of names ("${c.other}" is both mapped and mapped to): an archived object's column names cannot tell whether it predates the rename; write it as { to: ${c.to}, archived_before: <ISO 8601 instant of the rename> }`,
        });
      }
    }
    if (t.compression === 'zstd' && t.max_batch_bytes !== undefined && t.max_batch_bytes > MAX_ZSTD_CONTENT_BYTES) ctx.addIssue({ code: 'custom', path: ['max_batch_bytes'], message: ZSTD_BATCH_BYTES });
    if (!Array.isArray(t.primary_key)) return;
    const seen = new Set<string>();
    t.primary_key.forEach((column, i) => {
      if (seen.has(column)) ctx.addIssue({ code: 'custom', path: ['primary_key', i], message: `column ${column} is listed twice` });
      seen.add(column);
    });
  })
  .describe('The tables of this database to archive.');

/**
 * Why a database `url` cannot be read as the driver will read it, or undefined. node-postgres
 * reads anything but a socket path as a URL relative to a dummy base, so a raw `#`, `@` or `:`
 * in the password, or a libpq keyword string (`host=… dbname=…`), passed `config validate` and
 * failed only at run time, or connected elsewhere (found by probing). Never quotes the value
 * (the error formatter shows it with the password masked).
 */
export function findDatabaseUrlProblem(url: string): string | undefined {
  const fix = 'write postgres://user:password@host:port/dbname with special characters in the user or password percent-encoded (@ %40, : %3A, / %2F, # %23, % %25, ? %3F), or use the host/port/user/password/dbname fields';
  if (url.startsWith('/')) return undefined;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return `expected a postgres:// connection URL, found no scheme (a libpq keyword string such as "host=… dbname=…" is not read as one); ${fix}`;
  if (scheme !== 'postgres' && scheme !== 'postgresql' && scheme !== 'socket') return `expected a postgres:// or postgresql:// URL, found the scheme "${scheme}"; ${fix}`;
  try {
    // The driver's own parser (node-postgres reads the URL with it): what it accepts, connects.
    parseConnectionString(url);
  } catch {
    return `expected a PostgreSQL connection URL that parses; ${fix}`;
  }
  if (url.includes('#')) return `the URL has a "#" fragment, which would cut it short (a raw "#" in the password?); ${fix}`;
  return undefined;
}

export const databaseSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, 'expected letters, digits, "_", "-" or "." (it becomes part of object keys)')
      .describe('Name of this database in the archive layout.'),
    url: z.string().min(1).optional().describe('Connection URL (secret: the password is masked when printed).'),
    host: z.string().min(1).optional().describe('Server host name or address; required when there is no `url`.'),
    port: z.number().int().min(1).max(65535).optional().describe('Server port (default 5432).'),
    user: z.string().min(1).optional().describe('User name.'),
    password: z.string().optional().describe('Password (secret).'),
    dbname: z.string().min(1).optional().describe('Database name.'),
    ssl: z.boolean().optional().describe('Require TLS for the connection.'),
    connection_pool_size: z.number().int().min(2).max(50).default(4).describe('Pooled connections per database (one reads ahead while batches in flight delete); the table lock uses one more of its own.'),
    tables: z.array(tableSchema).min(1, 'expected at least one table'),
  })
  .strict()
  .superRefine((db, ctx) => {
    if (db.url === undefined && db.host === undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'expected `url` or `host` (with user/dbname)' });
    }
    const urlProblem = db.url === undefined ? undefined : findDatabaseUrlProblem(db.url);
    if (urlProblem !== undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: urlProblem });
    // A url plus any discrete field is ambiguous: drivers merge them with precedence rules users don't expect.
    const discrete = (['host', 'port', 'user', 'password', 'dbname'] as const).filter((k) => db[k] !== undefined);
    if (db.url !== undefined && discrete.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: [discrete[0] ?? 'host'],
        message: 'set either `url` or host/port/user/password/dbname, not both',
      });
    }
    const seen = new Set<string>();
    db.tables.forEach((t, i) => {
      // JSON, not `schema.name`: "a.b"+"c" and "a"+"b.c" are different tables with the same dotted
      // name. Their archive prefixes differ too (schema dots are escaped, archive-layout.ts), so
      // both may be listed: different tables never share a directory.
      const key = JSON.stringify([t.schema, t.name]);
      if (seen.has(key)) {
        ctx.addIssue({ code: 'custom', path: ['tables', i, 'name'], message: `table ${t.schema}.${t.name} is listed twice` });
      }
      seen.add(key);
    });
  })
  .describe('The databases to archive from: `url`, or `host` with the other discrete fields (not both).');

export const watermarksSchema = z
  .object({
    backend: z
      .enum(['storage', 's3', 'database'])
      .default('storage')
      .describe('Where per-table watermarks and last-run results live: `storage` (the bucket or local directory, under `_auditlog/state/`; `s3` is an alias) or `database` (a table in each archived database).'),
    schema: identifier.default('public').describe('Schema of the watermark table (`backend: database`).'),
    table: identifier.default('auditlog_watermarks').describe('Watermark table, created if missing (`backend: database`; needs CREATE on the schema, unless created in advance with SELECT, INSERT, UPDATE, DELETE granted).'),
  })
  .strict()
  .describe('Where each table\'s watermark and last-run result are kept.');

export const checkpointsSchema = z
  .object({
    every_batches: positiveInt.max(100_000).default(10).describe('Save the watermark and the run checkpoint after this many committed batches.'),
    backend: z.enum(['storage', 'local']).default('storage').describe('Where run checkpoints live: `storage` (under `_auditlog/checkpoints/`) or `local` (files in `local_dir`).'),
    local_dir: z.string().min(1).default('./.auditlog/checkpoints').describe('Directory of checkpoint files (`backend: local`).'),
  })
  .strict()
  .describe('How often and where a run saves its progress.');

export const lockSchema = z
  .object({
    heartbeat_interval_ms: positiveMs
      .min(100)
      .default(30_000)
      .describe('While a table is locked, how often the lock is confirmed (advisory lock still granted to our session; lock file still ours, its heartbeat rewritten).'),
    heartbeat_timeout_ms: positiveMs
      .optional()
      .describe('A heartbeat that takes longer counts as failed and the lock as lost; shorter than the interval. Default: half the interval.'),
    stale_after_ms: positiveMs
      .optional()
      .describe('A lock file whose heartbeat is older than this is stale and taken over; at least twice the interval. Default: 5 × the interval.'),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (l.heartbeat_timeout_ms !== undefined && l.heartbeat_timeout_ms >= l.heartbeat_interval_ms) {
      ctx.addIssue({ code: 'custom', path: ['heartbeat_timeout_ms'], message: `expected less than heartbeat_interval_ms (${l.heartbeat_interval_ms})` });
    }
    // A live holder's heartbeat can be one interval late plus a slow write: below two intervals it would be taken over.
    if (l.stale_after_ms !== undefined && l.stale_after_ms < 2 * l.heartbeat_interval_ms) {
      ctx.addIssue({ code: 'custom', path: ['stale_after_ms'], message: `expected at least twice heartbeat_interval_ms (${2 * l.heartbeat_interval_ms})` });
    }
  })
  .describe('How the one-archiver-per-table lock is kept alive, and when a lock file is stale.');

export const dataClassificationSchema = z
  .object({
    min: positiveInt.optional().describe('Smallest retention_days a table of this classification may have.'),
    max: positiveInt.optional().describe('Largest retention_days a table of this classification may have.'),
    require_encryption: z.boolean().default(false).describe('Tables of this classification need server-side encryption, as if `critical: true`.'),
  })
  .strict();

export const auditTrailSchema = z
  .object({
    backend: z
      .enum(['storage', 'database', 'both', 'none'])
      .default('storage')
      .describe('Where the append-only audit trail is written: `storage` (one object per event under `_auditlog/audit/`), `database` (rows of a table the archiver only INSERTs into), `both`, or `none`.'),
    database: z.string().min(1).optional().describe('Configured database that holds the audit table (`backend: database`/`both`); default: the first one.'),
    schema: identifier.default('public').describe('Schema of the audit table.'),
    table: identifier.default('auditlog_audit_trail').describe('The audit table; created if missing and the role may (else create it as in docs/compliance.md).'),
  })
  .strict()
  .describe('Where the append-only, hash-chained audit trail of archive and restore runs is written.');

export const complianceSchema = z
  .object({
    operator: z.string().min(1).optional().describe('Name recorded as the operator in audit records; default: the OS user running the tool.'),
    min_retention_days: positiveInt.optional().describe('No table may have a smaller effective retention_days (checked at config load and before archival).'),
    max_retention_days: positiveInt.optional().describe('No table may have a larger effective retention_days.'),
    data_classifications: z
      .record(z.string().min(1), dataClassificationSchema)
      .default({})
      .describe('Named classifications (e.g. PII) with retention bounds `min`/`max` and `require_encryption`; tables refer to one with `classification:`.'),
    enforce_encryption: z
      .boolean()
      .default(true)
      .describe('Refuse tables that need encryption (`critical: true` or their classification requires it) unless s3.sse is AES256 or aws:kms; the object\'s encryption is checked by HEAD after upload, before the delete.'),
    audit: auditTrailSchema.prefault({}),
  })
  .strict()
  .describe('Retention bounds (global and per data classification), encryption enforcement and the audit trail (docs/compliance.md).');

export const configuredHoldSchema = z
  .object({
    database: z.string().min(1).optional().describe('Only this configured database; default: every database with that table.'),
    table: z.string().min(1).describe('The held table: `name` or `schema.name`, as configured.'),
    where: z
      .string()
      .min(1)
      .optional()
      .describe('Record-level hold: a SQL boolean expression over the table\'s columns; matching rows are never archived nor deleted. Unset: the whole table is held.'),
    reason: z.string().min(1).describe('Why the data is held (case number, matter).'),
    set_by: z.string().min(1).optional().describe('Who placed the hold.'),
    expires_at: z.iso.datetime({ offset: true }).optional().describe('ISO 8601 instant after which the hold is ignored (and reported as expired).'),
  })
  .strict()
  .superRefine((hold, ctx) => {
    const problem = holdTableNameProblem(hold.table);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['table'], message: problem });
  });

export const holdCheckTableSchema = z
  .object({
    schema: identifier.default('public').describe('Schema of the holds table (read in each archived database).'),
    table: identifier.default('legal_holds').describe('The holds table: one row per hold; the archiver only SELECTs from it.'),
    table_name_column: identifier.default('table_name').describe('Column holding the held table (`name` or `schema.name`).'),
    where_column: identifier.default('record_filter').describe('Column holding the record-level filter (NULL: the whole table is held).'),
    reason_column: identifier.default('reason').describe('Column holding the reason.'),
    set_by_column: identifier.default('set_by').describe('Column holding who set the hold.'),
    expires_at_column: identifier.default('expires_at').describe('Column holding the expiry (timestamptz; NULL: never expires).'),
  })
  .strict();

export const holdApiSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).describe('Endpoint answering GET with JSON `{"holds": [...]}` (same fields as legal_holds.holds).'),
    timeout_ms: positiveInt.max(120_000).default(5_000).describe('Timeout of the request; on a timeout no table is archived: they fail with LEGAL_HOLD_UNAVAILABLE (fail closed).'),
    auth_header: z.string().min(1).default('Authorization').describe('Header that carries the credential.'),
    auth_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')
      .optional()
      .describe('Name of the environment variable whose value is sent in auth_header (the value is a secret, never printed).'),
  })
  .strict();

export const legalHoldsSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Check legal holds before archiving each table.'),
    holds: z.array(configuredHoldSchema).default([]).describe('Holds listed in the configuration file.'),
    check_table: holdCheckTableSchema.optional().describe('Read holds from a table in each archived database.'),
    api: holdApiSchema.optional().describe('Read holds from an HTTP endpoint; unreachable or invalid answer: no table is archived (fail closed).'),
  })
  .strict()
  .describe('Legal holds: tables, or rows matching a filter, that must not be archived while a hold is active (docs/compliance.md#legal-holds).');

const port = z.number().int().min(0).max(65_535);

export const monitoringSchema = z
  .object({
    metrics_enabled: z
      .boolean()
      .optional()
      .describe('Serve Prometheus metrics on `/metrics`. Default: on for `auditlog daemon`, off for one-shot `archive` runs (a cron process lives too briefly to be scraped reliably).'),
    metrics_port: port.default(8000).describe('Port of `/metrics` (0: any free port, logged at start).'),
    health_check_enabled: z.boolean().optional().describe('Serve `/health`. Default: on for `auditlog daemon`, off for one-shot `archive` runs.'),
    health_check_port: port.default(8001).describe('Port of `/health` (0: any free port, logged at start); not the metrics_port: the two are separate servers.'),
    listen_host: z.string().min(1).default('0.0.0.0').describe('Address the metrics and health servers listen on (`127.0.0.1` to keep them off the network).'),
    health_check_timeout_ms: positiveInt.max(300_000).default(5_000).describe('Each health check (one per database, one for the bucket) counts as down after this long; also bounds the storage check of `config validate --check-connections`.'),
    progress_update_interval: z.number().positive().max(3_600).default(5).describe('Seconds between progress log lines when stderr is not a terminal (on a terminal the progress line is redrawn live).'),
    quiet_mode: z.boolean().default(false).describe('No progress output and only warnings and errors in the log, as `--quiet` (for cron).'),
  })
  .strict()
  .superRefine((m, ctx) => {
    // /metrics and /health are two servers (src/cli/monitoring-setup.ts): on one port the second
    // fails with EADDRINUSE when the daemon starts. Port 0 picks a free port for each.
    const both = m.metrics_enabled !== false && m.health_check_enabled !== false;
    if (both && m.metrics_port !== 0 && m.metrics_port === m.health_check_port) {
      ctx.addIssue({
        code: 'custom',
        path: ['health_check_port'],
        message: `expected a port other than metrics_port (${m.metrics_port}): /metrics and /health are separate servers and cannot share a port (or turn one off with metrics_enabled or health_check_enabled: false)`,
      });
    }
  })
  .describe('Prometheus metrics, the health endpoint and progress output (docs/operations.md).');

export const daemonSchema = z
  .object({
    // Read by the daemon's own parser, so `config validate` refuses what `auditlog daemon` would (same message as --schedule).
    schedule: z
      .string()
      .min(1)
      .superRefine((expression, ctx) => {
        const problem = scheduleProblem(expression);
        if (problem !== undefined) {
          ctx.addIssue({ code: 'custom', message: `${JSON.stringify(expression)} ${problem}` });
        }
      })
      .default('0 2 * * *')
      .describe('Cron expression of `auditlog daemon` runs (5 fields, 6 with seconds first, or 7 with seconds first and a year last), in UTC; `--schedule` overrides it.'),
  })
  .strict()
  .describe('`auditlog daemon`: archive runs on a schedule in one long-lived process.');

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (24-hour)');
const timeZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an IANA time zone such as Europe/Berlin or UTC' },
);
/**
 * fetch refuses a URL with userinfo ("Request cannot be constructed from a URL that includes
 * credentials"): such a URL passed validation and then failed every delivery. Refused at load
 * instead; the message never repeats the URL (its password).
 */
const webhookUrl = z
  .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
  // A URL that is not http(s) at all has its own issue above: one issue per mistake.
  .refine((url) => !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol) || (new URL(url).username === '' && new URL(url).password === ''), {
    message: 'contains a user name or password (user:password@), which a webhook request can never send: remove it, and put the receiver\'s token in the URL\'s path or query string instead (the whole URL is kept secret)',
  });

export const NOTIFICATION_KINDS = ['start', 'success', 'failure', 'threshold'] as const;

const templateSchema = z
  .object({
    subject: z.string().min(1).optional().describe('Subject (email) or title (chat) of the message; `{{name}}` placeholders are filled in.'),
    body: z.string().min(1).optional().describe('Text of the message; `{{name}}` placeholders are filled in.'),
  })
  .strict()
  .describe('Subject and body of one kind of message; unset parts keep the default.');

export const notificationsSchema = z
  .object({
    events: z
      .array(z.enum(NOTIFICATION_KINDS))
      .default(['failure', 'threshold'])
      .describe('Which events send a message: start, success, failure, threshold (a run broke a limit of `thresholds`).'),
    digest: z.boolean().default(false).describe('Collect start, success and threshold messages into one digest: daily at `digest_time` under `auditlog daemon` (and when it stops), at the end of the run for a one-shot `archive`; failures are still sent at once.'),
    digest_time: clockTime.default('08:00').describe('When the daily digest goes out, HH:MM in `timezone`.'),
    rate_limit_hours: z.number().min(0).default(0).describe('At most one message per event kind in this many hours (0: no limit); the ones held back are logged.'),
    timezone: timeZone.default('UTC').describe('Time zone of `quiet_hours` and `digest_time`.'),
    quiet_hours: z
      .object({
        start: clockTime.describe('Start of the quiet hours, HH:MM in `timezone`.'),
        end: clockTime.describe('End of the quiet hours (may be past midnight: 22:00 → 07:00).'),
      })
      .strict()
      .optional()
      .describe('No messages in this window (they are logged instead), except failures with `critical_override`.'),
    critical_override: z.boolean().default(true).describe('Failures are sent during quiet hours and despite the rate limit.'),
    thresholds: z
      .object({
        max_run_minutes: z.number().positive().optional().describe('A run longer than this many minutes is a threshold violation.'),
        max_rows_skipped: nonNegativeInt.optional().describe('More rows than this skipped in a run (changed or locked while archived) is a threshold violation.'),
        max_days_without_archive: z
          .number()
          .positive()
          .optional()
          .describe('A table that archived no row for this many days (while the daemon runs) is a threshold violation; checked after every run, also one that could not start (storage down, a configuration file that no longer loads).'),
      })
      .strict()
      .prefault({})
      .describe('Limits whose violation sends a `threshold` message.'),
    templates: z
      .object({
        start: templateSchema.optional(),
        success: templateSchema.optional(),
        failure: templateSchema.optional(),
        threshold: templateSchema.optional(),
        digest: templateSchema.optional(),
      })
      .strict()
      .prefault({})
      .describe('Message templates per event (and the digest), overriding the defaults.'),
    timeout_ms: positiveInt.max(120_000).default(10_000).describe('Each delivery (SMTP or webhook) gives up after this long.'),
    email: z
      .object({
        host: z.string().min(1).describe('SMTP server.'),
        port: port.default(587).describe('SMTP port (587 STARTTLS, 465 TLS).'),
        secure: z.boolean().default(false).describe('TLS from the start (port 465); otherwise STARTTLS when the server offers it.'),
        require_tls: z.boolean().default(false).describe('Refuse to send unless STARTTLS succeeds.'),
        tls_reject_unauthorized: z.boolean().default(true).describe('Check the server certificate (turn off only for a test server).'),
        username: z.string().min(1).optional().describe('SMTP user (from the environment: `${SMTP_USER}`).'),
        password: z.string().min(1).optional().describe('SMTP password (secret; from the environment: `${SMTP_PASSWORD}`).'),
        from: z.string().min(3).describe('Sender address.'),
        to: z.array(z.string().min(3)).min(1).describe('Recipients.'),
      })
      .strict()
      .optional()
      .describe('Send messages by email over SMTP.'),
    slack: z.object({ webhook_url: webhookUrl.describe('Incoming webhook URL (secret: it holds the token; no user:password@).') }).strict().optional().describe('Post messages to a Slack incoming webhook.'),
    teams: z
      .object({ webhook_url: webhookUrl.describe('Incoming webhook URL (secret: it holds the token; no user:password@).') })
      .strict()
      .optional()
      .describe('Post messages to a Microsoft Teams incoming webhook.'),
    webhook: z
      .object({ webhook_url: webhookUrl.describe('URL that receives each message as a JSON POST (secret: it may hold a token in its path or query; no user:password@).') })
      .strict()
      .optional()
      .describe('POST every message as JSON to this URL.'),
  })
  .strict()
  .describe('Messages about runs by email, Slack, Teams or a generic webhook (off when absent).');

/**
 * How directory `a` relates to directory `b` when one holds the other (compared as absolute
 * paths, relative ones against the working directory as the stores resolve them); undefined when
 * they are apart.
 */
function directoriesOverlap(a: string, b: string): string | undefined {
  const ra = resolve(a);
  const rb = resolve(b);
  if (ra === rb) return 'is the same directory as';
  const inside = (child: string, parent: string): boolean => {
    const rel = relative(parent, child);
    return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
  };
  if (inside(ra, rb)) return 'is inside';
  if (inside(rb, ra)) return 'contains';
  return undefined;
}

export const configSchema = z
  .object({
    s3: s3Schema.optional(),
    local: localSchema.optional(),
    defaults: defaultsSchema.prefault({}),
    parallel_databases: z.boolean().default(false).describe('Archive several databases at once.'),
    max_parallel_databases: positiveInt.max(16).default(2).describe('How many databases at once when parallel.'),
    application_name: z.string().min(1).max(63).default('auditlog-manager').describe('application_name of the sessions.'),
    local_fallback_dir: z
      .string()
      .min(1)
      .optional()
      .describe('When storage stays unavailable after retries, failed batches are spooled here (rows are not deleted) and archived first by the next run. Must be apart from `local.path` (not the same directory, inside it, or containing it). Off when unset.'),
    local_fallback_retention_days: positiveInt.default(7).describe('Spooled batches older than this are discarded (their rows are still in the table and are read again).'),
    watermarks: watermarksSchema.prefault({}),
    checkpoints: checkpointsSchema.prefault({}),
    lock: lockSchema.prefault({}),
    compliance: complianceSchema.prefault({}),
    legal_holds: legalHoldsSchema.prefault({ enabled: false }),
    monitoring: monitoringSchema.prefault({}),
    daemon: daemonSchema.prefault({}),
    notifications: notificationsSchema.optional(),
    databases: z.array(databaseSchema).min(1, 'expected at least one database'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.s3 === undefined) === (c.local === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `expected exactly one of \`s3:\` or \`local:\`, found ${c.s3 === undefined ? 'neither' : 'both'}`,
      });
    }
    const names = new Set<string>();
    c.databases.forEach((d, i) => {
      if (names.has(d.name)) ctx.addIssue({ code: 'custom', path: ['databases', i, 'name'], message: `database name ${d.name} is used twice` });
      names.add(d.name);
    });
    for (const issue of checkRetentionPolicy(c)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    // max_batch_size below the batch_size in force was raised to it without a word (batch_size is
    // where the adaptive sizing starts, so the bounds include it): the cap the user set did
    // nothing (found by probing). Refused where it is set, naming the batch_size it is under.
    const capBelowStart = (max: number | undefined, batchSize: number, from: string, path: (string | number)[]): void => {
      if (max === undefined || max >= batchSize) return;
      ctx.addIssue({ code: 'custom', path, message: `${max} is below batch_size (${batchSize}${from}), where the adaptive sizing starts, so it would be raised to it: lower batch_size too, or raise max_batch_size` });
    };
    capBelowStart(c.defaults.max_batch_size, c.defaults.batch_size, ', from defaults', ['defaults', 'max_batch_size']);
    c.databases.forEach((d, i) =>
      d.tables.forEach((t, j) => {
        const from = t.batch_size === undefined ? ', from defaults' : '';
        if (t.max_batch_size !== undefined) capBelowStart(t.max_batch_size, t.batch_size ?? c.defaults.batch_size, from, ['databases', i, 'tables', j, 'max_batch_size']);
        // A table's own batch_size above the cap it inherits raises that cap the same way.
        else if (t.batch_size !== undefined && c.defaults.max_batch_size !== undefined && c.defaults.max_batch_size < t.batch_size) {
          ctx.addIssue({ code: 'custom', path: ['databases', i, 'tables', j, 'batch_size'], message: `${t.batch_size} is above defaults.max_batch_size (${c.defaults.max_batch_size}), which would be raised to it: lower batch_size, or set max_batch_size for this table` });
        }
      }),
    );
    // A table's level for the codec it inherits (the others are checked beside their codec, below).
    c.databases.forEach((d, i) =>
      d.tables.forEach((t, j) => {
        // zstd with max_batch_bytes from the other level (each set alone is checked beside its codec).
        if (t.compression === 'zstd' && t.max_batch_bytes === undefined && c.defaults.max_batch_bytes > MAX_ZSTD_CONTENT_BYTES) {
          ctx.addIssue({ code: 'custom', path: ['databases', i, 'tables', j, 'compression'], message: `zstd needs max_batch_bytes of at most ${MAX_ZSTD_CONTENT_BYTES} and defaults.max_batch_bytes is ${c.defaults.max_batch_bytes}: set max_batch_bytes for this table` });
        }
        if (t.compression !== undefined) return;
        if (c.defaults.compression === 'zstd' && t.max_batch_bytes !== undefined && t.max_batch_bytes > MAX_ZSTD_CONTENT_BYTES) {
          ctx.addIssue({ code: 'custom', path: ['databases', i, 'tables', j, 'max_batch_bytes'], message: ZSTD_BATCH_BYTES });
        }
        const problem = compressionLevelProblem(t.compression_level, c.defaults.compression, ', the compression it inherits from defaults');
        if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['databases', i, 'tables', j, 'compression_level'], message: problem });
      }),
    );
    if (c.local_fallback_dir !== undefined && c.local !== undefined) {
      const overlap = directoriesOverlap(c.local_fallback_dir, c.local.path);
      // Found in review: with both the same directory, a replay took the archive's committed
      // .metadata.json sidecars for spooled batches and deleted them all.
      if (overlap !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['local_fallback_dir'],
          message: `${resolve(c.local_fallback_dir)} ${overlap} local.path (${resolve(c.local.path)}): the spool and the archive would share files, and a replay removes the spool files it has used; use a directory apart from local.path`,
        });
      }
    }
    if (c.local !== undefined) {
      c.databases.forEach((d, i) => {
        // A directory of its own (under the archive and under _auditlog/locks, state, checkpoints).
        const segment = encodeKeySegment(d.name);
        if (segment.length > 255) {
          ctx.addIssue({ code: 'custom', path: ['databases', i, 'name'], message: `the archive directory of database ${d.name.slice(0, 40)}… would be named with ${segment.length} bytes (percent-encoded); a local: directory name takes at most 255: use a shorter name` });
        }
        d.tables.forEach((t, j) => {
          const problem = localNameProblem(d.name, t.schema, t.name);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['databases', i, 'tables', j, 'name'], message: problem });
        });
      });
    }
    const auditDb = c.compliance.audit.database;
    if (auditDb !== undefined && !c.databases.some((d) => d.name === auditDb)) {
      ctx.addIssue({ code: 'custom', path: ['compliance', 'audit', 'database'], message: `database ${auditDb} is not configured (configured: ${c.databases.map((d) => d.name).join(', ')})` });
    }
  });

/**
 * File systems take names of at most 255 bytes. The table's directory and its state files
 * (`<schema>.<table>.json`, `.lock`, and their temp files `.<name>.<pid>-<random>.auditlog-tmp`)
 * are named after the percent-encoded schema and table, where each byte of a non-ASCII character
 * takes three: two 63-byte names of accented letters made a 380-byte name, and the run failed with
 * ENAMETOOLONG as an internal error (found by probing). Refused here, before any run.
 */
const LOCAL_NAME_ROOM = 255 - '..json.4194304-0123456789ab.auditlog-tmp'.length;

function localNameProblem(database: string, schema: string, table: string): string | undefined {
  const segment = tablePrefix(database, schema, table).split('/')[1]!;
  if (segment.length <= LOCAL_NAME_ROOM) return undefined;
  return `the archive directory and state files of ${schema}.${table} would be named after "${segment.slice(0, 40)}…", ${segment.length} bytes (names are percent-encoded: each byte of a non-ASCII character takes 3); a local: directory allows ${LOCAL_NAME_ROOM} here (file names are limited to 255 bytes); use s3: storage, or shorter schema and table names`;
}

export type Config = z.infer<typeof configSchema>;
export type S3Config = z.infer<typeof s3Schema>;
export type LocalConfig = z.infer<typeof localSchema>;
export type DatabaseConfig = z.infer<typeof databaseSchema>;
export type TableConfig = z.infer<typeof tableSchema>;
export type DefaultsConfig = z.infer<typeof defaultsSchema>;
export type RetryConfig = z.infer<typeof retrySchema>;
export type CircuitBreakerConfig = z.infer<typeof circuitBreakerSchema>;
export type WatermarksConfig = z.infer<typeof watermarksSchema>;
export type CheckpointsConfig = z.infer<typeof checkpointsSchema>;
export type LockConfig = z.infer<typeof lockSchema>;
export type ComplianceConfig = z.infer<typeof complianceSchema>;
export type LegalHoldsConfig = z.infer<typeof legalHoldsSchema>;
export type ConfiguredHold = z.infer<typeof configuredHoldSchema>;
export type HoldCheckTableConfig = z.infer<typeof holdCheckTableSchema>;
export type HoldApiConfig = z.infer<typeof holdApiSchema>;
export type MonitoringConfig = z.infer<typeof monitoringSchema>;
export type NotificationsConfig = z.infer<typeof notificationsSchema>;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

/** The lock timings with their derived defaults filled in (pure). */
export interface LockTimings {
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  staleAfterMs: number;
}

export function resolveLockTimings(lock: LockConfig): LockTimings {
  const interval = lock.heartbeat_interval_ms;
  return {
    heartbeatIntervalMs: interval,
    heartbeatTimeoutMs: lock.heartbeat_timeout_ms ?? Math.max(1, Math.floor(interval / 2)),
    staleAfterMs: lock.stale_after_ms ?? 5 * interval,
  };
}

export { SECRET_KEYS } from './secret-keys.js';
