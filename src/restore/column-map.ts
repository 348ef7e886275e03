/**
 * Which `column_map` entries apply to which archived object. Pure.
 *
 * A rename holds only for the objects archived before it: an object archived after it already
 * carries the new name, and may carry the old name again as a new column (`status` renamed to
 * `legacy_status`, a new `status` added). Applying the map to every object turned that new
 * `status` into a second `legacy_status` (a raw 42701 mid-restore, after earlier batches
 * committed), and a swap of two names restored the newer rows with their two values exchanged,
 * exit 0 (both found by probing). So an entry `old → new` applies to an object only if:
 *   - plain form: the object has `old` and not `new` (no object archived after the rename has `old`
 *     without `new`, and none archived before it has `new`, unless `new` is itself a renamed name:
 *     a chain or a swap, which the names cannot tell apart — see columnMapChains — or the name of
 *     a dropped column reused, refused where the archive times show it: ColumnMapReport.checkEras);
 *   - `{ to, archived_before }`: the object's sidecar `created_at` is before the bound.
 */
import { AuditlogError } from '../core/errors.js';

/** A table's `column_map` as configured: archived name → target name, or one bounded by archive time. */
export type ColumnMapConfig = Readonly<Record<string, string | { to: string; archived_before: string }>>;

export interface ColumnMapEntry {
  from: string;
  to: string;
  /** ISO 8601 instant; only objects whose sidecar `created_at` is before it get the entry. */
  archivedBefore?: string;
}

export function columnMapEntries(config: ColumnMapConfig | undefined): ColumnMapEntry[] {
  return Object.entries(config ?? {})
    .filter(([from, to]) => from !== (typeof to === 'string' ? to : to.to))
    .map(([from, to]) => (typeof to === 'string' ? { from, to } : { from, to: to.to, archivedBefore: to.archived_before }));
}

/**
 * The entries of a chain or cycle (`{a: b, b: c}`, a swap `{s: note, note: s}`) that have no
 * `archived_before`: an object's column names cannot say whether it predates such a rename (it
 * has both names in every era). The config refuses them (schema.ts).
 */
export function columnMapChains(config: ColumnMapConfig): { from: string; to: string; other: string }[] {
  const entries = columnMapEntries(config);
  const sources = new Set(entries.map((e) => e.from));
  const targets = new Set(entries.map((e) => e.to));
  const out: { from: string; to: string; other: string }[] = [];
  for (const e of entries) {
    if (e.archivedBefore !== undefined) continue;
    if (sources.has(e.to)) out.push({ from: e.from, to: e.to, other: e.to });
    else if (targets.has(e.from)) out.push({ from: e.from, to: e.to, other: e.from });
  }
  return out;
}

export type SkipReason = 'has-target' | 'archived-after';

export interface ObjectColumnMap {
  /** archived name → target name, for this object. */
  map: Record<string, string>;
  /** Entries whose source column the object has, but which do not apply to it. */
  skipped: { entry: ColumnMapEntry; reason: SkipReason }[];
}

export function columnMapFor(entries: readonly ColumnMapEntry[], object: { columns: ReadonlyArray<{ name: string }>; created_at: string }): ObjectColumnMap {
  const names = new Set(object.columns.map((c) => c.name));
  const out: ObjectColumnMap = { map: {}, skipped: [] };
  for (const entry of entries) {
    if (!names.has(entry.from)) continue;
    if (entry.archivedBefore !== undefined) {
      const archivedAt = Date.parse(object.created_at);
      // Not "after the bound" by default: the object's column would then load by its own name,
      // perhaps into a column re-added under that name (found in review).
      if (!Number.isFinite(archivedAt)) {
        throw new AuditlogError(
          'SCHEMA_DRIFT',
          `column_map "${entry.from}" → { to: ${entry.to}, archived_before: ${entry.archivedBefore} } cannot be decided for an object whose sidecar has no valid created_at (${JSON.stringify(object.created_at ?? null)}): restore it with a plain entry or none, selecting it with --from/--to; nothing was restored`,
          { details: { from: entry.from, to: entry.to } },
        );
      }
      if (archivedAt < Date.parse(entry.archivedBefore)) out.map[entry.from] = entry.to;
      else out.skipped.push({ entry, reason: 'archived-after' });
    } else if (names.has(entry.to)) {
      out.skipped.push({ entry, reason: 'has-target' });
    } else {
      out.map[entry.from] = entry.to;
    }
  }
  return out;
}

