/**
 * Publish rate limits per client: pure decisions, no I/O. The object holding a client's
 * socket keeps one `PublishLimiter` per connection and asks it about every PUBLISH before
 * anything else is done with it, so a flooding client costs little beyond its own packets.
 */

/** A token bucket: `rate` tokens per second, at most `capacity` saved up. */
export class TokenBucket {
  readonly #rate: number;
  readonly #capacity: number;
  #tokens: number;
  #at: number;

  constructor(rate: number, capacity: number, now: number) {
    this.#rate = rate;
    this.#capacity = capacity;
    this.#tokens = capacity;
    this.#at = now;
  }

  /** Take `n` tokens if there are that many (after refilling up to `now`). */
  take(n: number, now: number): boolean {
    if (now > this.#at) {
      this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) * this.#rate) / 1000);
      this.#at = now;
    }
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }
}

export interface PublishRateLimits {
  /** PUBLISH packets per second (0: no limit). */
  publishRate: number;
  /** PUBLISH bytes per second (0: no limit). */
  publishBytesRate: number;
  /** The largest packet accepted: the byte bucket always holds at least one. */
  maximumPacketSize: number;
}

/** Why a PUBLISH was refused: the 5.0 DISCONNECT reason codes 0x96 and 0x97. */
export interface RateRefusal {
  reasonCode: 0x96 | 0x97;
  message: string;
}

/**
 * How many seconds of the rate a client may send in one burst: a device flushing what it
 * queued while offline, a client pipelining a batch (200 QoS 1 messages at once at the
 * default rate). A token bucket cannot tell such a batch from the start of a flood, so the
 * burst is also what a flooding client gets routed before it is refused: measured in
 * bench/overload (fairness, five MQTT.js clients flooding plain `/mqtt`), 2 s let them route
 * 1,225 messages and 1 s 690, for a worst bystander round trip of 0.6 to 0.9 s either way
 * (docs/benchmarks.md, "Overload").
 */
export const BURST_SECONDS = 2;

/**
 * One connection's publish budget: a bucket of messages and one of bytes, each holding
 * BURST_SECONDS of its rate, so a client may burst (a reconnect's backlog, a batch of
 * readings) and is refused only when it keeps sending faster than its rates.
 */
export class PublishLimiter {
  readonly #messages: TokenBucket | undefined;
  readonly #bytes: TokenBucket | undefined;

  constructor(limits: PublishRateLimits, now: number) {
    if (limits.publishRate > 0) {
      this.#messages = new TokenBucket(limits.publishRate, Math.max(1, limits.publishRate * BURST_SECONDS), now);
    }
    if (limits.publishBytesRate > 0) {
      const capacity = Math.max(limits.maximumPacketSize, limits.publishBytesRate * BURST_SECONDS);
      this.#bytes = new TokenBucket(limits.publishBytesRate, capacity, now);
    }
  }

  /** Whether the connection has no limit at all (nothing to ask). */
  get unlimited(): boolean {
    return this.#messages === undefined && this.#bytes === undefined;
  }

  /** One PUBLISH of `size` bytes: undefined when within the limits, else why it is refused. */
  admit(size: number, now: number): RateRefusal | undefined {
    if (this.#messages && !this.#messages.take(1, now)) {
      return { reasonCode: 0x96, message: "message rate too high" }; // 5.0 3.14.2.1: Message rate too high
    }
    if (this.#bytes && !this.#bytes.take(size, now)) {
      return { reasonCode: 0x97, message: "publish byte rate quota exceeded" }; // Quota exceeded
    }
    return undefined;
  }
}
