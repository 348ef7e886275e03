/**
 * An ObjectStore decorator that puts a {@link CircuitBreaker} in front of a store, so a dead
 * endpoint stops a run in a few failed operations instead of a full retry cycle per call.
 *
 * What counts against the endpoint (a failed operation = one store call after its retries):
 * - STORAGE_UNREACHABLE: network errors, DNS, timeouts, 5xx/429 that outlived the retries;
 * - STORAGE_IO when it was transient (details.transient: bytes kept arriving damaged, a local
 *   file system kept answering EBUSY/EAGAIN).
 * What does not: "object not found" (a successful answer), STORAGE_ACCESS (403, credentials),
 * STORAGE_NOT_FOUND (no bucket), STORAGE_CONFLICT and other non-transient STORAGE_IO — those
 * are the endpoint answering with a decision, so they count as proof that it is alive.
 *
 * Retries inside a call that was admitted before the circuit opened are cut short through
 * {@link CircuitBreakerObjectStore.beforeAttempt}, which the inner store runs before every attempt.
 */
import { AuditlogError, isAuditlogError } from '../core/errors.js';
import type { CircuitBreaker, CircuitPermit, CircuitSnapshot } from './circuit-breaker.js';
import type { CheckOptions, CleanupOptions, CleanupReport, ConditionalCreateSupport, DeleteManyResult, ListOptions, ObjectInfo, ObjectStore, PutOptions, PutResult } from './object-store.js';

export const CIRCUIT_OPEN_CODE = 'STORAGE_CIRCUIT_OPEN';

export interface CircuitGuardOptions {
  breaker: CircuitBreaker;
  /** Where requests go, for messages: e.g. `s3://bucket/prefix/ (http://minio:9000)`. Never secret. */
  endpoint: string;
  /** The config section that tunes the breaker, for messages: `s3.circuit_breaker`. */
  settingPath: string;
  /** Milliseconds since the epoch; the breaker's clock. */
  now?: () => number;
}

/** Whether a store failure says the endpoint is unreachable or unhealthy (see the module comment). */
export function isUnhealthyStorageFailure(error: unknown): boolean {
  if (!isAuditlogError(error)) return false;
  if (error.code === 'STORAGE_UNREACHABLE') return true;
  return error.code === 'STORAGE_IO' && error.details.transient === true;
}

/**
 * The breaker's admission and its messages, shared by the decorator and the inner store's
 * per-attempt hook (which exists before the decorator does).
 */
export class CircuitGuard {
  private readonly now: () => number;

  constructor(private readonly options: CircuitGuardOptions) {
    this.now = options.now ?? Date.now;
  }

  get breaker(): CircuitBreaker {
    return this.options.breaker;
  }

  /** For the inner store's `beforeAttempt`: no request, first or retry, goes out while the circuit is open. */
  readonly beforeAttempt = (): void => {
    if (this.options.breaker.isRefusing()) throw this.openError(this.options.breaker.snapshot(), 'refused');
  };

  admit(): CircuitPermit {
    const admission = this.options.breaker.admit();
    if (!admission.admitted) throw this.openError(admission.snapshot, 'refused');
    return admission.permit;
  }

  /** Reports how the call ended; returns the error to throw (the circuit error when this one opened it). */
  settle(permit: CircuitPermit, error: unknown): unknown {
    if (isAuditlogError(error) && error.code === CIRCUIT_OPEN_CODE) {
      this.options.breaker.release(permit);
      return error;
    }
    if (isUnhealthyStorageFailure(error)) {
      const wasOpen = this.options.breaker.snapshot().state === 'OPEN';
      const state = this.options.breaker.fail(permit, describeFailure(error as AuditlogError));
      return state === 'OPEN' && !wasOpen ? this.openError(this.options.breaker.snapshot(), 'opened', error) : error;
    }
    if (isAuditlogError(error)) this.options.breaker.succeed(permit);
    else this.options.breaker.release(permit);
    return error;
  }

