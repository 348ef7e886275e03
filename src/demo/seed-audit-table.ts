/**
 * The audit table of DESIGN.md §7, filled with realistic rows for the demo and the benchmark.
 *
 * Rows are generated server-side with generate_series, one INSERT per chunk so no transaction
 * grows unbounded, and every value is derived from the row number g (md5 of g for "randomness"),
 * so two seeds with the same options and `now` produce identical tables. Ids follow time, as in
 * an append-only audit log, so the (created_at, id) order matches the physical order.
 */
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from '../db/queryable.js';
import { quoteIdent, quoteQualified } from '../db/quote-ident.js';

export interface SeedAuditTableOptions {
  schema: string;
  table: string;
  rows: number;
  /** Share of rows older than the retention, 0..1. */
  oldFraction: number;
  retentionDays: number;
  /** The instant retention is measured from; default: the current time. */
  now?: Date;
  /**
   * Rows span this many days before `now`; default two years (or retention + 30 days if longer).
   * A batch never spans two UTC days, so this sets the old rows per day, hence the batch sizes.
   */
  spanDays?: number;
  /** Drop an existing table of that name first; otherwise an existing table is an error. */
  replace?: boolean;
  /** Rows per INSERT statement. */
  chunkSize?: number;
  onProgress?: (inserted: number, total: number) => void;
}

export interface SeedAuditTableResult {
  total: number;
  olderThanRetention: number;
  /** now - retentionDays: rows strictly before it are the archivable ones. */
  cutoff: Date;
}

const DAY_MS = 86_400_000;
const DEFAULT_SPAN_DAYS = 730;
const DEFAULT_CHUNK_SIZE = 100_000;
const MAX_IDENTIFIER_BYTES = 63;

export async function seedAuditTable(client: Queryable, options: SeedAuditTableOptions): Promise<SeedAuditTableResult> {
  validateSeedOptions(options);
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - options.retentionDays * DAY_MS);
  const table = quoteQualified(options.schema, options.table);
  const oldCount = Math.round(options.rows * options.oldFraction);

  const spanDays = options.spanDays ?? Math.max(DEFAULT_SPAN_DAYS, options.retentionDays + 30);

  // No row lies within a margin of the cutoff, so a run started minutes (or hours) after seeding
  // still sees exactly `oldCount` archivable rows: the expected counts stay exact.
  const margin = Math.min(DAY_MS, (options.retentionDays * DAY_MS) / 4, ((spanDays - options.retentionDays) * DAY_MS) / 4);
  const oldRange = { from: new Date(now.getTime() - spanDays * DAY_MS), to: new Date(cutoff.getTime() - margin) };
  const newRange = { from: new Date(cutoff.getTime() + margin), to: now };

  await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(options.schema)}`);
  if (options.replace === true) await client.query(`DROP TABLE IF EXISTS ${table}`);
  try {
    await client.query(createTableSql(table));
  } catch (error) {
    if ((error as { code?: unknown }).code === '42P07') {
      throw new AuditlogError('USAGE', `table ${table} already exists: drop it first or seed with replace`, { cause: error });
    }
    throw error;
  }

  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  let inserted = 0;
  for (const [range, first, last] of [
    [oldRange, 1, oldCount],
    [newRange, oldCount + 1, options.rows],
  ] as const) {
    const count = last - first + 1;
    for (let start = first; start <= last; start += chunkSize) {
      const end = Math.min(last, start + chunkSize - 1);
      await client.query(insertChunkSql(table), [start, end, first, count, range.from.toISOString(), range.to.toISOString()]);
      inserted += end - start + 1;
      options.onProgress?.(inserted, options.rows);
    }
  }

  // Indexes after the load: building them once is several times faster than maintaining them per row.
  await client.query(`ALTER TABLE ${table} ADD PRIMARY KEY (id)`);
  await client.query(`CREATE INDEX ON ${table} (created_at, id)`);
  await client.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), GREATEST($2::bigint, 1), $2::bigint > 0)`, [table, options.rows]);
  await client.query(`ANALYZE ${table}`);

  const counted = await client.query<{ total: string; old: string }>(
    `SELECT count(*) AS total, count(*) FILTER (WHERE created_at < $1::timestamptz) AS old FROM ${table}`,
    [cutoff.toISOString()],
  );
  const row = counted.rows[0];
  return { total: Number(row?.total ?? 0), olderThanRetention: Number(row?.old ?? 0), cutoff };
}

