/**
 * Message rates over the last 1, 5 and 15 minutes from totals reported at any time: counts are
 * added to fixed buckets of `bucketSeconds` (a ring of the last `keepSeconds`), and a rate is the
 * sum of the buckets that overlap the window divided by the time they cover (the current bucket
 * counts for the part of it already elapsed). Pure and serialisable (`state`), so the metrics
 * object can save it with its totals.
 */
export interface RateRingState {
  bucketSeconds: number;
  /** Oldest first; `start` in epoch ms, a multiple of the bucket length. */
  buckets: { start: number; counts: Record<string, number> }[];
}

export const RATE_BUCKET_SECONDS = 10;
export const RATE_KEEP_SECONDS = 15 * 60;

export class RateRing {
  readonly #bucketMs: number;
  readonly #keepBuckets: number;
  readonly #buckets: RateRingState["buckets"];

  constructor(state?: RateRingState, bucketSeconds = RATE_BUCKET_SECONDS, keepSeconds = RATE_KEEP_SECONDS) {
    this.#bucketMs = bucketSeconds * 1000;
    this.#keepBuckets = Math.ceil(keepSeconds / bucketSeconds);
    // A state saved with another bucket length is dropped rather than misread.
    this.#buckets = state && state.bucketSeconds === bucketSeconds ? state.buckets.map((b) => ({ start: b.start, counts: { ...b.counts } })) : [];
  }

  /** Counts of what happened up to `now` (epoch ms), e.g. `{ received: 10, sent: 30 }`. */
  add(now: number, counts: Record<string, number>): void {
    const start = Math.floor(now / this.#bucketMs) * this.#bucketMs;
    let last = this.#buckets[this.#buckets.length - 1];
    // A clock that went back counts in the newest bucket rather than rewriting the past.
    if (!last || last.start < start) {
      last = { start, counts: {} };
      this.#buckets.push(last);
    }
    for (const [series, n] of Object.entries(counts)) {
      if (n !== 0) last.counts[series] = (last.counts[series] ?? 0) + n;
    }
    this.#prune(now);
  }

  /** Average per second of `series` over the last `windowSeconds` (a multiple of the bucket length). */
  rate(now: number, series: string, windowSeconds: number): number {
    const n = Math.max(1, Math.round((windowSeconds * 1000) / this.#bucketMs));
    const current = Math.floor(now / this.#bucketMs) * this.#bucketMs;
    const from = current - (n - 1) * this.#bucketMs;
    let sum = 0;
    for (const b of this.#buckets) if (b.start >= from && b.start <= current) sum += b.counts[series] ?? 0;
    const spanMs = now - from;
    return spanMs > 0 ? (sum * 1000) / spanMs : 0;
  }

  #prune(now: number): void {
    const oldest = Math.floor(now / this.#bucketMs) * this.#bucketMs - (this.#keepBuckets - 1) * this.#bucketMs;
    let drop = 0;
    while (drop < this.#buckets.length && this.#buckets[drop]!.start < oldest) drop++;
    if (drop > 0) this.#buckets.splice(0, drop);
  }

  get state(): RateRingState {
    return { bucketSeconds: this.#bucketMs / 1000, buckets: this.#buckets.map((b) => ({ start: b.start, counts: { ...b.counts } })) };
  }
}

/** The windows of Mosquitto's `$SYS/broker/load/...`: 1, 5 and 15 minutes. */
export const RATE_WINDOWS = { "1min": 60, "5min": 300, "15min": 900 } as const;
export type RateWindow = keyof typeof RATE_WINDOWS;

/** Per second over each window. */
export function ratesOf(ring: RateRing, now: number, series: string): Record<RateWindow, number> {
  return {
    "1min": ring.rate(now, series, RATE_WINDOWS["1min"]),
    "5min": ring.rate(now, series, RATE_WINDOWS["5min"]),
    "15min": ring.rate(now, series, RATE_WINDOWS["15min"]),
  };
}
