/**
 * Legal holds, whatever their source: a table-level hold keeps the whole table where it is; a
 * record-level hold (`where`) keeps the rows its filter matches. Pure: matching and expiry only.
 */
import type { HoldFilter } from '../core/table-plan.js';

export type HoldSource = 'config' | 'check_table' | 'api';

export interface LegalHold {
  source: HoldSource;
  /** Configured database name; undefined = every database. */
  database?: string;
  /** `name` or `schema.name`, as in the configuration. */
  table: string;
  where?: string;
  reason: string;
  setBy?: string;
  /** ISO 8601; undefined = never expires. */
  expiresAt?: string;
  /**
   * Other configured database names that reach the same database as `database` (two `databases`
   * entries with one server and database behind them): the hold covers its tables under those
   * names too (hold-database-aliases.ts).
   */
  databaseAliases?: string[];
}

export interface TableId {
  database: string;
  schema: string;
  table: string;
}

/** A short name for messages and audit records: `source:table[#n]`. */
export function holdLabel(hold: LegalHold, index?: number): string {
  return `${hold.source} hold on ${hold.table}${index === undefined ? '' : ` #${index + 1}`} (${hold.reason})`;
}

/**
 * Whether a hold names this table. Lenient on purpose — a hold that matches too much keeps rows
 * that could have moved, one that matches too little loses them (found in review: `public.Events`,
 * `"public"."events"` or a trailing space protected nothing): surrounding spaces are ignored,
 * double-quoted parts are unquoted, and names compare without regard to case.
 */
export function holdApplies(hold: LegalHold, id: TableId): boolean {
  if (hold.database !== undefined && !holdDatabaseMatches(hold.database, id.database) && !(hold.databaseAliases ?? []).some((a) => holdDatabaseMatches(a, id.database))) return false;
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
  const parts = splitHoldTableName(hold.table);
  if (parts !== undefined && (parts.length === 1 ? same(parts[0]!, id.table) : same(parts[0]!, id.schema) && same(parts[1]!, id.table))) return true;
  // Unquoted, a dot may as well be part of the table's (or schema's) name, as `--table` reads it:
  // a hold on `my.events` "as configured" (`name: my.events`) was read as schema `my`, held
  // nothing, and its rows were deleted (found by probing). Every reading counts (fail closed).
  if (hold.table.includes('"')) return false;
  const text = hold.table.trim();
  return same(text, id.table) || same(text, `${id.schema}.${id.table}`);
}

/**
 * Whether a hold's `database` names this configured database. As lenient as table names, for the
 * same reason (found in review: `database: App` with the database configured as `app` protected
 * nothing): surrounding spaces are ignored, surrounding double quotes removed, case ignored.
 */
export function holdDatabaseMatches(holdDatabase: string, database: string): boolean {
  return normalizeDatabaseName(holdDatabase) === normalizeDatabaseName(database);
}

function normalizeDatabaseName(name: string): string {
  let s = name.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).replace(/""/g, '"');
  return s.toLowerCase();
}

/** `name`, `schema.name`, with optional double quotes around either part (`""` inside quotes). */
export function splitHoldTableName(text: string): string[] | undefined {
  const s = text.trim();
  const parts: string[] = [];
  let i = 0;
  while (i <= s.length) {
    let part = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) return undefined;
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += s[i++];
      }
    } else {
      while (i < s.length && s[i] !== '.') part += s[i++];
      part = part.trim();
    }
    parts.push(part);
    if (i >= s.length) break;
    if (s[i] !== '.') return undefined;
    i++;
  }
  // A table name with a dot in it, unquoted ("a.b.c"): also try the whole text as one name.
  if (parts.length > 2 || parts.some((p) => p === '')) return parts.length > 2 ? [s] : undefined;
  return parts;
}

/**
 * Why a hold's table name can never match a table (blank, `public.`, an unclosed quote), or
 * undefined. Such a hold held nothing while its author believed the rows safe (found by probing:
 * only a warning, and the rows were archived and deleted): the configuration refuses it, and the
 * API and the holds table, which could name any table, fail closed as for an unreadable source.
 */
export function holdTableNameProblem(text: string): string | undefined {
  if (splitHoldTableName(text) !== undefined) return undefined;
  return 'expected the held table as name or schema.name (a part in double quotes may hold dots; "" inside it is one quote)';
}

/** An unparseable expiry counts as not expired: a hold is never dropped because of a typo (fail closed). */
export function isExpired(hold: LegalHold, now: Date): boolean {
  if (hold.expiresAt === undefined) return false;
  const at = Date.parse(hold.expiresAt);
  return Number.isFinite(at) && at <= now.getTime();
}

