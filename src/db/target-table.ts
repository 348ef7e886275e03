/**
 * The restore target in the catalog: its columns and key, creating it from an archived column
 * list, and its secondary indexes (for --drop-indexes). Names are matched exactly and always
 * quoted; types come from metadata `format_type()` text, which is valid SQL type syntax.
 */
import type { TargetColumn } from '../restore/schema-drift.js';
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from './queryable.js';
import { quoteIdent, quoteQualified } from './quote-ident.js';

export interface TargetTable {
  schema: string;
  table: string;
  oid: string;
  partitioned: boolean;
  columns: TargetColumn[];
  /** Columns of the primary key (else of the first unique index over NOT NULL columns); empty if none. */
  key: string[];
  /**
   * The key's constraint is DEFERRABLE: ON CONFLICT does not accept it as arbiter, so only
   * `--conflict fail` can load into the table (found by probing).
   */
  keyDeferrable: boolean;
  /**
   * COPY into it does what INSERT does, counts included: no rewrite rules (COPY ignores them), no
   * row-level security (COPY FROM refuses it), no user triggers (one may skip or change rows,
   * which INSERT … RETURNING counts and a COPY's row count does not show), no deferrable unique
   * or exclusion constraint (a key the application inserts meanwhile would only fail at COMMIT,
   * too late to take the staging way; found in review).
   */
  copyLikeInsert: boolean;
  /**
   * A user BEFORE INSERT or BEFORE UPDATE row trigger on the table or one of its partitions: it
   * may return NULL, and the row then silently does not go in. The load counts such rows on their
   * own instead of taking them for conflicts (found by probing).
   */
  triggersMayDropRows: boolean;
  /**
   * Row-level security applies to the restoring role: its policies would filter the conflict
   * checks and the INSERT … RETURNING, and the sessions' row_security off (connect.ts) makes such
   * a query fail. Restore refuses the target up front instead.
   */
  rowSecurityActive: boolean;
}

export interface IndexDefinition {
  name: string;
  definition: string;
}

export async function loadTargetTable(q: Queryable, schema: string, table: string): Promise<TargetTable | undefined> {
  // tgtype bits (PostgreSQL's trigger.h): 1 row, 2 before, 4 insert, 16 update.
  const rel = await q.query<{ oid: string; relkind: string; copy_like_insert: string; triggers_may_drop_rows: string; row_security_active: string }>(
    `SELECT c.oid::text AS oid, c.relkind::text AS relkind, (NOT (c.relhasrules OR c.relrowsecurity OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal) OR EXISTS (SELECT 1 FROM pg_catalog.pg_index x WHERE x.indrelid = c.oid AND NOT x.indimmediate)))::text AS copy_like_insert,
            EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                     WHERE (g.tgrelid = c.oid OR g.tgrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree(c.oid)))
                       AND NOT g.tgisinternal AND g.tgenabled <> 'D' AND g.tgtype & 3 = 3 AND g.tgtype & 20 <> 0)::text AS triggers_may_drop_rows,
            pg_catalog.row_security_active(c.oid)::text AS row_security_active
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  const found = rel.rows[0];
  if (found === undefined) return undefined;
  if (found.relkind !== 'r' && found.relkind !== 'p') {
    throw new AuditlogError('TABLE_NOT_SUPPORTED', `restore target ${schema}.${table} is not a table (relkind ${found.relkind}); choose another --target-table`);
  }
  const cols = await q.query<{ attname: string; type: string; base_type: string; generated: string; identity: string; has_default: string; notnull: string }>(
    `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, pg_catalog.format_type(a.atttypid, NULL) AS base_type, (a.attgenerated <> '')::text AS generated,
            a.attidentity::text AS identity, a.atthasdef::text AS has_default, a.attnotnull::text AS notnull
       FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [found.oid],
  );
  const key = await q.query<{ cols: string; deferrable: string }>(
    `SELECT array_to_json(ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE k.ord <= i.indnkeyatts ORDER BY k.ord))::text AS cols,
            (NOT i.indimmediate)::text AS deferrable
       FROM pg_catalog.pg_index i
      WHERE i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
        AND (i.indisprimary OR NOT EXISTS (SELECT 1 FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE k.ord <= i.indnkeyatts AND NOT a.attnotnull))
      ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1`,
    [found.oid],
  );
  return {
    schema,
    table,
    oid: found.oid,
    partitioned: found.relkind === 'p',
    columns: cols.rows.map((c) => ({
      name: c.attname,
      type: c.type,
      baseType: c.base_type,
      generated: c.generated === 'true',
      identity: c.identity === 'a' ? 'always' : c.identity === 'd' ? 'by-default' : null,
      hasDefault: c.has_default === 'true',
      notNull: c.notnull === 'true',
    })),
    key: key.rows[0] === undefined ? [] : (JSON.parse(key.rows[0].cols) as string[]),
    keyDeferrable: key.rows[0]?.deferrable === 'true',
    copyLikeInsert: found.copy_like_insert === 'true',
    triggersMayDropRows: found.triggers_may_drop_rows === 'true',
    rowSecurityActive: found.row_security_active === 'true',
  };
}

/** A table in the restore target's partition tree, as the catalog names it. */
export interface OverlappingTable {
  schema: string;
  table: string;
  oid: string;
}

