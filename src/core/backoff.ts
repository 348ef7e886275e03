/**
 * Retry delays. Pure: the random source and the clock are parameters, so tests and property
 * checks are deterministic.
 */

export interface BackoffOptions {
  /** Delay ceiling of the first retry, in ms; doubles with every further attempt. */
  baseDelayMs: number;
  /** Upper bound of one computed delay, in ms. */
  maxDelayMs: number;
  /** Uniform in [0, 1). Full jitter spreads clients that failed together (AWS "Exponential Backoff And Jitter"). */
  random: () => number;
  /** What the server asked for (Retry-After), in ms; it is a floor for the delay. */
  retryAfterMs?: number;
  /**
   * Bound on an honoured Retry-After, in ms: a misconfigured server or proxy must not park a run
   * for hours. Defaults to {@link DEFAULT_MAX_RETRY_AFTER_MS}.
   */
  maxRetryAfterMs?: number;
}

export const DEFAULT_MAX_RETRY_AFTER_MS = 60_000;

/**
 * The delay before retry number `attempt` (1 = the wait after the first failed attempt):
 * uniform in [0, min(maxDelayMs, baseDelayMs * 2^(attempt-1))], raised to the server's
 * Retry-After when that is longer (bounded by `maxRetryAfterMs`). Whole milliseconds.
 */
export function computeBackoffDelay(attempt: number, options: BackoffOptions): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`attempt must be an integer >= 1, got ${attempt}`);
  const exponent = Math.min(attempt - 1, 52);
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** exponent);
  const draw = Math.min(Math.max(options.random(), 0), 1);
  const jittered = Math.floor(draw * ceiling);
  if (options.retryAfterMs === undefined || !Number.isFinite(options.retryAfterMs) || options.retryAfterMs <= 0) {
    return jittered;
  }
  const floor = Math.min(Math.ceil(options.retryAfterMs), options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS);
  return Math.max(jittered, floor);
}

/**
 * A Retry-After header value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as ms from `nowMs`;
 * undefined when absent or unparsable. A date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // An HTTP-date always names a month; this keeps Date.parse from reading "-5" as a year.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
