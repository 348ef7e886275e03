/**
 * Versions of a row archived under two primary-key definitions. A row archived under key (id),
 * restored into the live table, changed, and archived again after the key became
 * (id, created_at) is in the archive twice, and the two manifest keys ([3] and [3, "2020-…"]) never
 * matched: the older version was not superseded, and `--conflict skip` then kept it, exit 0
 * (found by probing). The two are one row only if the newer definition's extra columns are equal
 * too, which the older sidecar does not record; leaving a version out on the shared columns alone
 * could drop a distinct row (two rows with id 3 and different created_at are both valid under the
 * newer key). So keys are compared on the columns every definition shares, and a key found under
 * two definitions is only loaded where the result is right whichever it is — `--conflict
 * overwrite`/`upsert` into a table keyed by the later definition, loading the older version first
 * (one row: the later version replaces it; two rows: both stay) — and otherwise refused before
 * anything is loaded. With one definition (nearly always) nothing here changes how keys compare.
 * Pure.
 */
import { AuditlogError } from '../core/errors.js';
import { quoteListForDisplay } from '../core/quote-for-display.js';
import type { Candidate } from './restore-options.js';
import type { ConflictStrategy } from './restore-sql.js';

type Meta = Pick<Candidate['meta'], 'primary_key_columns' | 'columns' | 'created_at'>;

/** column_map as it holds for one object (column-map.ts: entries depend on the object's columns and archive time), or one map for all. */
export type KeyColumnMap = Readonly<Record<string, string>> | ((meta: Meta) => Readonly<Record<string, string>>);

export interface KeyDefinitions {
  /** More than one definition among the objects: keys are compared through `projection`. */
  mixed: boolean;
  /** Target column names every definition has, in the first definition's order; empty: keys of different definitions cannot be compared. */
  common: string[];
  /** A definition's identity: its key columns, as target names (column_map applied), sorted. */
  definition(meta: Meta): string;
  /** The definition's columns as target names, in key order (for messages and the target's key). */
  columns(meta: Meta): string[];
  /** What identifies a row version's key exactly: equal texts are one key of one definition. */
  identity(meta: Meta, key: readonly string[]): string;
  /** The key's values on the common columns: equal texts under two definitions may be one row. */
  projection(meta: Meta, key: readonly string[]): string;
}

