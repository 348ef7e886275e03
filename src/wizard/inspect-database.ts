/**
 * What the wizard learns about a database from its catalog: the tables with their sizes, and per
 * chosen table the key, the timestamp candidates with their indexes, and how old the rows are.
 * Read-only; every value is cast to text in SQL (the archiver's pools parse nothing).
 */
import { quoteIdent, quoteQualified } from '../db/quote-ident.js';
import type { Queryable } from '../db/queryable.js';

export interface TableListing {
  schema: string;
  name: string;
  /** pg_class.reltuples: an estimate, null when the table was never analyzed. */
  estimatedRows: number | null;
  totalBytes: number;
}

export interface TimestampCandidate {
  name: string;
  type: 'timestamptz' | 'timestamp' | 'date';
  notNull: boolean;
  /** The column leads a valid index, so `WHERE col < cutoff ORDER BY col` can use it. */
  indexed: boolean;
}

export interface TableKey {
  columns: string[];
  /** A unique index over NOT NULL columns, accepted by the archiver when there is no primary key. */
  kind: 'primary key' | 'unique index';
}

export interface TableDetection {
  schema: string;
  name: string;
  /** A partitioned table (relkind 'p'): its indexes are built per partition, never CONCURRENTLY on the parent. */
  partitioned?: boolean;
  columns: string[];
  key: TableKey | null;
  timestampCandidates: TimestampCandidate[];
}

export interface AgeDistribution {
  column: string;
  rows: number;
  oldest: string | null;
  newest: string | null;
  /** Rows older than each number of days, for AGE_BUCKETS_DAYS. */
  olderThan: { days: number; rows: number }[];
  /** Counted on a TABLESAMPLE of a big table, then scaled: an estimate. */
  sampled: boolean;
}

export const AGE_BUCKETS_DAYS = [7, 30, 90, 180, 365, 730, 1095] as const;
/** Above this many estimated rows the age distribution is counted on a sample, not the whole table. */
const SAMPLE_ABOVE_ROWS = 2_000_000;

/**
 * A partitioned table holds nothing itself, and autovacuum never analyzes it: its size and row
 * estimate are its leaf partitions' (found by probing: a fully analyzed partitioned audit table
 * showed "0 KB, never analyzed", and its age distribution was then counted on the whole table
 * instead of a sample). A leaf not analyzed yet (a partition created since autovacuum last ran)
 * but holding data counts its pages at the analyzed leaves' rows per page, not as empty (it made a
 * table look a fraction of its size, and its age then counted in full rather than on a sample).
 * Unknown when no leaf has been analyzed, or none of those analyzed has a page to measure by.
 */
const TABLE_SIZES_SQL = `
  SELECT s.schema, s.name, s.reltuples::bigint::text AS reltuples, s.bytes::text AS bytes FROM (
    SELECT n.nspname AS schema, c.relname AS name,
           CASE WHEN c.relkind <> 'p' THEN c.reltuples
                ELSE (SELECT CASE WHEN count(*) = 0 THEN 0
                                  WHEN count(*) FILTER (WHERE l.reltuples >= 0) = 0 THEN -1
                                  WHEN coalesce(sum(pg_catalog.pg_relation_size(l.oid)) FILTER (WHERE l.reltuples < 0), 0) = 0 THEN sum(GREATEST(l.reltuples, 0))
                                  WHEN coalesce(sum(l.relpages) FILTER (WHERE l.reltuples >= 0), 0) = 0 THEN -1
                                  ELSE sum(l.reltuples) FILTER (WHERE l.reltuples >= 0)
                                       + sum(pg_catalog.pg_relation_size(l.oid)) FILTER (WHERE l.reltuples < 0) / pg_catalog.current_setting('block_size')::int
                                         * (sum(l.reltuples) FILTER (WHERE l.reltuples >= 0) / sum(l.relpages) FILTER (WHERE l.reltuples >= 0)) END
                        FROM pg_catalog.pg_partition_tree(c.oid) t JOIN pg_catalog.pg_class l ON l.oid = t.relid WHERE t.isleaf) END AS reltuples,
           CASE WHEN c.relkind <> 'p' THEN pg_catalog.pg_total_relation_size(c.oid)
                ELSE (SELECT sum(pg_catalog.pg_total_relation_size(t.relid)) FROM pg_catalog.pg_partition_tree(c.oid) t) END AS bytes
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%') s
  ORDER BY s.bytes DESC, s.schema, s.name`;

export async function listTables(q: Queryable): Promise<TableListing[]> {
  const r = await q.query<{ schema: string; name: string; reltuples: string; bytes: string }>(TABLE_SIZES_SQL);
  return r.rows.map((row) => ({
    schema: row.schema,
    name: row.name,
    // -1 (PostgreSQL 14+) or 0 with no pages: never analyzed, so no estimate rather than a wrong one.
    estimatedRows: Number(row.reltuples) < 0 ? null : Number(row.reltuples),
    totalBytes: Number(row.bytes),
  }));
}