/**
 * The tables a restore into `oid` shares rows with: the target, its partition ancestors (an
 * archive run of one deletes through the target) and its partitions at every level (rows inserted
 * into the target are routed there). INHERITS relatives are left out on purpose: an INSERT into
 * an inheritance parent stays in the parent, the archiver deletes from an ordinary table with
 * ONLY, and it refuses a parent that has children (table-refusals.ts), so none of them overlap.
 */
export async function listOverlappingTables(q: Queryable, oid: string): Promise<OverlappingTable[]> {
  const r = await q.query<OverlappingTable>(
    `SELECT n.nspname::text AS schema, c.relname::text AS table, c.oid::text AS oid
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid IN (SELECT $1::oid
                      UNION SELECT relid FROM pg_catalog.pg_partition_ancestors($1::oid)
                      UNION SELECT relid FROM pg_catalog.pg_partition_tree($1::oid))
      ORDER BY 1, 2`,
    [oid],
  );
  return r.rows;
}

/**
 * A new table with the archived columns and types and the archived key as primary key: where
 * investigators restore without touching the live table. Extension and enum types must exist.
 */
export async function createTargetTable(q: Queryable, schema: string, table: string, columns: readonly { name: string; type: string }[], key: readonly string[]): Promise<void> {
  const defs = columns.map((c) => `${quoteIdent(c.name)} ${c.type}`);
  defs.push(`PRIMARY KEY (${key.map(quoteIdent).join(', ')})`);
  await q.query(`CREATE TABLE ${quoteQualified(schema, table)} (${defs.join(', ')})`);
}

/**
 * Indexes that only speed up reads: not the primary key, not unique (conflict handling needs
 * them), not backing a constraint, and not a partition's part of its parent's index, which
 * PostgreSQL refuses to drop on its own (found by probing: restoring into a partition dropped the
 * indexes listed before it, then failed). Their exact definitions are kept to recreate them.
 */
export async function listSecondaryIndexes(q: Queryable, oid: string): Promise<IndexDefinition[]> {
  const r = await q.query<{ name: string; definition: string }>(
    `SELECT c.relname AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS definition
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1::oid AND NOT i.indisprimary AND NOT i.indisunique
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)
      ORDER BY c.relname`,
    [oid],
  );
  return r.rows;
}

/**
 * Drops them in order, telling `onDropping` of each before its DROP: a failure part-way leaves the
 * caller knowing which may be gone — also one whose DROP committed though its answer was lost
 * (recreateIndexes skips those still there).
 */
export async function dropIndexes(q: Queryable, schema: string, indexes: readonly IndexDefinition[], onDropping: (index: IndexDefinition) => void = () => undefined): Promise<void> {
  for (const index of indexes) {
    onDropping(index);
    await q.query(`DROP INDEX ${quoteQualified(schema, index.name)}`);
  }
}

/** Recreates each index that is missing; one failing does not stop the others. `build` runs a definition (restore runs it without the query deadline). */
export async function recreateIndexes(q: Queryable, schema: string, indexes: readonly IndexDefinition[], build: (definition: string) => Promise<unknown> = (d) => q.query(d)): Promise<string[]> {
  const failed: string[] = [];
  for (const index of indexes) {
    try {
      const exists = await q.query<{ found: string }>('SELECT (pg_catalog.to_regclass($1) IS NOT NULL)::text AS found', [quoteQualified(schema, index.name)]);
      if (exists.rows[0]?.found !== 'true') await build(index.definition);
    } catch {
      failed.push(index.name);
    }
  }
  return failed;
}

/** Whether PostgreSQL can cast `from` to `to` at all (checked at parse time, without a value). */
export async function canCast(q: Queryable, from: string, to: string): Promise<boolean> {
  try {
    await q.query(`SELECT CAST(NULL::${from} AS ${to})`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Metadata types become SQL text (column definitions, casts): each must parse as exactly one
 * type name, so a tampered sidecar cannot smuggle in anything else. Returns the first type that
 * does not, or undefined.
 */
export async function findInvalidType(q: Queryable, types: readonly string[]): Promise<string | undefined> {
  for (const type of new Set(types)) {
    try {
      const r = await q.query<{ ok: string }>('SELECT (pg_catalog.to_regtype($1) IS NOT NULL)::text AS ok', [type]);
      if (r.rows[0]?.ok !== 'true') return type;
    } catch {
      return type;
    }
  }
  return undefined;
}

/**
 * Which of `types` (metadata `format_type()` text, already checked by findInvalidType) are enum
 * types, or arrays of an enum, in this database. An enum's labels can be renamed (ALTER TYPE …
 * RENAME VALUE) after rows were archived with the old label: such values no longer parse as the enum.
 */
export async function findEnumTypes(q: Queryable, types: readonly string[]): Promise<Set<string>> {
  const r = await q.query<{ type: string }>(
    `SELECT n AS type FROM pg_catalog.unnest($1::text[]) n JOIN pg_catalog.pg_type t ON t.oid = pg_catalog.to_regtype(n)
      LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
      WHERE t.typtype = 'e' OR e.typtype = 'e'`,
    [[...new Set(types)]],
  );
  return new Set(r.rows.map((row) => row.type));
}

/** The labels an enum type has now, in their sort order. */
export async function enumLabels(q: Queryable, type: string): Promise<string[]> {
  const r = await q.query<{ label: string }>(`SELECT enumlabel::text AS label FROM pg_catalog.pg_enum WHERE enumtypid = pg_catalog.to_regtype($1) ORDER BY enumsortorder`, [type]);
  return r.rows.map((row) => row.label);
}
