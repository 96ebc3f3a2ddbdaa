// Time as the traffic generator sees it: when requests go out, when labels are due, how long to
// wait before a retry. The program runs on the real clock. A simulated clock moves only when
// everything is waiting for it, so a run on it paces exactly whatever the machine's load.

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Resolves `ms` from now, or at once when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Wraps a network exchange (a request until its whole answer is read): a simulated clock stands
   * still while one is under way, so an answer arrives at the moment its request went out.
   */
  exchange<T>(work: Promise<T>): Promise<T>;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep,
  exchange: (work) => work,
};

interface Timer {
  at: number;
  order: number;
  fire: () => void;
}

/**
 * A clock for tests: it starts at `start` and jumps to the next sleeper's wake-up time once no
 * exchange is under way and the event loop has run everything else that was ready (one
 * `setImmediate` turn). Exchanges take no simulated time.
 */
export class SimulatedClock implements Clock {
  #now: number;
  #timers: Timer[] = [];
  #order = 0;
  #exchanges = 0;
  #checkPending = false;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Sleepers not yet woken. */
  get sleepers(): number {
    return this.#timers.length;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer: Timer = { at: this.#now + Math.max(0, ms), order: this.#order++, fire: done };
      const timers = this.#timers;
      function done() {
        const index = timers.indexOf(timer);
        if (index >= 0) timers.splice(index, 1);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      timers.push(timer);
      signal?.addEventListener("abort", done, { once: true });
      this.#check();
    });
  }

  async exchange<T>(work: Promise<T>): Promise<T> {
    this.#exchanges++;
    try {
      return await work;
    } finally {
      this.#exchanges--;
      this.#check();
    }
  }

  /** Looks, after the promises ready now have run, whether time may move on. */
  #check() {
    if (this.#checkPending) return;
    this.#checkPending = true;
    setImmediate(() => {
      this.#checkPending = false;
      this.#advance();
    });
  }

  #advance() {
    if (this.#exchanges > 0 || this.#timers.length === 0) return;
    const due = Math.min(...this.#timers.map((t) => t.at));
    this.#now = Math.max(this.#now, due);
    const woken = this.#timers
      .filter((t) => t.at <= this.#now)
      .sort((a, b) => a.at - b.at || a.order - b.order);
    for (const timer of woken) timer.fire();
    this.#check();
  }
}
