/**
 * Slowing down password guessing: after failed authentications, the next attempt from the
 * same key (a client identifier in its SessionDO, an address in the admission object) waits.
 * After n failures it waits min(base * 2^(n-1), max) from the last one; a success forgets
 * the key, and so do `forgetAfterMs` of quiet. The table is bounded (the oldest entries
 * go first), so a client cycling through addresses or identifiers cannot grow it.
 */

interface Entry {
  failures: number;
  /** Epoch ms of the last failure. */
  at: number;
}

export interface PenaltyOptions {
  /** The wait after one failure, in ms (AUTH_FAIL_DELAY). */
  baseMs: number;
  /** The longest wait, in ms (AUTH_FAIL_DELAY_MAX). */
  maxMs: number;
  /** Keys kept at most (default 10,000): past it, the one whose last failure is oldest goes. */
  maxKeys?: number;
  /** Quiet time after which a key is forgotten, in ms (default 10 * maxMs). */
  forgetAfterMs?: number;
}

export class FailurePenalties {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #maxKeys: number;
  readonly #forgetAfterMs: number;
  /** In order of last failure, oldest first (an entry is moved to the end when it fails again). */
  readonly #entries = new Map<string, Entry>();

  constructor(options: PenaltyOptions) {
    this.#baseMs = Math.max(0, options.baseMs);
    this.#maxMs = Math.max(this.#baseMs, options.maxMs);
    this.#maxKeys = Math.max(1, options.maxKeys ?? 10_000);
    this.#forgetAfterMs = options.forgetAfterMs ?? 10 * this.#maxMs;
  }

  /** An authentication under `key` failed at `now`. */
  failed(key: string, now: number): void {
    this.#prune(now);
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    this.#entries.set(key, { failures: (entry?.failures ?? 0) + 1, at: now });
    while (this.#entries.size > this.#maxKeys) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** How long an attempt under `key` at `now` must still wait, in ms (0: it may go ahead). */
  waitMs(key: string, now: number): number {
    const entry = this.#entries.get(key);
    if (!entry) return 0;
    if (now - entry.at >= this.#forgetAfterMs) {
      this.#entries.delete(key);
      return 0;
    }
    const delay = Math.min(this.#baseMs * 2 ** Math.min(entry.failures - 1, 40), this.#maxMs);
    return Math.max(0, entry.at + delay - now);
  }

  /** An authentication under `key` succeeded: its failures are forgotten. */
  succeeded(key: string): void {
    this.#entries.delete(key);
  }

  /** Keys remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /** Forget the keys quiet for `forgetAfterMs`: they are at the front, in order of last failure. */
  #prune(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (now - entry.at < this.#forgetAfterMs) return;
      this.#entries.delete(key);
    }
  }
}
