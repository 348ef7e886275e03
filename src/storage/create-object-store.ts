import { AuditlogError } from '../core/errors.js';
import type { Config } from '../config/schema.js';
import { LocalObjectStore } from './local-object-store.js';
import type { ObjectStore } from './object-store.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3-object-store.js';
import type { RetryHooks } from './with-retry.js';

export type CreateObjectStoreOptions = RetryHooks & Pick<S3ObjectStoreOptions, 'multipartThresholdBytes' | 'partSizeBytes' | 'partConcurrency'>;

/** The store the configuration names: `s3:` or `local:` (the schema guarantees exactly one). */
export function createObjectStore(config: Pick<Config, 's3' | 'local'>, options: CreateObjectStoreOptions = {}): ObjectStore {
  if (config.s3 !== undefined) return new S3ObjectStore(config.s3, options);
  if (config.local !== undefined) {
    const { sleep, random, onRetry } = options;
    return new LocalObjectStore(config.local, { sleep, random, onRetry });
  }
  throw new AuditlogError('CONFIG_INVALID', 'no storage configured: add an `s3:` or a `local:` section to the config', {
    details: { path: 's3' },
  });
}
