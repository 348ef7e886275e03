/**
 * The circuit breaker's state machine. Pure: the clock is a parameter, nothing here does I/O.
 *
 *   CLOSED ──failure_threshold consecutive failures──▶ OPEN
 *   OPEN ──recovery_timeout_ms elapsed, next call──▶ HALF_OPEN (that call is the one trial)
 *   HALF_OPEN ──trial succeeds──▶ CLOSED        HALF_OPEN ──trial fails──▶ OPEN (timer restarts)
 *
 * While OPEN (and while a trial is in flight) every call is refused at once, so a dead endpoint
 * costs one trial per recovery_timeout_ms instead of a full retry cycle per call. A call admitted
 * before the circuit opened may still report back: its failure is counted (for the message), its
 * success does not close the circuit — only a trial proves the endpoint is back.
 */

export type CircuitState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

export interface CircuitBreakerOptions {
  /** Consecutive failed operations that open the circuit (>= 1). */
  failureThreshold: number;
  /** How long the circuit stays open before one trial call is let through, in ms. */
  recoveryTimeoutMs: number;
  /** Milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
  onStateChange?: (change: CircuitStateChange) => void;
}

export interface CircuitStateChange {
  from: CircuitState;
  to: CircuitState;
  /** Consecutive failures at the moment of the change. */
  failures: number;
  at: number;
}

/** A ticket for one admitted call; hand it back with exactly one of succeed/fail/release. */
export interface CircuitPermit {
  readonly id: number;
  readonly trial: boolean;
}

export interface CircuitSnapshot {
  state: CircuitState;
  /** Consecutive failed operations (still counting while open). */
  failures: number;
  /** What the last failure was, as given to {@link CircuitBreaker.fail}. */
  lastFailure?: string;
  /** When the circuit last opened (ms since the epoch). */
  openedAt?: number;
  /** When the next trial call may go out (ms since the epoch); now or earlier when one may go now. */
  retryAt?: number;
  /** A trial call is in flight (HALF_OPEN): others wait for its verdict. */
  trialInFlight: boolean;
}

export type CircuitAdmission = { admitted: true; permit: CircuitPermit } | { admitted: false; snapshot: CircuitSnapshot };

export class CircuitBreaker {
  private state: CircuitState = 'CLOSED';
  private failures = 0;
  private lastFailure: string | undefined;
  private openedAt = 0;
  private trial: { id: number; startedAt: number } | undefined;
  private nextId = 1;
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    if (!Number.isInteger(options.failureThreshold) || options.failureThreshold < 1) {
      throw new RangeError(`failureThreshold must be an integer >= 1, got ${options.failureThreshold}`);
    }
    if (!(options.recoveryTimeoutMs >= 0)) throw new RangeError(`recoveryTimeoutMs must be >= 0, got ${options.recoveryTimeoutMs}`);
    this.now = options.now ?? Date.now;
  }

  /** Asks to start a call. Refused while OPEN before the recovery timeout, and while a trial is in flight. */
  admit(): CircuitAdmission {
    const now = this.now();
    if (this.state === 'CLOSED') return { admitted: true, permit: this.permit(false) };
    if (this.state === 'OPEN') {
      if (now < this.openedAt + this.options.recoveryTimeoutMs) return { admitted: false, snapshot: this.snapshot() };
      this.transition('HALF_OPEN', now);
    }
    // HALF_OPEN: one trial at a time. A trial that never reported back (an abandoned listing)
    // must not wedge the circuit: after another recovery timeout a new trial replaces it.
    if (this.trial !== undefined && now < this.trial.startedAt + this.options.recoveryTimeoutMs) {
      return { admitted: false, snapshot: this.snapshot() };
    }
    const permit = this.permit(true);
    this.trial = { id: permit.id, startedAt: now };
    return { admitted: true, permit };
  }

  /** The call succeeded (or the endpoint answered with a decision: it is alive). */
  succeed(permit: CircuitPermit): void {
    if (this.isCurrentTrial(permit)) {
      this.trial = undefined;
      this.failures = 0;
      this.lastFailure = undefined;
      this.transition('CLOSED', this.now());
      return;
    }
    if (this.state === 'CLOSED') {
      this.failures = 0;
      this.lastFailure = undefined;
    }
  }

  /** The call failed in a way that says the endpoint is unhealthy. Returns the state afterwards. */
  fail(permit: CircuitPermit, reason: string): CircuitState {
    const now = this.now();
    this.failures += 1;
    this.lastFailure = reason;
    if (this.isCurrentTrial(permit)) {
      this.trial = undefined;
      this.openedAt = now;
      this.transition('OPEN', now);
    } else if (this.state === 'CLOSED' && this.failures >= this.options.failureThreshold) {
      this.openedAt = now;
      this.transition('OPEN', now);
    }
    return this.state;
  }

  /** The call ended without a verdict on the endpoint (refused before any request, a local bug). */
  release(permit: CircuitPermit): void {
    if (this.isCurrentTrial(permit)) this.trial = undefined;
  }

  /** Whether a new request must not be sent right now: OPEN and the recovery timeout not over. */
  isRefusing(): boolean {
    return this.state === 'OPEN' && this.now() < this.openedAt + this.options.recoveryTimeoutMs;
  }

  snapshot(): CircuitSnapshot {
    const state = this.state;
    return {
      state,
      failures: this.failures,
      ...(this.lastFailure === undefined ? {} : { lastFailure: this.lastFailure }),
      ...(state === 'CLOSED' ? {} : { openedAt: this.openedAt }),
      ...(state === 'OPEN' ? { retryAt: this.openedAt + this.options.recoveryTimeoutMs } : {}),
      ...(state === 'HALF_OPEN' && this.trial !== undefined ? { retryAt: this.trial.startedAt + this.options.recoveryTimeoutMs } : {}),
      trialInFlight: state === 'HALF_OPEN' && this.trial !== undefined,
    };
  }

  private permit(trial: boolean): CircuitPermit {
    const id = this.nextId;
    this.nextId += 1;
    return { id, trial };
  }

  private isCurrentTrial(permit: CircuitPermit): boolean {
    return permit.trial && this.trial?.id === permit.id;
  }

  private transition(to: CircuitState, at: number): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.options.onStateChange?.({ from, to, failures: this.failures, at });
  }
}
