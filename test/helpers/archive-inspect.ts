/** Reads a whole archive back for assertions: every data object with its metadata and lines. */
import { DATA_SUFFIX, STATE_PREFIX, metadataKeyFor } from '../../src/core/archive-layout.js';
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
  for (const key of allKeys.filter((k) => k.endsWith(DATA_SUFFIX))) {
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
  // A marker is named `<YYYY-MM-DD>-<object name>.json`; the object `<object name>.jsonl.gz`.
  const inFlight = new Set(archive.pendingMarkers.map((m) => m.slice(m.lastIndexOf('/') + 1 + 'YYYY-MM-DD-'.length, -'.json'.length)));
  return countKeys(archive.objects.filter((o) => !inFlight.has(o.key.slice(o.key.lastIndexOf('/') + 1, -DATA_SUFFIX.length))));
}

function countKeys(objects: readonly InspectedObject[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const o of objects) for (const k of o.meta.primary_keys) counts.set(k.join(','), (counts.get(k.join(',')) ?? 0) + 1);
  return counts;
}
