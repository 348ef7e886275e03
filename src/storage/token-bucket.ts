/**
 * A token bucket. Pure: the clock is passed in, nothing waits here.
 *
 * Tokens accrue at `ratePerSecond` up to `burst`; each request takes one. A full bucket lets
 * `burst` requests through at once, after which requests are spaced 1/rate apart, so over any
 * window of T seconds at most `burst + rate * T` requests pass.
 */
export interface TokenBucketOptions {
  ratePerSecond: number;
  /** Most tokens held at once (>= 1). */
  burst: number;
  /** Milliseconds, any monotonic origin. */
  now: number;
  /** Tokens at start; defaults to a full bucket. */
  initialTokens?: number;
}

export class TokenBucket {
  private rate: number;
  private capacity: number;
  private tokens: number;
  private updatedAt: number;

  constructor(options: TokenBucketOptions) {
    assertRate(options.ratePerSecond);
    assertBurst(options.burst);
    this.rate = options.ratePerSecond;
    this.capacity = options.burst;
    this.tokens = Math.min(options.burst, Math.max(0, options.initialTokens ?? options.burst));
    this.updatedAt = options.now;
  }

  get ratePerSecond(): number {
    return this.rate;
  }

  get burst(): number {
    return this.capacity;
  }

  /** Takes a token when one is there and returns 0; otherwise takes nothing and returns how many ms until one is. */
  tryTake(now: number): number {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) / this.rate) * 1_000));
  }

  /** Changes the rate from `now` on (tokens accrued so far are kept, up to the new burst). */
  setRate(ratePerSecond: number, burst: number, now: number): void {
    assertRate(ratePerSecond);
    assertBurst(burst);
    this.refill(now);
    this.rate = ratePerSecond;
    this.capacity = burst;
    this.tokens = Math.min(this.tokens, burst);
  }

  /** Drops the saved-up tokens: after a "slow down" the next request waits its turn. */
  drain(now: number): void {
    this.refill(now);
    this.tokens = Math.min(this.tokens, 0);
  }

  private refill(now: number): void {
    const elapsedMs = Math.max(0, now - this.updatedAt);
    this.tokens = Math.min(this.capacity, this.tokens + (elapsedMs / 1_000) * this.rate);
    this.updatedAt = Math.max(this.updatedAt, now);
  }
}

function assertRate(rate: number): void {
  if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`ratePerSecond must be a finite number > 0, got ${rate}`);
}

function assertBurst(burst: number): void {
  if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`burst must be a finite number >= 1, got ${burst}`);
}