export async function detectTable(q: Queryable, schema: string, name: string): Promise<TableDetection | null> {
  const rel = await q.query<{ oid: string; partitioned: string }>(
    `SELECT c.oid::text AS oid, (c.relkind = 'p')::text AS partitioned FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, name],
  );
  const oid = rel.rows[0]?.oid;
  if (oid === undefined) return null;
  const partitioned = rel.rows[0]?.partitioned === 'true';
  // A partitioned table is read through its partitions' indexes: one on every leaf partition
  // serves as well as one on the parent (found by probing: the wizard said "no index" and advised
  // one when every partition had it). Matched by name, as a partition's column numbers may differ.
  // Only a B-tree serves the ordered keyset pages: a BRIN or hash index on the column (BRIN is
  // common on audit tables) leaves each page a scan and a sort (found by probing: it counted).
  const leads = (relid: string, column: string): string =>
    `EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute ia ON ia.attrelid = i.indrelid AND ia.attnum = i.indkey[0]
              JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid JOIN pg_catalog.pg_am am ON am.oid = ic.relam
              WHERE i.indrelid = ${relid} AND ia.attname = ${column} AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree')`;
  const cols = await q.query<{ attname: string; base_type: string; notnull: string; indexed: string }>(
    `SELECT a.attname, pg_catalog.format_type(COALESCE(NULLIF(t.typbasetype, 0), a.atttypid), NULL) AS base_type, a.attnotnull::text AS notnull,
            (${leads('a.attrelid', 'a.attname')}
             OR ($2 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(a.attrelid) p WHERE p.isleaf AND NOT ${leads('p.relid', 'a.attname')})))::text AS indexed
       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid, partitioned],
  );
  const kinds: Record<string, TimestampCandidate['type']> = { 'timestamp with time zone': 'timestamptz', 'timestamp without time zone': 'timestamp', date: 'date' };
  const timestampCandidates = cols.rows.flatMap((c) => {
    const type = kinds[c.base_type];
    return type === undefined ? [] : [{ name: c.attname, type, notNull: c.notnull === 'true', indexed: c.indexed === 'true' }];
  });
  const keys = await q.query<{ primary: string; cols: string; not_null: string }>(
    `SELECT i.indisprimary::text AS primary,
            array_to_json(ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE k.ord <= i.indnkeyatts ORDER BY k.ord))::text AS cols,
            (SELECT bool_and(a.attnotnull) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE k.ord <= i.indnkeyatts)::text AS not_null
       FROM pg_catalog.pg_index i
      WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
      ORDER BY i.indisprimary DESC, i.indnkeyatts, i.indexrelid`,
    [oid],
  );
  const best = keys.rows.find((k) => k.primary === 'true') ?? keys.rows.find((k) => k.not_null === 'true');
  return {
    schema,
    name,
    ...(partitioned ? { partitioned } : {}),
    columns: cols.rows.map((c) => c.attname),
    key: best === undefined ? null : { columns: JSON.parse(best.cols) as string[], kind: best.primary === 'true' ? 'primary key' : 'unique index' },
    timestampCandidates,
  };
}

/** Counts rows by age of `column`. `estimatedRows` (from listTables) decides whether to sample. */
export async function loadAgeDistribution(q: Queryable, schema: string, name: string, column: TimestampCandidate, estimatedRows: number | null): Promise<AgeDistribution> {
  const ts = `t.${quoteIdent(column.name)}`;
  const sampled = estimatedRows !== null && estimatedRows > SAMPLE_ABOVE_ROWS;
  // SYSTEM sampling reads whole pages: about SAMPLE_ABOVE_ROWS / 4 rows whatever the table size.
  const percent = sampled ? Math.max(0.01, Math.min(100, ((SAMPLE_ABOVE_ROWS / 4) * 100) / estimatedRows)) : 100;
  // REPEATABLE: the same table gives the same figures on every run of the wizard.
  const from = `${quoteQualified(schema, name)} AS t${sampled ? ` TABLESAMPLE SYSTEM (${percent.toFixed(4)}) REPEATABLE (8)` : ''}`;
  const buckets = AGE_BUCKETS_DAYS.map((d) => `count(*) FILTER (WHERE ${ts} < (now() - make_interval(days => ${d}))::${column.type === 'timestamptz' ? 'timestamptz' : column.type})::text AS d${d}`);
  const r = await q.query<Record<string, string | null>>(`SELECT count(*)::text AS n, min(${ts})::text AS oldest, max(${ts})::text AS newest, ${buckets.join(', ')} FROM ${from}`);
  const row = r.rows[0] ?? {};
  const scale = sampled ? 100 / percent : 1;
  const n = (v: string | null | undefined): number => Math.round(Number(v ?? 0) * scale);
  return {
    column: column.name,
    rows: n(row.n),
    oldest: row.oldest ?? null,
    newest: row.newest ?? null,
    olderThan: AGE_BUCKETS_DAYS.map((days) => ({ days, rows: n(row[`d${days}`]) })),
    sampled,
  };
}
