/**
 * Which archive objects a restore considers. With a date range only the day (or whole-month)
 * partitions of that range are listed, never the whole table prefix: a one-day restore of a
 * table with years of archives makes a handful of LIST calls.
 *
 * A data object is *committed* when it has a sidecar and no pending marker (docs/format.md,
 * "Commit protocol"); only those are restored. In-flight objects are reported, not trusted.
 */
import { dataKeyForMarker, isDataKey, metadataKeyFor, pendingPrefix } from '../core/archive-layout.js';
import { AuditlogError } from '../core/errors.js';
import { parseUtcDay } from '../core/utc-day.js';
import type { ObjectStore } from '../storage/object-store.js';

export interface DateRange {
  /** YYYY-MM-DD, inclusive (UTC days of the timestamp column). */
  from?: string;
  to?: string;
}

export interface SelectedObjects {
  /** Committed data objects in key order (so in day and time order). */
  committed: string[];
  /** Data objects with a pending marker: a batch in flight or left by a crash; not restored. */
  uncommitted: string[];
  /** Data objects without a metadata sidecar (and no marker): incomplete, reported as corrupt. */
  withoutMetadata: string[];
}

/** Pure: validates a --from/--to value as a real calendar day (the one parser of core/utc-day.ts). */
export const parseDay = parseUtcDay;

/**
 * Pure: the partition prefixes (relative to the table prefix) that cover [from, to]: a whole
 * month as `year=/month=/`, partial months day by day. Rows without a calendar day
 * (`year=0000/month=00/day=00`) belong to no range.
 */
export function rangePrefixes(from: string, to: string): string[] {
  if (from > to) throw new AuditlogError('USAGE', `--from ${from} is after --to ${to}`);
  const out: string[] = [];
  const day = new Date(`${from}T00:00:00Z`);
  const end = new Date(`${to}T00:00:00Z`);
  while (day <= end) {
    const y = String(day.getUTCFullYear()).padStart(4, '0');
    const m = String(day.getUTCMonth() + 1).padStart(2, '0');
    // Not Date.UTC(year, …): it reads years 0–99 as 1900–1999, and those months were listed day by day (found by probing).
    const monthEnd = new Date(day.getTime());
    monthEnd.setUTCMonth(monthEnd.getUTCMonth() + 1, 0);
    if (day.getUTCDate() === 1 && monthEnd <= end) {
      out.push(`year=${y}/month=${m}/`);
      day.setUTCMonth(day.getUTCMonth() + 1);
      continue;
    }
    out.push(`year=${y}/month=${m}/day=${String(day.getUTCDate()).padStart(2, '0')}/`);
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return out;
}

/** Pure: the UTC day of a data object from its partition, e.g. `2024-01-15`. */
export function dayOfKey(key: string): string | undefined {
  const m = /year=(\d{4})\/month=(\d{2})\/day=(\d{2})\/[^/]+$/.exec(key);
  return m === null ? undefined : `${m[1]}-${m[2]}-${m[3]}`;
}

/** Pure: whether a key's day lies in the range (open ends allowed). */
export function inRange(key: string, range: DateRange): boolean {
  if (range.from === undefined && range.to === undefined) return true;
  const day = dayOfKey(key);
  if (day === undefined || day === '0000-00-00') return false;
  return (range.from === undefined || day >= range.from) && (range.to === undefined || day <= range.to);
}

/**
 * Above this many partition prefixes one listing of the whole table, filtered by inRange, is
 * cheaper than many small ones (as validate does): a range of centuries made 120,000 listings
 * and took minutes (found by probing).
 */
const MAX_PARTITION_LISTINGS = 400;

export async function selectObjects(store: ObjectStore, tablePrefix: string, range: DateRange): Promise<SelectedObjects> {
  const partitions = range.from !== undefined && range.to !== undefined ? rangePrefixes(range.from, range.to) : [''];
  const listPrefixes = partitions.length > MAX_PARTITION_LISTINGS ? [tablePrefix] : partitions.map((p) => tablePrefix + p);
  const keys = new Set<string>();
  for (const prefix of listPrefixes) for await (const info of store.list(prefix)) keys.add(info.key);
  const pending = new Set<string>();
  for await (const info of store.list(pendingPrefix(tablePrefix))) {
    const key = dataKeyForMarker(tablePrefix, info.key);
    if (key !== undefined) pending.add(key);
  }
  const out: SelectedObjects = { committed: [], uncommitted: [], withoutMetadata: [] };
  for (const key of [...keys].sort()) {
    if (!isDataKey(key) || !inRange(key, range)) continue;
    if (pending.has(key)) out.uncommitted.push(key);
    // A sidecar of this name that describes the other codec's object is caught when it is read (check-object.ts).
    else if (!keys.has(metadataKeyFor(key))) out.withoutMetadata.push(key);
    else out.committed.push(key);
  }
  return out;
}
