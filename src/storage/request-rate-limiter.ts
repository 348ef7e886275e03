/**
 * The storage request rate limit: a {@link TokenBucket} every attempt (retries included) takes a
 * token from, made adaptive by AIMD on throttling answers (503 SlowDown, 429, Throttling...).
 *
 * - A configured limit (`rate_limit_requests_per_second`) is the ceiling.
 * - A throttling answer halves the current rate (at most once per second, since the requests in
 *   flight all get the same answer) and drops saved-up tokens. Without a configured limit, the
 *   first one starts a limit at half the rate observed over the last second.
 * - Each successful attempt adds ceiling/10 ÷ current rate: about a tenth of the ceiling per
 *   second of traffic, so a halved rate is back in about five seconds if nothing throttles again.
 *   An adaptive limit that reaches its ceiling is lifted.
 */
import type { AttemptOutcome } from './with-retry.js';
import { sleepFor } from './with-retry.js';
import { TokenBucket } from './token-bucket.js';

/** Never slow below this (or below the configured limit when that is lower), in requests/s. */
export const MIN_ADAPTIVE_RATE = 1;
/** Throttling answers within this long of a cut are the same congestion event. */
export const CUT_COOLDOWN_MS = 1_000;
/** Window of the rate observed before the first throttling answer without a configured limit. */
export const OBSERVE_WINDOW_MS = 1_000;
/** Share of the ceiling regained per second of successful traffic. */
const RECOVERY_PER_SECOND = 0.1;

export interface RateChange {
  /** The rate from now on; undefined = unlimited. */
  ratePerSecond: number | undefined;
  previous: number | undefined;
  reason: 'throttled' | 'restored';
}

export interface RequestRateLimiterOptions {
  /** The configured limit in requests/s; unset = unlimited until the server throttles. */
  ratePerSecond?: number;
  /** Milliseconds; defaults to Date.now. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  onRateChange?: (change: RateChange) => void;
}

/** Short bursts of a tenth of a second's worth: any one-second window sees at most 1.1 × the rate. */
export function burstFor(ratePerSecond: number): number {
  return Math.max(1, ratePerSecond / 10);
}

export class RequestRateLimiter {
  private readonly configured: number | undefined;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Undefined while unlimited. */
  private bucket: TokenBucket | undefined;
  /** The rate recovery climbs back to: the configured limit, or the rate observed before throttling. */
  private ceiling: number | undefined;
  private lastCutAt = Number.NEGATIVE_INFINITY;
  private readonly recent: number[] = [];
  private firstAttemptAt: number | undefined;
  private queue: Promise<void> = Promise.resolve();
  private waiting = 0;

  constructor(private readonly options: RequestRateLimiterOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? sleepFor;
    this.configured = options.ratePerSecond;
    if (options.ratePerSecond !== undefined) {
      this.ceiling = options.ratePerSecond;
      this.bucket = new TokenBucket({ ratePerSecond: options.ratePerSecond, burst: burstFor(options.ratePerSecond), now: this.now() });
    }
  }

  /** The current limit in requests/s; undefined = unlimited. */
  get ratePerSecond(): number | undefined {
    return this.bucket?.ratePerSecond;
  }

  /** Waits for this attempt's turn. Callers are served in arrival order. */
  async acquire(): Promise<void> {
    if (this.bucket === undefined && this.waiting === 0) {
      this.recordAttempt();
      return;
    }
    this.waiting += 1;
    const turn = this.queue.then(() => this.waitForToken());
    this.queue = turn.catch(() => undefined);
    try {
      await turn;
    } finally {
      this.waiting -= 1;
    }
    this.recordAttempt();
  }

  /** Feeds an attempt's outcome back: throttling cuts the rate, success lets it recover. */
  readonly observe = (outcome: AttemptOutcome): void => {
    if (outcome.classification === undefined) this.succeeded();
    else if (outcome.classification.retryClass === 'throttling') this.throttled();
  };

  throttled(): void {
    const now = this.now();
    if (now - this.lastCutAt < CUT_COOLDOWN_MS) return;
    this.lastCutAt = now;
    const previous = this.bucket?.ratePerSecond;
    const floor = Math.min(MIN_ADAPTIVE_RATE, this.configured ?? MIN_ADAPTIVE_RATE);
    if (this.bucket === undefined) {
      this.ceiling = Math.max(floor, this.observedRate(now));
      const rate = Math.max(floor, this.ceiling / 2);
      this.bucket = new TokenBucket({ ratePerSecond: rate, burst: burstFor(rate), now, initialTokens: 0 });
    } else {
      const rate = Math.max(floor, this.bucket.ratePerSecond / 2);
      this.bucket.setRate(rate, burstFor(rate), now);
      this.bucket.drain(now);
    }
    this.options.onRateChange?.({ ratePerSecond: this.bucket.ratePerSecond, previous, reason: 'throttled' });
  }

  succeeded(): void {
    const bucket = this.bucket;
    const ceiling = this.ceiling;
    if (bucket === undefined || ceiling === undefined || bucket.ratePerSecond >= ceiling) return;
    const now = this.now();
    const previous = bucket.ratePerSecond;
    const rate = Math.min(ceiling, previous + (ceiling * RECOVERY_PER_SECOND) / previous);
    if (rate < ceiling) {
      bucket.setRate(rate, burstFor(rate), now);
      return;
    }
    if (this.configured === undefined) {
      this.bucket = undefined;
      this.ceiling = undefined;
    } else {
      bucket.setRate(ceiling, burstFor(ceiling), now);
    }
    this.options.onRateChange?.({ ratePerSecond: this.bucket?.ratePerSecond, previous, reason: 'restored' });
  }

  private async waitForToken(): Promise<void> {
    for (;;) {
      const bucket = this.bucket;
      if (bucket === undefined) return;
      const waitMs = bucket.tryTake(this.now());
      if (waitMs === 0) return;
      await this.sleep(waitMs);
    }
  }

  private recordAttempt(): void {
    const now = this.now();
    this.firstAttemptAt ??= now;
    this.recent.push(now);
    this.trim(now);
  }

  /** Attempts per second over the last window (or since the first attempt, when that is sooner). */
  private observedRate(now: number): number {
    this.trim(now);
    const span = Math.min(OBSERVE_WINDOW_MS, Math.max(100, now - (this.firstAttemptAt ?? now)));
    return (this.recent.length * 1_000) / span;
  }

  private trim(now: number): void {
    let drop = 0;
    while (drop < this.recent.length && this.recent[drop]! <= now - OBSERVE_WINDOW_MS) drop += 1;
    if (drop > 0) this.recent.splice(0, drop);
  }
}
