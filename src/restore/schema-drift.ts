/**
 * Schema drift between the archived column list (metadata) and the target table, and how each
 * kind is resolved: added columns take their default (or NULL), dropped columns are left out
 * (an error with --strict-schema), changed types are cast by PostgreSQL, renamed columns come
 * from the table's `column_map`. Pure.
 */
import { AuditlogError } from '../core/errors.js';

export interface TargetColumn {
  name: string;
  /** format_type() of the column, comparable with metadata `columns[].type`. */
  type: string;
  /** The type without its modifier (`character varying` for `varchar(3)`): what values are cast to. */
  baseType: string;
  generated: boolean;
  identity: 'always' | 'by-default' | null;
  hasDefault: boolean;
  notNull: boolean;
}

export interface LoadedColumn {
  archived: string;
  archivedType: string;
  target: string;
  targetType: string;
  /**
   * Values of another type are cast explicitly to this (no modifier); the INSERT's assignment then
   * enforces the modifier, so a too-long value fails instead of being cut (an explicit cast to
   * `varchar(3)` would silently truncate).
   */
  targetBaseType: string;
  /**
   * The type the staging table parses the archived value with, where that is not `archivedType`:
   * `text` (`text[]` for an array of an enum) for an enum value that goes into another type (see `stagedAsText`).
   */
  stagedType?: string;
}

export interface DriftPlan {
  /** Archived columns loaded into the target, in archive order. */
  columns: LoadedColumn[];
  /** Target columns the archive has no value for: they take their default or NULL. */
  added: { name: string; type: string; hasDefault: boolean }[];
  /** Archived columns with no place in the target: left out. */
  dropped: { name: string; type: string }[];
  /** Loaded columns whose type differs: the archived value is cast to the target type. */
  typeChanges: { archived: string; target: string; from: string; to: string }[];
  renamed: { from: string; to: string }[];
  /** Archived columns whose target column is GENERATED ALWAYS: PostgreSQL computes them again. */
  generated: { archived: string; target: string }[];
  /** A loaded column is GENERATED ALWAYS AS IDENTITY: the INSERT needs OVERRIDING SYSTEM VALUE. */
  overridingSystemValue: boolean;
  /**
   * Archived enum columns (and arrays of an enum) staged as text instead: every column whose value does not
   * go into that same enum type (another type, or left out). The staging table parsed them with
   * the enum, so after ALTER TYPE … RENAME VALUE every older object failed to restore into any
   * target, also a --target-table whose column is text (found by probing). Set only when not empty.
   */
  stagedAsText?: string[];
}