export function keyDefinitions(objects: readonly { meta: Meta }[], columnMap: KeyColumnMap = {}): KeyDefinitions {
  const mapOf = typeof columnMap === 'function' ? columnMap : () => columnMap;
  const columns = (meta: Meta): string[] => {
    const map = mapOf(meta);
    return meta.primary_key_columns.map((c) => map[c] ?? c);
  };
  const first = objects[0] === undefined ? [] : columns(objects[0].meta);
  const same = objects.every((o) => sameList(o.meta.primary_key_columns, objects[0]!.meta.primary_key_columns) && sameList(columns(o.meta), first));
  if (same) {
    // One definition: the manifest's key text, exactly as before.
    const text = (_: Meta, key: readonly string[]): string => JSON.stringify(key);
    const names = first;
    return { mixed: false, common: names, definition: () => JSON.stringify([...names].sort()), columns: () => names, identity: text, projection: text };
  }
  const sorted = (meta: Meta): string[] => [...columns(meta)].sort();
  const common = columns(objects[0]!.meta).filter((c) => objects.every((o) => columns(o.meta).includes(c)));
  const pick = (meta: Meta, key: readonly string[], names: readonly string[]): string[] => {
    const cols = columns(meta);
    return names.map((n) => key[cols.indexOf(n)]!);
  };
  return {
    mixed: true,
    common,
    definition: (meta) => JSON.stringify(sorted(meta)),
    columns,
    identity: (meta, key) => JSON.stringify([sorted(meta), pick(meta, key, sorted(meta))]),
    projection: (meta, key) => JSON.stringify(pick(meta, key, common)),
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One key found under two definitions: `earlier` archived before `later` (archiveOrder). */
export interface CrossDefinitionKey {
  earlier: Candidate;
  later: Candidate;
  /** The common columns and the key's values on them. */
  columns: string[];
  values: string[];
}

export interface LoadPlan {
  strategy: ConflictStrategy;
  /** The target's key (target column names); for a table a dry run would create: the newest object's key. */
  targetKey: readonly string[];
  /** Objects to load (the others the restore watermark skips). */
  toLoad: ReadonlySet<string>;
  label: string;
  /** Where each run's objects start in the load order (restore-table.ts, runsOldestFirst). */
  runPosition: ReadonlyMap<string, number>;
}

const list = (names: readonly string[]): string => `(${names.join(', ')})`;

/**
 * Pure: undefined where loading both versions gives the right result whether they are one row or
 * two, else the SCHEMA_DRIFT error refusing the restore. Objects load oldest run first, and under
 * overwrite/upsert a later run's batches wait for the earlier ones (load-objects.ts).
 */
export function crossDefinitionRefusal(found: CrossDefinitionKey, defs: KeyDefinitions, plan: LoadPlan): AuditlogError | undefined {
  const { earlier, later } = found;
  if (!plan.toLoad.has(earlier.key) && !plan.toLoad.has(later.key)) return undefined;
  const laterColumns = defs.columns(later.meta);
  const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
  const fix = `restore with --conflict overwrite into a table whose key is ${list(laterColumns)}, e.g. a new --target-table: the versions then load oldest first, so of one row the version archived last wins, and rows that differ in ${list(laterColumns.filter((c) => !found.columns.includes(c)))} all stay`;
  const earlierColumns = defs.columns(earlier.meta);
  const lost = earlierColumns.filter((c) => !laterColumns.includes(c));
  let reason: string | undefined;
  let todo = fix;
  if (lost.length > 0) {
    // A narrower later key: rows the earlier key kept apart ([3, t1] and [3, t2]) would collapse
    // into one under it, whichever conflict strategy (found in review).
    reason = `the later key lacks ${list(lost)}, so rows the earlier key kept apart would be merged into one`;
    todo = `restore the objects of each key into a table keyed by ${list([...new Set([...earlierColumns, ...laterColumns])])} (a --target-table you create), then merge by hand`;
  } else if (plan.strategy === 'skip') reason = '--conflict skip would keep the version loaded first, the older one';
  // Only when both load: with the older one restored before (restore watermark), fail stops on the
  // row already there, which is no silent choice (found in review).
  else if (plan.strategy === 'fail') {
    if (plan.toLoad.has(earlier.key) && plan.toLoad.has(later.key)) reason = '--conflict fail would stop on the second version';
  } else if (!sameSet(plan.targetKey, laterColumns)) reason = `the key of ${plan.label} is ${list(plan.targetKey)}, not ${list(laterColumns)}, so it would ${plan.targetKey.length < laterColumns.length ? 'merge rows that differ in the other key columns' : 'keep both versions of one row'}`;
  else if (!plan.toLoad.has(later.key)) {
    reason = `the later version (${later.key}) was restored into ${plan.label} before (restore watermark), and the older one would overwrite it`;
    todo = 'rerun with --ignore-watermark and --conflict overwrite';
  } else if (plan.toLoad.has(earlier.key) && !((plan.runPosition.get(earlier.meta.run_id) ?? Infinity) < (plan.runPosition.get(later.meta.run_id) ?? -Infinity))) {
    reason =
      earlier.meta.run_id === later.meta.run_id
        ? 'both versions were archived by the same run, so the order of runs cannot tell which loads last'
        : 'the run that archived the later version comes first in the archive (its first object sorts before those of the run that archived the older one), so the older version would load last';
    todo = 'inspect both objects (JSON lines: docs/format.md shows how to read one) and restore the version to keep by hand';
  }
  if (reason === undefined) return undefined;
  // The values quoted: a key can be any text (an empty string, commas, control characters).
  const key = `${list(found.columns)}=${quoteListForDisplay(found.values)}`;
  return new AuditlogError(
    'SCHEMA_DRIFT',
    `key ${key} was archived under primary key ${list(defs.columns(earlier.meta))} (archive object ${earlier.key}) and again, later, under primary key ${list(laterColumns)} (archive object ${later.key}): restore cannot tell whether these are versions of one row, and ${reason}; ${todo}. Nothing was loaded`,
    { details: { check: 'key-definitions', key: later.key, other: earlier.key, columns: found.columns, earlier_key: defs.columns(earlier.meta), later_key: laterColumns } },
  );
}