/** An object's columns and key under its own map: what a restore loads it as. */
export function mappedColumns<M extends { columns: ReadonlyArray<{ name: string; type: string }>; primary_key_columns: readonly string[] }>(
  meta: M,
  map: Readonly<Record<string, string>>,
): { columns: { name: string; type: string }[]; primary_key_columns: string[] } {
  const name = (n: string): string => map[n] ?? n;
  return { columns: meta.columns.map((c) => ({ name: name(c.name), type: c.type })), primary_key_columns: meta.primary_key_columns.map(name) };
}

/**
 * Per entry, the objects it was applied to and those it was not, as drift lines: with a
 * bounded entry or a re-added name, an operator must be able to see which era got which names.
 */
export class ColumnMapReport {
  private readonly byEntry = new Map<ColumnMapEntry, { applied: Era; skipped: Map<SkipReason, Era> }>();

  add(entries: readonly ColumnMapEntry[], object: { key: string; created_at: string }, decision: ObjectColumnMap): void {
    for (const entry of entries) {
      const applied = decision.map[entry.from] === entry.to;
      const skip = decision.skipped.find((s) => s.entry === entry);
      if (!applied && skip === undefined) continue;
      let seen = this.byEntry.get(entry);
      if (seen === undefined) {
        seen = { applied: new Era(), skipped: new Map() };
        this.byEntry.set(entry, seen);
      }
      if (applied) seen.applied.add(object);
      else {
        let era = seen.skipped.get(skip!.reason);
        if (era === undefined) seen.skipped.set(skip!.reason, (era = new Era()));
        era.add(object);
      }
    }
  }

  /**
   * A plain entry assumes its skipped objects (they have both names) were archived after the
   * rename, so after every object it applied to. One archived before such an object means the
   * names say something else (a column dropped, another renamed to its name later): refused,
   * rather than loading the old column of that name into the renamed one.
   */
  checkEras(): void {
    for (const [entry, seen] of this.byEntry) {
      const both = seen.skipped.get('has-target');
      if (both === undefined || seen.applied.count === 0 || both.earliest.created_at >= seen.applied.latest.created_at) continue;
      throw new AuditlogError(
        'SCHEMA_DRIFT',
        `column_map "${entry.from}" → "${entry.to}": ${both.earliest.key} (archived ${both.earliest.created_at}) has both columns, yet ${seen.applied.latest.key} (archived ${seen.applied.latest.created_at}) has only "${entry.from}", so the names cannot tell which objects predate the rename; write the entry as { to: ${entry.to}, archived_before: <ISO 8601 instant of the rename> }. Nothing was restored`,
        { details: { from: entry.from, to: entry.to } },
      );
    }
  }

  lines(): string[] {
    const out: string[] = [];
    for (const [entry, seen] of this.byEntry) {
      if (seen.applied.count > 0) out.push(`renamed column "${entry.from}" → "${entry.to}" (column_map) in ${seen.applied.describe()}`);
      for (const [reason, era] of seen.skipped) {
        const why =
          reason === 'has-target'
            ? `already ${era.count === 1 ? 'has' : 'have'} a column "${entry.to}" (archived after the rename), so "${entry.from}" is taken by name`
            : `archived at or after its archived_before ${entry.archivedBefore}, so "${entry.from}" is taken by name`;
        out.push(`column_map "${entry.from}" → "${entry.to}" not applied to ${era.describe()}: ${why}`);
      }
    }
    return out;
  }
}

/** Count, archive-time range and first/last key of a set of objects. */
class Era {
  count = 0;
  private first?: { key: string; created_at: string };
  private last?: { key: string; created_at: string };

  get earliest(): { key: string; created_at: string } {
    return this.first!;
  }

  get latest(): { key: string; created_at: string } {
    return this.last!;
  }

  add(object: { key: string; created_at: string }): void {
    this.count++;
    if (this.first === undefined || object.created_at < this.first.created_at) this.first = object;
    if (this.last === undefined || object.created_at >= this.last.created_at) this.last = object;
  }

  describe(): string {
    const objects = this.count === 1 ? '1 object' : `${this.count} objects`;
    if (this.count === 1) return `${objects} (${this.first!.key}, archived ${this.first!.created_at})`;
    return `${objects} archived ${this.first!.created_at} (${this.first!.key}) to ${this.last!.created_at} (${this.last!.key})`;
  }
}
