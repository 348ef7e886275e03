/**
 * What a table's part of the archive holds, from listings only: data objects paired with their
 * sidecars by name, strays, and which batches still have a pending marker (uncommitted).
 * With a date range only that range's day partitions (and markers) are listed.
 */
import { dataKeyForMarker, pendingPrefix } from '../core/archive-layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import { classifyKey } from './classify-key.js';
import { isDayInRange, partitionPrefixes, type DayRange } from './select-partitions.js';

export interface ListedObject {
  /** Full key of the data object (relative to the store root), also when only its sidecar exists. */
  dataKey: string;
  metadataKey: string;
  day: string;
  /** undefined: not listed. */
  dataSize?: number;
  metadataSize?: number;
  /** A pending marker exists: the batch's delete was never seen to commit. */
  uncommitted: boolean;
}

export interface TableListing {
  objects: ListedObject[];
  strays: string[];
}

/** Above this many partition prefixes one listing of the whole table is cheaper than many small ones. */
const MAX_PARTITION_LISTINGS = 400;

export async function listTableObjects(store: ObjectStore, prefix: string, range: DayRange | undefined): Promise<TableListing> {
  const byBase = new Map<string, ListedObject>();
  const strays: string[] = [];
  const entry = (base: string, day: string): ListedObject => {
    let o = byBase.get(base);
    if (o === undefined) {
      o = { dataKey: `${prefix}${base}.jsonl.gz`, metadataKey: `${prefix}${base}.metadata.json`, day, uncommitted: false };
      byBase.set(base, o);
    }
    return o;
  };
  const partitions = range === undefined ? [''] : partitionPrefixes(range);
  const listings = partitions.length > MAX_PARTITION_LISTINGS ? [''] : partitions;
  for (const partition of listings) {
    for await (const info of store.list(`${prefix}${partition}`)) {
      const kind = classifyKey(info.key.slice(prefix.length));
      if (kind.kind === 'stray') {
        // A whole-table listing for a range sees every stray; those are not in the range.
        if (range === undefined || partition !== '') strays.push(info.key);
        continue;
      }
      if (!isDayInRange(kind.day, range)) continue;
      const o = entry(kind.base, kind.day);
      if (kind.kind === 'data') o.dataSize = info.size;
      else o.metadataSize = info.size;
    }
  }
  for await (const info of store.list(pendingPrefix(prefix))) {
    const key = dataKeyForMarker(prefix, info.key);
    const kind = key === undefined ? undefined : classifyKey(key.slice(prefix.length));
    if (kind === undefined || kind.kind !== 'data') {
      if (range === undefined) strays.push(info.key);
      continue;
    }
    if (!isDayInRange(kind.day, range)) continue;
    entry(kind.base, kind.day).uncommitted = true;
  }
  const objects = [...byBase.values()].sort((a, b) => (a.dataKey < b.dataKey ? -1 : a.dataKey > b.dataKey ? 1 : 0));
  return { objects, strays };
}
