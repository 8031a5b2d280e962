/**
 * When an object reports what it counted: a token bucket of reports. An object woken once in a
 * while (a device's session, on a message a minute) reports a moment (`settleMs`) after the
 * event that woke it, long enough for the few steps of that event (separated by awaits) to
 * travel in one report; a busy object reports about once per period, whatever its message rate.
 *
 * Why not simply "within a period": a timer pending for a period keeps a Durable Object from
 * hibernating, and Cloudflare bills its duration meanwhile (about 1 s of 128 MB per wake,
 * $1.56 per million wakes at list prices), ten times what the extra reports cost ($0.15 per
 * million requests).
 */
export class ReportPacer {
  readonly #periodMs: number;
  readonly #burst: number;
  readonly #settleMs: number;
  #tokens: number;
  #at: number | undefined;

  /**
   * `burst`: reports allowed in a row after a quiet spell; one more comes back every `periodMs`.
   * `settleMs`: how long a report allowed now still waits for the rest of its event's counts.
   */
  constructor(periodMs: number, burst: number, settleMs = 0) {
    if (!(periodMs > 0) || !(burst >= 1) || !(settleMs >= 0 && settleMs < periodMs)) {
      throw new RangeError("ReportPacer needs periodMs > 0, burst >= 1 and 0 <= settleMs < periodMs");
    }
    this.#periodMs = periodMs;
    this.#burst = burst;
    this.#settleMs = settleMs;
    this.#tokens = burst;
  }

  /** Milliseconds to wait, from `now`, before the next report goes (`settleMs` when one is due now). */
  delay(now: number): number {
    this.#refill(now);
    return this.#tokens >= 1 ? this.#settleMs : Math.max(this.#settleMs, Math.ceil((1 - this.#tokens) * this.#periodMs));
  }

  /** A report went at `now`. */
  reported(now: number): void {
    this.#refill(now);
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  #refill(now: number): void {
    // A clock that went back (or the first call) refills nothing.
    const elapsed = this.#at === undefined ? 0 : Math.max(0, now - this.#at);
    this.#at = now;
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsed / this.#periodMs);
  }
}