export function planSchemaDrift(
  archived: readonly { name: string; type: string }[],
  target: readonly TargetColumn[],
  columnMap: Readonly<Record<string, string>>,
  options: { strict: boolean; label: string; enumTypes?: ReadonlySet<string> },
): DriftPlan {
  const byName = new Map(target.map((c) => [c.name, c]));
  for (const [from, to] of Object.entries(columnMap)) {
    if (!archived.some((c) => c.name === from)) continue;
    if (!byName.has(to)) {
      throw new AuditlogError('SCHEMA_DRIFT', `column_map maps archived column "${from}" to "${to}", which ${options.label} does not have; fix column_map`, {
        details: { column: to },
      });
    }
  }
  const plan: DriftPlan = { columns: [], added: [], dropped: [], typeChanges: [], renamed: [], generated: [], overridingSystemValue: false };
  const fed = new Set<string>();
  const asText: string[] = [];
  const isEnum = (type: string): boolean => options.enumTypes?.has(type) === true;
  for (const a of archived) {
    const mapped = columnMap[a.name];
    const t = byName.get(mapped ?? a.name);
    if (t === undefined) {
      plan.dropped.push({ name: a.name, type: a.type });
      if (isEnum(a.type)) asText.push(a.name);
      continue;
    }
    if (mapped !== undefined && mapped !== a.name) plan.renamed.push({ from: a.name, to: mapped });
    if (fed.has(t.name)) {
      // Two archived columns for one target column: a raw 42701 mid-restore otherwise (found by probing).
      const other = archived.find((o) => o !== a && (columnMap[o.name] ?? o.name) === t.name)!;
      throw new AuditlogError(
        'SCHEMA_DRIFT',
        `archived columns "${other.name}" and "${a.name}" would both load into column "${t.name}" of ${options.label} under column_map; map only one of them (or bound the entry with archived_before), nothing was restored`,
        { details: { column: t.name, archived: [other.name, a.name] } },
      );
    }
    fed.add(t.name);
    if (t.generated) {
      plan.generated.push({ archived: a.name, target: t.name });
      if (isEnum(a.type)) asText.push(a.name);
      continue;
    }
    if (t.identity === 'always') plan.overridingSystemValue = true;
    const staged = isEnum(a.type) && t.type !== a.type ? textFor(a.type) : undefined;
    if (staged !== undefined) asText.push(a.name);
    plan.columns.push({ archived: a.name, archivedType: a.type, target: t.name, targetType: t.type, targetBaseType: t.baseType, ...(staged === undefined ? {} : { stagedType: staged }) });
    if (a.type !== t.type) plan.typeChanges.push({ archived: a.name, target: t.name, from: a.type, to: t.type });
  }
  for (const t of target) {
    if (fed.has(t.name) || t.generated) continue;
    if (t.notNull && !t.hasDefault && t.identity === null) {
      throw new AuditlogError('SCHEMA_DRIFT', `column "${t.name}" of ${options.label} is NOT NULL without a default and the archive has no value for it; add a default, or map an archived column to it in column_map`, {
        details: { column: t.name },
      });
    }
    plan.added.push({ name: t.name, type: t.type, hasDefault: t.hasDefault || t.identity !== null });
  }
  if (options.strict && plan.dropped.length > 0) {
    throw new AuditlogError('SCHEMA_DRIFT', `${options.label} has no column for archived column(s) ${plan.dropped.map((d) => `"${d.name}"`).join(', ')}; restore without --strict-schema to leave them out, or map them in column_map`, {
      details: { columns: plan.dropped.map((d) => d.name) },
    });
  }
  if (asText.length > 0) plan.stagedAsText = asText;
  if (plan.columns.length === 0) {
    throw new AuditlogError('SCHEMA_DRIFT', `no archived column of this object matches a column of ${options.label}; check --target-table and column_map`);
  }
  return plan;
}

/** Pure: `text`, or `text[]` for an array of an enum (format_type() writes arrays with `[]`). */
function textFor(type: string): string {
  return type.endsWith('[]') ? 'text[]' : 'text';
}

/** Pure: the archived columns with the types the staging table parses them with (drift.stagedAsText as text). */
export function stagingColumns<C extends { name: string; type: string }>(archived: readonly C[], drift: Pick<DriftPlan, 'stagedAsText'>): C[] {
  const asText = new Set(drift.stagedAsText ?? []);
  return asText.size === 0 ? [...archived] : archived.map((c) => (asText.has(c.name) ? { ...c, type: textFor(c.type) } : c));
}

/**
 * Pure: the target's key columns that some plan fills with their default (the archive has no value
 * for them): a key the target makes up itself (a serial, a default uuid) is new on every load, so
 * a row already there is never recognized — no conflict, and a rerun inserts it a second time.
 */
export function keyColumnsNotArchived(key: readonly string[], plans: Iterable<DriftPlan>): string[] {
  const out = new Set<string>();
  for (const plan of plans) for (const a of plan.added) if (key.includes(a.name)) out.add(a.name);
  return [...out];
}

export function hasDrift(plan: DriftPlan): boolean {
  return plan.added.length + plan.dropped.length + plan.typeChanges.length + plan.renamed.length + plan.generated.length > 0;
}

const WITH_ZONE = /^timestamp(\(\d+\))? with time zone$/;
const WITHOUT_ZONE = /^(timestamp(\(\d+\))? without time zone|date|time(\(\d+\))? without time zone)$/;

/**
 * Pure: the cast between a time with and one without a zone is done in the restore session's
 * TimeZone, which is UTC (db/connect.ts), not the database's: a `timestamp` column migrated to
 * `timestamptz` in a session of the database's zone and restored rows then differ by the zone's
 * offset (found by probing). Said where it matters; docs/restore.md shows how to convert otherwise.
 */
