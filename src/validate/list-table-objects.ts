/**
 * What a table's part of the archive holds, from listings only: data objects paired with their
 * sidecars by name, strays, and which batches still have a pending marker (uncommitted).
 * With a date range only that range's day partitions (and markers) are listed.
 * A gzip and a zstd object of one batch name (the codec changed between runs) are two entries
 * sharing the one sidecar key; the sidecar's `compression` says which it describes (check-metadata.ts).
 */
import { dataKeyForMarker, pendingPrefix } from '../core/archive-layout.js';
import { COMPRESSION_SPECS } from '../core/compression.js';
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
  const byKey = new Map<string, ListedObject>();
  const sidecars = new Map<string, { day: string; size: number }>();
  const strays: string[] = [];
  const entry = (dataKey: string, base: string, day: string): ListedObject => {
    let o = byKey.get(dataKey);
    if (o === undefined) {
      o = { dataKey, metadataKey: `${prefix}${base}.metadata.json`, day, uncommitted: false };
      byKey.set(dataKey, o);
    }
    return o;
  };
  const partitions = range === undefined ? [''] : partitionPrefixes(range);
  const listings = partitions.length > MAX_PARTITION_LISTINGS ? [''] : partitions;
  for (const partition of listings) {
    for await (const info of store.list(`${prefix}${partition}`)) {
      const relative = info.key.slice(prefix.length);
      const kind = classifyKey(relative);
      if (kind.kind === 'stray') {
        // A whole-table listing for a range sees every stray: only those under one of the range's
        // partitions are reported, as the partition listings would. Dropping all of them let an
        // open range (`--from` alone) pass strays that a closed one reports (found by probing).
        if (range === undefined || partition !== '' || partitions.some((p) => relative.startsWith(p))) strays.push(info.key);
        continue;
      }
      if (!isDayInRange(kind.day, range)) continue;
      if (kind.kind === 'data') entry(info.key, kind.base, kind.day).dataSize = info.size;
      else sidecars.set(kind.base, { day: kind.day, size: info.size });
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
    entry(key!, kind.base, kind.day).uncommitted = true;
  }
  const paired = new Set<string>();
  for (const o of byKey.values()) {
    const base = o.metadataKey.slice(prefix.length, -'.metadata.json'.length);
    const sidecar = sidecars.get(base);
    if (sidecar === undefined) continue;
    o.metadataSize = sidecar.size;
    paired.add(base);
  }
  // A sidecar without any data object: named after the gzip object, as every sidecar before zstd
  // was (the check reads the sidecar and names the object it describes).
  for (const [base, sidecar] of sidecars) {
    if (!paired.has(base)) entry(`${prefix}${base}${COMPRESSION_SPECS.gzip.dataSuffix}`, base, sidecar.day).metadataSize = sidecar.size;
  }
  const objects = [...byKey.values()].sort((a, b) => (a.dataKey < b.dataKey ? -1 : a.dataKey > b.dataKey ? 1 : 0));
  return { objects, strays };
}
