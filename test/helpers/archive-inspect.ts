/** Reads a whole archive back for assertions: every data object with its metadata and lines. */
import { STATE_PREFIX, dataKeyForMarker, isDataKey, metadataKeyFor } from '../../src/core/archive-layout.js';
import type { BatchMetadata } from '../../src/core/batch-metadata.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import { decodeBatch } from '../../src/archive/encode-batch.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

export interface InspectedObject {
  key: string;
  meta: BatchMetadata;
  lines: string[];
}

export interface InspectedArchive {
  objects: InspectedObject[];
  pendingMarkers: string[];
  /** Data objects without a metadata sidecar: only legitimate while their batch is in flight. */
  withoutMetadata: string[];
  allKeys: string[];
}

export async function inspectArchive(store: ObjectStore): Promise<InspectedArchive> {
  const allKeys: string[] = [];
  for await (const o of store.list('')) allKeys.push(o.key);
  const objects: InspectedObject[] = [];
  const withoutMetadata: string[] = [];
  for (const key of allKeys.filter((k) => isDataKey(k) && !k.startsWith(STATE_PREFIX))) {
    const body = (await store.get(key))!;
    const metaBody = await store.get(metadataKeyFor(key));
    if (metaBody === undefined) {
      withoutMetadata.push(key);
      continue;
    }
    const meta = JSON.parse(metaBody.toString('utf8')) as BatchMetadata;
    if (sha256Hex(body) !== meta.sha256_compressed) throw new Error(`sha mismatch for ${key}`);
    const { raw, lines } = await decodeBatch(body);
    if (sha256Hex(raw) !== meta.sha256_uncompressed) throw new Error(`uncompressed sha mismatch for ${key}`);
    objects.push({ key, meta, lines });
  }
  return { objects, pendingMarkers: allKeys.filter((k) => k.startsWith(`${STATE_PREFIX}pending/`)), withoutMetadata, allKeys };
}

/** Every archived primary key (first key column), with how many objects with metadata hold it (in flight or committed). */
export function archivedKeyCounts(archive: InspectedArchive): Map<string, number> {
  return countKeys(archive.objects);
}

/**
 * The same over committed objects only. An object whose pending marker is still there is in
 * flight: its rows may still be in the table (e.g. storage failed between its sidecar and its
 * delete), or gone (its delete committed, then removing the marker failed).
 */
export function committedKeyCounts(archive: InspectedArchive): Map<string, number> {
  // The marker's name says its object's (archive-layout.ts); the table prefix is the object key's first two segments.
  const inFlight = new Set(
    archive.objects.flatMap((o) => {
      const prefix = o.key.split('/').slice(0, 2).join('/') + '/';
      return archive.pendingMarkers.map((m) => dataKeyForMarker(prefix, m)).filter((k) => k === o.key);
    }),
  );
  return countKeys(archive.objects.filter((o) => !inFlight.has(o.key)));
}

function countKeys(objects: readonly InspectedObject[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const o of objects) for (const k of o.meta.primary_keys) counts.set(k.join(','), (counts.get(k.join(',')) ?? 0) + 1);
  return counts;
}