function timeZoneNote(from: string, to: string): string {
  if (WITHOUT_ZONE.test(from) && WITH_ZONE.test(to)) return `; the archived times are read as UTC, not in the database's TimeZone`;
  if (WITH_ZONE.test(from) && WITHOUT_ZONE.test(to)) return `; the archived times become UTC wall-clock times, not those of the database's TimeZone`;
  return '';
}

/** One line per finding, for the report printed before loading; renamed columns are reported per column_map entry (column-map.ts). */
export function formatDrift(plan: DriftPlan): string[] {
  const out: string[] = [];
  for (const a of plan.added) out.push(`added column "${a.name}" (${a.type}): not in the archive, gets ${a.hasDefault ? 'its default' : 'NULL'}`);
  for (const d of plan.dropped) out.push(`dropped column "${d.name}" (${d.type}): not in the target, left out`);
  for (const t of plan.typeChanges) out.push(`type change "${t.target}": ${t.from} → ${t.to}, values are cast${timeZoneNote(t.from, t.to)}`);
  for (const g of plan.generated) out.push(`generated column "${g.target}": computed again by PostgreSQL, the archived value is not loaded`);
  return out;
}

/**
 * The columns and key of a table created for a restore (`--target-table` that does not exist):
 * every column any selected object archived, in the order first seen (objects oldest run first),
 * and the key of the newest object. Creating it from the oldest object alone left columns added
 * later out of the new table, and the drift plan then dropped their values (found by probing). A
 * column archived with different types by different runs has no type that surely holds every
 * value (numeric(10,2) narrowed to numeric(10,0) rounded 1.25 to 1; text changed to integer
 * failed on every rerun; found in review): refused, naming the types, for the operator to create
 * the table with a type that does. So is a key column some selected object lacks (below).
 */
export function newTargetColumns(
  metas: ReadonlyArray<{ columns: ReadonlyArray<{ name: string; type: string }>; primary_key_columns: readonly string[] }>,
  label: string,
  /** The objects' keys, in the order of `metas`, to name one in an error. */
  keys?: readonly string[],
): { columns: { name: string; type: string }[]; key: string[] } {
  const types = new Map<string, string[]>();
  for (const meta of metas) {
    for (const c of meta.columns) {
      const seen = types.get(c.name);
      if (seen === undefined) types.set(c.name, [c.type]);
      else if (!seen.includes(c.type)) seen.push(c.type);
    }
  }
  const mixed = [...types].filter(([, t]) => t.length > 1);
  if (mixed.length > 0) {
    const list = mixed.map(([name, t]) => `"${name}" (${t.join(', ')})`).join('; ');
    throw new AuditlogError(
      'SCHEMA_DRIFT',
      `cannot create ${label}: the selected objects archived column(s) ${list} with different types, and no one type surely holds every archived value; create ${label} yourself with a type for each that does (e.g. the widest), then rerun, or narrow the selection with --from/--to`,
      { details: { columns: mixed.map(([name]) => name) } },
    );
  }
  const last = metas[metas.length - 1];
  const key = last === undefined ? [] : [...last.primary_key_columns];
  // The key columns become NOT NULL (PRIMARY KEY): an object archived before the key moved to a
  // column added since has no value for it, and was refused only after the table was created,
  // which was left behind half-made while --dry-run predicted success (found by probing). Not
  // created without the key instead: then no conflict and no second version of a row (archived
  // under the old key) would be recognised, and rows could be loaded twice silently.
  for (const column of key) {
    const lacking = metas.map((m, i) => ({ m, i })).filter(({ m }) => !m.columns.some((c) => c.name === column));
    if (lacking.length === 0) continue;
    const first = lacking[0]!;
    const example = keys?.[first.i] === undefined ? '' : ` (e.g. ${keys[first.i]})`;
    throw new AuditlogError(
      'SCHEMA_DRIFT',
      `cannot create ${label} with primary key (${key.join(', ')}), the newest object's: ${lacking.length} of the ${metas.length} selected objects${example} lack column "${column}" (archived before it existed), and a key column cannot be NULL; create ${label} yourself (with a key every object has, or a default for "${column}"), then rerun, or narrow the selection with --from/--to. Nothing was created or restored`,
      { details: { column, objects: lacking.length } },
    );
  }
  return { columns: [...types].map(([name, t]) => ({ name, type: t[0]! })), key };
}
