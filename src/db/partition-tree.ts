/**
 * The partition tree around a table, for placing legal holds (src/compliance/legal-hold.ts,
 * placeHold): its ancestors and its partitions at every level, as the catalog has them now. A
 * partition detached since is a table of its own and in no tree of its former parent.
 */
import type { PartitionTree, TreeMember } from '../compliance/legal-hold.js';
import { AuditlogError, describeError } from '../core/errors.js';
import type { Queryable } from './queryable.js';

/**
 * Ancestors nearest first, partitions level by level. Undefined when there is no such table (its
 * own name is then all a hold can match). Names compare exactly, as the archive resolves them (catalog.ts).
 */
export async function loadPartitionTree(q: Queryable, schema: string, table: string): Promise<PartitionTree | undefined> {
  const r = await q.query<TreeMember & { relation: 'self' | 'ancestor' | 'descendant' }>(
    `WITH me AS (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2),
          up AS (SELECT a.relid, a.n FROM me, pg_catalog.pg_partition_ancestors(me.oid) WITH ORDINALITY AS a(relid, n)),
          down AS (SELECT d.relid, d.level FROM me, pg_catalog.pg_partition_tree(me.oid) AS d)
     SELECT n.nspname::text AS schema, c.relname::text AS table, c.oid::text AS oid,
            CASE WHEN c.oid = me.oid THEN 'self' WHEN c.oid IN (SELECT relid FROM up) THEN 'ancestor' ELSE 'descendant' END AS relation
       FROM me, pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = me.oid OR c.oid IN (SELECT relid FROM up) OR c.oid IN (SELECT relid FROM down)
      ORDER BY (SELECT up.n FROM up WHERE up.relid = c.oid), (SELECT down.level FROM down WHERE down.relid = c.oid), 1, 2`,
    [schema, table],
  );
  if (!r.rows.some((row) => row.relation === 'self')) return undefined;
  const member = (row: TreeMember): TreeMember => ({ schema: row.schema, table: row.table, oid: row.oid });
  return {
    ancestors: r.rows.filter((row) => row.relation === 'ancestor').map(member),
    descendants: r.rows.filter((row) => row.relation === 'descendant').map(member),
  };
}

/**
 * The tree, for placing holds on `database`/`schema.table`; a catalog that cannot be read throws
 * LEGAL_HOLD_UNAVAILABLE, for the caller to fail closed (archive, restore, cost) or report (holds
 * list): a hold on its parent could not be told from none. One catalog query: read again wherever
 * holds are placed, as partitions may be attached between two reads (found in review: a hold on a
 * partition attached mid-run was placed through the tree read at the start, and its rows deleted).
 */
export async function loadHoldTree(q: Queryable, database: string, schema: string, table: string): Promise<PartitionTree | undefined> {
  try {
    return await loadPartitionTree(q, schema, table);
  } catch (error) {
    throw new AuditlogError('LEGAL_HOLD_UNAVAILABLE', `the partition tree of ${database}/${schema}.${table} could not be read (${describeError(error)}): legal holds on its parent or its partitions cannot be placed, so it is not archived, nor restored over (overwrite/upsert), until it can (fail closed); run again once the catalog can be read`, {
      details: { database, table: `${schema}.${table}` },
      cause: error,
    });
  }
}