function validateSeedOptions(options: SeedAuditTableOptions): void {
  const problems: string[] = [];
  if (!Number.isSafeInteger(options.rows) || options.rows < 0) problems.push('rows: expected a non-negative integer');
  if (!(options.oldFraction >= 0 && options.oldFraction <= 1)) problems.push('oldFraction: expected a number from 0 to 1');
  if (!Number.isSafeInteger(options.retentionDays) || options.retentionDays < 1) problems.push('retentionDays: expected a positive integer');
  if (options.chunkSize !== undefined && (!Number.isSafeInteger(options.chunkSize) || options.chunkSize < 1)) {
    problems.push('chunkSize: expected a positive integer');
  }
  if (options.now !== undefined && Number.isNaN(options.now.getTime())) problems.push('now: expected a valid date');
  if (options.spanDays !== undefined && !(Number.isFinite(options.spanDays) && options.spanDays > options.retentionDays)) {
    problems.push('spanDays: expected more days than retentionDays');
  }
  for (const key of ['schema', 'table'] as const) {
    const bytes = Buffer.byteLength(options[key], 'utf8');
    // PostgreSQL would silently truncate a longer name and seed a different table than asked.
    if (bytes === 0 || bytes > MAX_IDENTIFIER_BYTES) problems.push(`${key}: expected 1 to ${MAX_IDENTIFIER_BYTES} bytes`);
    if (options[key].includes('\u0000')) problems.push(`${key}: must not contain a NUL character`);
  }
  if (problems.length > 0) throw new AuditlogError('USAGE', `invalid seed options: ${problems.join('; ')}`);
}

function createTableSql(table: string): string {
  return `CREATE TABLE ${table} (
    id bigserial NOT NULL,
    created_at timestamptz NOT NULL,
    actor_id bigint,
    actor_email text,
    action text,
    resource_type text,
    resource_id uuid,
    ip inet,
    user_agent text,
    payload jsonb,
    amount numeric(12,2),
    tags text[]
  )`;
}

/**
 * $1..$2: the row numbers of this chunk; $3, $4: the first row number and row count of the time
 * range $5..$6 the chunk belongs to. Row i of a range sits at the middle of its slot of the range,
 * jittered by up to ±40% of a slot, so rows never leave their range and stay roughly in id order.
 * Timestamps carry microseconds, and a few values carry quotes, backslashes, newlines and
 * non-ASCII text, because real audit data does and the encoder must round-trip them.
 * The nested derived tables with OFFSET 0 fences compute each derived value once per row: without
 * the fences the planner inlines them into every use and recomputes md5 a dozen times per row, and
 * LATERAL subqueries instead would be re-executed per row (each several times slower).
 */
