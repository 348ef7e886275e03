/** The storage check every run starts with, as a stop request (SIGTERM) sees it. */
import { stopRequestedError } from '../core/errors.js';
import type { ObjectStore } from './object-store.js';

/**
 * The storage check a run starts with, given up at once on a stop (SIGTERM): against storage that
 * accepts connections and never answers it otherwise held a stopped process for max_attempts ×
 * request_timeout_ms, past any grace period (found by probing). A stop during it is STOPPED.
 */
export async function checkStorageUnlessStopped(store: ObjectStore, signal: AbortSignal | undefined, rest: string): Promise<void> {
  try {
    await store.check(signal === undefined ? undefined : { signal });
  } catch (error) {
    if (signal?.aborted === true) throw stopRequestedError(signal, rest);
    throw error;
  }
}
