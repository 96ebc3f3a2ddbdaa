/**
 * A circuit breaker for one version's upstream, in one isolate. After
 * `failureThreshold` consecutive failures it opens and fails fast (the
 * model's fallback answers) for `openMs`; then one trial call is let
 * through (half-open): success closes it, failure opens it again.
 * Transitions are returned so the caller can log them. Clocks are injected.
 */
export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerOptions {
  failureThreshold: number;
  openMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 5, openMs: 30_000 };

export interface Transition {
  from: BreakerState;
  to: BreakerState;
  failures: number;
}

export class CircuitBreaker {
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  #trialInFlight = false;

  constructor(readonly options: BreakerOptions = DEFAULT_BREAKER) {}

  get state(): BreakerState {
    return this.#state;
  }

  /** Whether a call may go out now; in half-open, only one trial at a time. */
  allow(now: number): { allowed: boolean; transition?: Transition } {
    if (this.#state === "closed") return { allowed: true };
    if (this.#state === "open") {
      if (now - this.#openedAt < this.options.openMs) return { allowed: false };
      const transition = this.#move("half-open");
      this.#trialInFlight = true;
      return { allowed: true, transition };
    }
    if (this.#trialInFlight) return { allowed: false };
    this.#trialInFlight = true;
    return { allowed: true };
  }

  success(): Transition | undefined {
    this.#failures = 0;
    this.#trialInFlight = false;
    return this.#state === "closed" ? undefined : this.#move("closed");
  }

  failure(now: number): Transition | undefined {
    this.#failures += 1;
    this.#trialInFlight = false;
    if (
      this.#state === "half-open" ||
      (this.#state === "closed" && this.#failures >= this.options.failureThreshold)
    ) {
      this.#openedAt = now;
      return this.#move("open");
    }
    return undefined;
  }

  #move(to: BreakerState): Transition {
    const transition = { from: this.#state, to, failures: this.#failures };
    this.#state = to;
    return transition;
  }
}
