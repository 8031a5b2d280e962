/**
 * One call in flight per destination; whatever arrives meanwhile goes in the next call.
 * At low load every item leaves at once, alone (no added latency); under load the calls
 * carry many items each, so the number of calls per item falls as the rate rises. Items
 * leave in the order they were pushed, and calls never overlap, so order is kept.
 */
export class Batcher<T, R> {
  readonly #send: (items: T[]) => Promise<R[]>;
  readonly #maxItems: number;
  #queue: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  #busy = false;
  /** The promise of the latest push, settled or not. */
  #last: Promise<unknown> = Promise.resolve();

  /** `send` must resolve with one result per item, in order. */
  constructor(send: (items: T[]) => Promise<R[]>, maxItems = 512) {
    this.#send = send;
    this.#maxItems = maxItems;
  }

  get idle(): boolean {
    return !this.#busy && this.#queue.length === 0;
  }

  push(item: T): Promise<R> {
    const pushed = new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#busy) void this.#run();
    });
    this.#last = pushed;
    return pushed;
  }

  /**
   * Resolves once every item pushed so far has been sent and its call has settled (failed
   * ones too). Calls go in push order, so that is when the latest push settles.
   */
  settled(): Promise<void> {
    return this.#last.then(
      () => undefined,
      () => undefined,
    );
  }

  async #run(): Promise<void> {
    this.#busy = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxItems);
      try {
        const results = await this.#send(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(results[i] as R));
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.#busy = false;
  }
}