function insertChunkSql(table: string): string {
  return `INSERT INTO ${table}
      (id, created_at, actor_id, actor_email, action, resource_type, resource_id, ip, user_agent, payload, amount, tags)
    SELECT
      r.g,
      to_timestamp(
        extract(epoch FROM $5::timestamptz)
        + ((r.g - $3::bigint) + 0.5 + (r.j - 0.5) * 0.8) * (extract(epoch FROM $6::timestamptz) - extract(epoch FROM $5::timestamptz)) / $4::bigint
      ),
      r.actor_id,
      CASE WHEN r.actor_id IS NOT NULL THEN
        (ARRAY['anna.schmidt','jose.garcia','zoe.martin','lukasz.nowak','soren.nielsen','mei.chen','olu.adeyemi','priya.sharma'])[1 + r.n1 % 8]
        || '+' || r.actor_id || '@' || (ARRAY['example.com','corp.example.org','mail.example.net'])[1 + r.n2 % 3]
      END,
      r.action,
      split_part(r.action, '.', 1),
      r.m2::uuid,
      CASE WHEN r.n3 % 5 = 0
        THEN ('2001:db8:' || to_hex(r.n4) || '::' || to_hex(r.n5))::inet
        ELSE ('10.' || (r.n4 % 256) || '.' || (r.n5 % 256) || '.' || (r.n6 % 254 + 1))::inet
      END,
      CASE WHEN r.n6 % 20 = 0 THEN NULL ELSE (ARRAY[
        'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15',
        'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
        'okhttp/4.12.0',
        'python-requests/2.31.0',
        'auditlog-sdk-go/1.8.2 (linux; amd64)'
      ])[1 + r.n7 % 7] END,
      jsonb_strip_nulls(jsonb_build_object(
        'trace_id', r.trace_id,
        'status', (ARRAY[200,200,200,201,204,400,403,404,409,500])[1 + r.n2 % 10],
        'latency_ms', round((r.n3 % 100000) / 97.0, 1),
        'changes', CASE WHEN r.action LIKE '%.update' OR r.action LIKE '%.create' THEN jsonb_build_object(
          'title', jsonb_build_object('old', 'Quarterly report ' || (r.n4 % 40), 'new', 'Quarterly report ' || (r.n4 % 40 + 1))
        ) END,
        'geo', jsonb_build_object(
          'country', (ARRAY['DE','US','FR','PL','DK','JP','NG','IN','BR'])[1 + r.n5 % 9],
          'city', (ARRAY['Berlin','Chicago','Lyon','Kraków','Århus','Tōkyō','Lagos','Pune','São Paulo'])[1 + r.n5 % 9]
        ),
        'note', CASE WHEN r.n7 % 100 = 0 THEN E'imported from "legacy" system\\nC:\\\\exports\\\\batch ' || r.n6 END
      )),
      CASE WHEN r.action LIKE 'invoice.%' THEN ((r.n1::bigint * 65536 + r.n2) % 20000000 - 1000000) / 100.0 END,
      CASE r.n3 % 6
        WHEN 0 THEN ARRAY['web']
        WHEN 1 THEN ARRAY['mobile','ios']
        WHEN 2 THEN ARRAY['api','service account']
        WHEN 3 THEN ARRAY[]::text[]
        WHEN 4 THEN NULL
        ELSE ARRAY['web','beta','"quoted"']
      END
    FROM (
      SELECT
        d.*,
        CASE WHEN d.n4 % 33 = 0 THEN NULL ELSE 1 + (d.n6::bigint * 7 + d.n7) % 50000 END AS actor_id,
        (ARRAY['user.login','user.logout','user.password_change','document.create','document.update','document.delete',
               'document.share','invoice.create','invoice.paid','permission.grant','permission.revoke','api_key.create'])[1 + d.n2 % 12] AS action
      FROM (
        SELECT
          h.g,
          h.m2,
          encode(substring(h.b FROM 5 FOR 8), 'hex') AS trace_id,
          (get_byte(h.b, 0) << 8) | get_byte(h.b, 1) AS n1,
          (get_byte(h.b, 2) << 8) | get_byte(h.b, 3) AS n2,
          (get_byte(h.b, 4) << 8) | get_byte(h.b, 5) AS n3,
          (get_byte(h.b, 6) << 8) | get_byte(h.b, 7) AS n4,
          (get_byte(h.b, 8) << 8) | get_byte(h.b, 9) AS n5,
          (get_byte(h.b, 10) << 8) | get_byte(h.b, 11) AS n6,
          (get_byte(h.b, 12) << 8) | get_byte(h.b, 13) AS n7,
          ((get_byte(h.b, 14) << 8) | get_byte(h.b, 15)) / 65536.0 AS j
        FROM (
          SELECT g, decode(md5(g::text), 'hex') AS b, md5('r' || g) AS m2
          FROM generate_series($1::bigint, $2::bigint) AS g
          OFFSET 0
        ) AS h
        OFFSET 0
      ) AS d
      OFFSET 0
    ) AS r`;
}
