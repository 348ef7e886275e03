/** The storage check every run starts with, as a stop request (SIGTERM) sees it. */
import { stopRequestedError } from '../core/errors.js';
import type { CheckOptions, ObjectStore } from './object-store.js';

/**
 * The storage check a run starts with, given up at once on a stop (SIGTERM): against storage that
 * accepts connections and never answers it otherwise held a stopped process for max_attempts ×
 * request_timeout_ms, past any grace period (found by probing). A stop during it is STOPPED.
 */
export async function checkStorageUnlessStopped(store: ObjectStore, signal: AbortSignal | undefined, rest: string, options: Pick<CheckOptions, 'writeNothing'> = {}): Promise<void> {
  try {
    await store.check({ ...options, ...(signal === undefined ? {} : { signal }) });
  } catch (error) {
    if (signal?.aborted === true) throw stopRequestedError(signal, rest);
    throw error;
  }
}
