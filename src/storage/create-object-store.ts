import { AuditlogError } from '../core/errors.js';
import type { Config } from '../config/schema.js';
import { CircuitBreaker, type CircuitStateChange } from './circuit-breaker.js';
import { CircuitBreakerObjectStore, CircuitGuard } from './circuit-breaker-object-store.js';
import { LocalObjectStore } from './local-object-store.js';
import type { ObjectStore } from './object-store.js';
import { RequestRateLimiter, type RateChange } from './request-rate-limiter.js';
import type { S3ObjectStoreOptions } from './s3-object-store.js';
import type { RetryHooks } from './with-retry.js';

export type CreateObjectStoreOptions = Pick<RetryHooks, 'sleep' | 'random' | 'onRetry'> &
  Pick<S3ObjectStoreOptions, 'multipartThresholdBytes' | 'partSizeBytes' | 'partConcurrency' | 'onPartUploaded' | 'onMultipart'> & {
    /** Milliseconds since the epoch, for the circuit breaker and the rate limiter; defaults to Date.now. */
    now?: () => number;
    onCircuitChange?: (change: CircuitStateChange) => void;
    onRateChange?: (change: RateChange) => void;
  };

/**
 * The store the configuration names: `s3:` or `local:` (the schema guarantees exactly one),
 * behind its circuit breaker, every request attempt paced by its rate limiter. Async because the
 * S3 store (and with it the AWS SDK, ~0.25 s of CPU to load) is imported only when the config
 * uses S3: a `local:` run, and every CLI start-up, does not pay for it.
 */
export async function createObjectStore(config: Pick<Config, 's3' | 'local'>, options: CreateObjectStoreOptions = {}): Promise<ObjectStore> {
  const { now, onCircuitChange, onRateChange, ...storeOptions } = options;
  const section = config.s3 !== undefined ? 's3' : 'local';
  const settings = config.s3 ?? config.local;
  if (settings === undefined) {
    throw new AuditlogError('CONFIG_INVALID', 'no storage configured: add an `s3:` or a `local:` section to the config', {
      details: { path: 's3' },
    });
  }
  const s3 = config.s3 === undefined ? undefined : { settings: config.s3, store: await import('./s3-object-store.js') };
  const endpoint =
    s3 !== undefined ? `s3://${s3.settings.bucket}/${s3.settings.prefix} (${s3.store.describeS3Endpoint(s3.settings)})` : `local directory ${config.local!.path}`;
  const breaker = new CircuitBreaker({
    failureThreshold: settings.circuit_breaker.failure_threshold,
    recoveryTimeoutMs: settings.circuit_breaker.recovery_timeout_ms,
    ...(now === undefined ? {} : { now }),
    ...(onCircuitChange === undefined ? {} : { onStateChange: onCircuitChange }),
  });
  const guard = new CircuitGuard({ breaker, endpoint, settingPath: `${section}.circuit_breaker`, ...(now === undefined ? {} : { now }) });
  const limiter = new RequestRateLimiter({
    ...(settings.rate_limit_requests_per_second === undefined ? {} : { ratePerSecond: settings.rate_limit_requests_per_second }),
    ...(now === undefined ? {} : { now }),
    ...(onRateChange === undefined ? {} : { onRateChange }),
  });
  const perAttempt: Pick<RetryHooks, 'beforeAttempt' | 'afterAttempt'> = {
    // The token first: a long wait may end with the circuit open, and then nothing is sent.
    beforeAttempt: async () => {
      await limiter.acquire();
      guard.beforeAttempt();
    },
    afterAttempt: limiter.observe,
  };
  const inner: ObjectStore =
    s3 !== undefined
      ? new s3.store.S3ObjectStore(s3.settings, { ...storeOptions, ...perAttempt })
      : new LocalObjectStore(config.local!, { sleep: storeOptions.sleep, random: storeOptions.random, onRetry: storeOptions.onRetry, ...perAttempt });
  return new CircuitBreakerObjectStore(inner, guard);
}
