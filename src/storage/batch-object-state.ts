/**
 * Where one batch's objects stand now, asked of the store object by object. `validate` and
 * `restore` list the data objects and sidecars first and the pending markers after: an archive
 * run working meanwhile may commit a batch (sidecar written, marker removed) or give one up (data,
 * sidecar, then marker deleted) between the two listings, and the listing alone then shows a data
 * object without its sidecar, or one vanished, that is nothing of the kind.
 *
 * The marker is asked first, and the objects only after its answer: an archive run removes a
 * batch's marker only once the batch is committed (data and sidecar in place, for good) or given
 * up (both already deleted). So "no marker" followed by a data object without its sidecar is a
 * real gap, never a batch caught between its writes.
 */
import { markerKeyForData, metadataKeyFor } from '../core/archive-layout.js';
import type { ObjectInfo, ObjectStore } from './object-store.js';

export type BatchObjectState =
  /** A pending marker: the batch is in flight, or its run was cut short (the next run reconciles it). */
  | { state: 'in-flight' }
  | { state: 'committed'; data: ObjectInfo; metadata: ObjectInfo }
  /** Neither object any more: the batch was given up or reconciled away. */
  | { state: 'gone' }
  | { state: 'missing-metadata'; data: ObjectInfo }
  | { state: 'missing-data'; metadata: ObjectInfo };

export async function readBatchObjectState(store: ObjectStore, prefix: string, dataKey: string): Promise<BatchObjectState> {
  const marker = markerKeyForData(prefix, dataKey);
  if (marker !== undefined && (await store.head(marker)) !== undefined) return { state: 'in-flight' };
  const [data, metadata] = await Promise.all([store.head(dataKey), store.head(metadataKeyFor(dataKey))]);
  if (data !== undefined && metadata !== undefined) return { state: 'committed', data, metadata };
  if (data !== undefined) return { state: 'missing-metadata', data };
  if (metadata !== undefined) return { state: 'missing-data', metadata };
  return { state: 'gone' };
}