/** A relation of a partition tree, as the catalog names it. */
export interface TreeMember {
  schema: string;
  table: string;
  oid: string;
}

/**
 * The partition tree around a configured table, read from the catalog when the table starts and
 * again inside every delete (src/db/partition-tree.ts): the relations whose holds reach its rows.
 */
export interface PartitionTree {
  /** Its parent, the parent's parent, …: a hold on any of them covers every row of the table. */
  ancestors: TreeMember[];
  /** Its partitions at every level: a hold on one covers the rows stored in it (or below it). */
  descendants: TreeMember[];
}

/**
 * Where a hold lands on a configured table. `table`: on all of it — it names the table or, with
 * `through`, an ancestor (the rows of a partition are rows of its parent, so the parent's hold
 * holds them). `partition`: only on the rows stored in these partitions of it, at any depth below.
 */
export type HoldPlacement = { scope: 'table'; through?: TreeMember } | { scope: 'partition'; partitions: TreeMember[] };

/**
 * Whether, and where, a hold applies to a configured table, by the names of the table and of its
 * partition tree. Found in review: holds matched by name only, so a hold on the parent of a
 * configured partition (or on a partition of a configured parent) protected nothing and its rows
 * were deleted. Without a tree (a table not partitioned, or not found) only its own name counts.
 */
export function placeHold(hold: LegalHold, id: TableId, tree?: PartitionTree): HoldPlacement | undefined {
  if (holdApplies(hold, id)) return { scope: 'table' };
  if (tree === undefined) return undefined;
  const names = (m: TreeMember): boolean => holdApplies(hold, { database: id.database, schema: m.schema, table: m.table });
  const ancestor = tree.ancestors.find(names);
  if (ancestor !== undefined) return { scope: 'table', through: ancestor };
  // A bare name may match partitions in several schemas: each of them is held (fail closed).
  const partitions = tree.descendants.filter(names);
  return partitions.length > 0 ? { scope: 'partition', partitions } : undefined;
}

/** An active hold that keeps some rows of a table in place (a record-level hold, or any hold on a partition of it). */
export interface RowHold {
  hold: LegalHold;
  /** Only rows stored in these partitions (or below them); undefined: rows anywhere in the table. */
  partitions?: TreeMember[];
  /** The ancestor the hold names, when it names one rather than the table. */
  through?: TreeMember;
}

export interface TableHolds {
  /** Active holds without a filter on the table or an ancestor of it: the table is not archived at all. */
  tableLevel: LegalHold[];
  /** Active holds that keep some rows: their rows are excluded from every read and delete. */
  rowLevel: RowHold[];
  expired: LegalHold[];
}

export function holdsForTable(holds: readonly LegalHold[], id: TableId, now: Date, tree?: PartitionTree): TableHolds {
  const out: TableHolds = { tableLevel: [], rowLevel: [], expired: [] };
  for (const hold of holds) {
    const placed = placeHold(hold, id, tree);
    if (placed === undefined) continue;
    if (isExpired(hold, now)) out.expired.push(hold);
    else if (placed.scope === 'partition') out.rowLevel.push({ hold, partitions: placed.partitions });
    else if (hold.where === undefined) out.tableLevel.push(hold);
    else out.rowLevel.push({ hold, ...(placed.through === undefined ? {} : { through: placed.through }) });
  }
  return out;
}

/** How a hold reaches the table, for messages: '' when it names the table itself. */
export function describePlacement(placed: { partitions?: readonly TreeMember[]; through?: TreeMember }): string {
  if (placed.through !== undefined) return `through partitioned table ${placed.through.schema}.${placed.through.table}`;
  if (placed.partitions !== undefined) return `partition ${placed.partitions.map((p) => `${p.schema}.${p.table}`).join(', ')} only`;
  return '';
}

/** The rows a row-level hold keeps, as the archive's statements apply it (src/db/archive-sql.ts). */
export function holdFilterOf(r: RowHold): HoldFilter {
  return {
    ...(r.hold.where === undefined ? {} : { where: r.hold.where }),
    ...(r.partitions === undefined ? {} : { partitionOids: r.partitions.map((p) => p.oid) }),
  };
}

/** A row-level hold's label for summaries and messages: the hold, and how it reaches the table. */
export function rowHoldLabel(r: RowHold): string {
  const how = describePlacement(r);
  return how === '' ? holdLabel(r.hold) : `${holdLabel(r.hold)} — ${how}`;
}
