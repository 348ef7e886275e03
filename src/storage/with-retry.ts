/**
 * The one retry layer of the storage adapters. The AWS SDK's own retries are switched off
 * (maxAttempts: 1) so that attempts are counted, delayed and reported in exactly one place.
 */
import { computeBackoffDelay } from '../core/backoff.js';
import { isAuditlogError } from '../core/errors.js';
import type { RetryConfig, RetryErrorClass } from '../config/schema.js';
import type { ErrorClassification, RetryPolicy } from './retry-policy.js';

export interface RetryNotice {
  /** The attempt that just failed (1-based). */
  attempt: number;
  maxAttempts: number;
  /** How long we wait before the next attempt, in ms. */
  delayMs: number;
  classification: ErrorClassification;
}

/** Seams for tests and for the composition root (which logs retries). */
export interface RetryHooks {
  /** Defaults to a real timer (cleared when `signal` aborts); tests inject one that records delays instead of waiting. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Uniform in [0, 1); defaults to Math.random. */
  random?: () => number;
  onRetry?: (notice: RetryNotice) => void;
  /**
   * Runs before every attempt, retries included (the rate limiter waits for a token here; an open
   * circuit throws its AuditlogError here, which ends the operation without another request).
   */
  beforeAttempt?: (attempt: number) => Promise<void> | void;
  /** Told the outcome of every attempt: no classification = it succeeded (feeds SlowDown back-off). */
  afterAttempt?: (outcome: AttemptOutcome) => void;
}

export interface AttemptOutcome {
  attempt: number;
  /** Absent when the attempt succeeded. */
  classification?: ErrorClassification;
}

export interface WithRetryOptions extends RetryHooks {
  policy: RetryPolicy;
  retry: RetryConfig;
  /** Aborted: no further attempt starts and the wait before one ends at once (RetryAbortedError). */
  signal?: AbortSignal;
}

/** The operation was given up through its signal: no attempt is made after the abort. */
export class RetryAbortedError extends Error {
  constructor(
    readonly reason: unknown,
    cause?: unknown,
    /** Why the attempt before the abort failed (a 503 retried until the deadline), if one did. */
    readonly lastFailure?: string,
  ) {
    super(`given up: ${reason instanceof Error ? reason.message : String(reason)}${lastFailure === undefined ? '' : ` (last attempt: ${lastFailure})`}`, { cause });
    this.name = 'RetryAbortedError';
  }
}

/**
 * The last failure of an operation that did not succeed: after `attempts` attempts, or at once
 * when the failure is not retryable. Stores turn it into an AuditlogError with their own wording.
 */
export class RetryGaveUpError extends Error {
  constructor(
    readonly attempts: number,
    readonly classification: ErrorClassification,
    cause: unknown,
    /** Set when the failure could have healed but its class is not in `retry.retryable_errors`. */
    readonly excludedClass?: RetryErrorClass,
  ) {
    super(`gave up after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${classification.reason}`, { cause });
    this.name = 'RetryGaveUpError';
  }
}

/** Waits `ms`, or less: with `signal`, the timer is cleared when it aborts, so a pending back-off does not hold a stopped process. */
export function sleepFor(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms));
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, the policy calls a failure permanent (or its class is not in
 * `retry.retryable_errors`), or `retry.max_attempts` attempts have failed. AuditlogErrors thrown
 * by `fn` or `beforeAttempt` are decisions, not faults: they pass through untouched and unretried.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: WithRetryOptions): Promise<T> {
  const maxAttempts = Math.max(1, options.retry.max_attempts);
  const sleep = options.sleep ?? sleepFor;
  const random = options.random ?? Math.random;
  const signal = options.signal;
  let lastFailure: { error: unknown; reason: string } | undefined;
  for (let attempt = 1; ; attempt += 1) {
    if (isAborted(signal)) throw new RetryAbortedError(signal!.reason, lastFailure?.error, lastFailure?.reason);
    try {
      await options.beforeAttempt?.(attempt);
      const result = await fn(attempt);
      options.afterAttempt?.({ attempt });
      return result;
    } catch (error) {
      if (isAuditlogError(error)) throw error;
      // The failure is the abort's doing (the request was cut), not the endpoint's.
      if (isAborted(signal)) throw new RetryAbortedError(signal!.reason, error, lastFailure?.reason);
      const classification = options.policy(error);
      options.afterAttempt?.({ attempt, classification });
      const excludedClass = isExcluded(classification, options.retry.retryable_errors) ? classification.retryClass : undefined;
      if (!classification.retryable || excludedClass !== undefined || attempt >= maxAttempts) {
        throw new RetryGaveUpError(attempt, classification, error, excludedClass);
      }
      const delayMs = computeBackoffDelay(attempt, {
        baseDelayMs: options.retry.base_delay_ms,
        maxDelayMs: options.retry.max_delay_ms,
        random,
        ...(classification.retryAfterMs === undefined ? {} : { retryAfterMs: classification.retryAfterMs }),
      });
      options.onRetry?.({ attempt, maxAttempts, delayMs, classification });
      lastFailure = { error, reason: classification.reason };
      // sleepFor clears its timer on abort; an injected sleep (tests) may not, so the wait is cut short around it too.
      const wait = sleep(delayMs, signal);
      await (signal === undefined ? wait : untilAborted(wait, signal));
    }
  }
}

/** A class outside the configured list fails at once; unset means every class is retried. */
function isExcluded(classification: ErrorClassification, allowed: readonly RetryErrorClass[] | undefined): boolean {
  return classification.retryable && allowed !== undefined && classification.retryClass !== undefined && !allowed.includes(classification.retryClass);
}

/** `wait`, or less: it settles when `signal` aborts (the next loop turn then throws). */
function untilAborted(wait: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    wait.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** A function, not an inline test: the flag changes under an await, which narrowing cannot see. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}
