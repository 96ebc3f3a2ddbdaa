/**
 * Bounded memory for per-isolate caches. An isolate lives for many requests
 * from many clients, so anything it remembers by a name a client chooses (a
 * model name, a key, an address) must have a bound, or a client sending a new
 * name per request grows it without end.
 */

/** A map of at most `capacity` entries that forgets the least recently used first. */
export class LruMap<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined {
    if (!this.#entries.has(key)) return undefined;
    const value = this.#entries.get(key) as V;
    // A Map iterates in insertion order: re-inserting makes it the newest.
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  /** The value, leaving the order as it is. */
  peek(key: K): V | undefined {
    return this.#entries.get(key);
  }

  set(key: K, value: V): this {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
    return this;
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The entries, least recently used first. */
  entries(): IterableIterator<[K, V]> {
    return this.#entries.entries();
  }
}

/** Names remembered each until a time of its own, at most `capacity` of them. */
export class ExpiringNames {
  readonly #until: LruMap<string, number>;

  constructor(capacity: number) {
    this.#until = new LruMap(capacity);
  }

  /** Remembers `name` until `until` (exclusive); a time not after `now` remembers nothing. */
  add(name: string, until: number, now: number): void {
    if (until > now) this.#until.set(name, until);
    else this.#until.delete(name);
  }

  has(name: string, now: number): boolean {
    const until = this.#until.peek(name);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(name);
    return false;
  }

  delete(name: string): void {
    this.#until.delete(name);
  }

  get size(): number {
    return this.#until.size;
  }
}