  openError(snapshot: CircuitSnapshot, how: 'opened' | 'refused', cause?: unknown): AuditlogError {
    const { endpoint, settingPath } = this.options;
    const now = this.now();
    const retryAt = snapshot.retryAt ?? now;
    const when = snapshot.trialInFlight
      ? `a trial request is in flight; if it fails the next one goes at ${new Date(retryAt).toISOString()}`
      : `the next trial request goes at ${new Date(retryAt).toISOString()} (in ${formatWait(retryAt - now)})`;
    const last = snapshot.lastFailure === undefined ? '' : ` (last: ${snapshot.lastFailure})`;
    const what =
      how === 'opened'
        ? `storage circuit opened: ${snapshot.failures} consecutive storage operations failed against ${endpoint}${last}`
        : `storage circuit open: ${snapshot.failures} consecutive storage operations failed against ${endpoint}${last}, so this request was not sent`;
    return new AuditlogError(CIRCUIT_OPEN_CODE, `${what}; ${when} — check that the endpoint is up and healthy, or tune ${settingPath}`, {
      details: {
        endpoint,
        state: snapshot.state,
        failures: snapshot.failures,
        retry_at: new Date(retryAt).toISOString(),
        ...(snapshot.lastFailure === undefined ? {} : { last_failure: snapshot.lastFailure }),
      },
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

export class CircuitBreakerObjectStore implements ObjectStore {
  readonly description: string;

  constructor(
    readonly inner: ObjectStore,
    private readonly guard: CircuitGuard,
  ) {
    this.description = inner.description;
  }

  put(key: string, body: Buffer, options?: PutOptions): Promise<PutResult | void> {
    return this.call(() => this.inner.put(key, body, options));
  }

  get(key: string): Promise<Buffer | undefined> {
    return this.call(() => this.inner.get(key));
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.call(() => this.inner.head(key));
  }

  delete(key: string): Promise<void> {
    return this.call(() => this.inner.delete(key));
  }

  /** One operation however many requests it takes; keys refused one by one are an answer, not an unhealthy endpoint. */
  deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    return this.call(() => this.inner.deleteMany(keys));
  }

  check(options?: CheckOptions): Promise<void> {
    return this.call(() => this.inner.check(options), options?.signal);
  }

  /** Present exactly when the inner store has it, so callers can tell "nothing to clean" from "cannot clean". */
  get cleanupInterrupted(): ((options: CleanupOptions) => Promise<CleanupReport>) | undefined {
    const inner = this.inner;
    if (inner.cleanupInterrupted === undefined) return undefined;
    return (options) => this.call(() => inner.cleanupInterrupted!(options));
  }

  /**
   * Present exactly when the inner store has it. Not admitted through the breaker: the probe never
   * throws, and its failures must not count against the endpoint (they only mean "not supported").
   */
  get conditionalCreate(): (() => Promise<ConditionalCreateSupport>) | undefined {
    const inner = this.inner;
    if (inner.conditionalCreate === undefined) return undefined;
    return () => inner.conditionalCreate!();
  }

  /** One listing is one operation, however many pages it takes. */
  async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    const permit = this.guard.admit();
    let settled = false;
    try {
      yield* this.inner.list(prefix, options);
    } catch (error) {
      settled = true;
      throw this.guard.settle(permit, error);
    } finally {
      // Completed, or the consumer stopped early: either way the pages it asked for came back.
      if (!settled) this.guard.breaker.succeed(permit);
    }
  }

  private async call<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const permit = this.guard.admit();
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      // Given up by its caller (a /health deadline, a stop): no verdict on the endpoint.
      if (signal?.aborted === true) {
        this.guard.breaker.release(permit);
        throw error;
      }
      throw this.guard.settle(permit, error);
    }
    this.guard.breaker.succeed(permit);
    return result;
  }
}

function describeFailure(error: AuditlogError): string {
  const reason = error.details.reason;
  const operation = error.details.operation;
  const what = typeof reason === 'string' ? reason : error.code;
  return typeof operation === 'string' ? `${operation}: ${what}` : what;
}

function formatWait(ms: number): string {
  if (ms <= 0) return 'now';
  if (ms < 1_000) return `${Math.ceil(ms)}ms`;
  const seconds = Math.ceil(ms / 1_000);
  return seconds < 120 ? `${seconds}s` : `${Math.ceil(seconds / 60)}min`;
}
