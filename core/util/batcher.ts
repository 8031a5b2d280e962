import { concatBytes } from "./bytes";

/**
 * One call in flight per destination; whatever arrives meanwhile goes in the next call.
 * At low load every item leaves at once, alone (no added latency); under load the calls
 * carry many items each, so the number of calls per item falls as the rate rises. Items
 * leave in the order they were pushed, and calls never overlap, so order is kept.
 */
export class Batcher<T, R> {
  readonly #send: (items: T[]) => Promise<R[]>;
  readonly #maxItems: number;
  readonly #weigh: ((item: T) => number) | undefined;
  readonly #maxWeight: number;
  #queue: Array<{ item: T; weight: number; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  #queuedWeight = 0;
  #busy = false;
  /** The promise of the latest push, settled or not. */
  #last: Promise<unknown> = Promise.resolve();

  /**
   * `send` must resolve with one result per item, in order. A call carries at most
   * `maxItems` items and, when `weigh` is given, at most `maxWeight` of their weight (one item
   * always goes): what one call may carry is limited (32 MiB for an RPC's arguments).
   */
  constructor(send: (items: T[]) => Promise<R[]>, maxItems = 512, weigh?: (item: T) => number, maxWeight = Number.POSITIVE_INFINITY) {
    this.#send = send;
    this.#maxItems = maxItems;
    this.#weigh = weigh;
    this.#maxWeight = maxWeight;
  }

  get idle(): boolean {
    return !this.#busy && this.#queue.length === 0;
  }

  /** The weight of the items waiting for a call (not those of the call in flight). */
  get queuedWeight(): number {
    return this.#queuedWeight;
  }

  push(item: T): Promise<R> {
    const weight = this.#weigh?.(item) ?? 0;
    const pushed = new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, weight, resolve, reject });
      this.#queuedWeight += weight;
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
      const batch = this.#queue.splice(0, this.#takeCount());
      for (const b of batch) this.#queuedWeight -= b.weight;
      try {
        const results = await this.#send(batch.map((b) => b.item));
        batch.forEach((b, i) => b.resolve(results[i] as R));
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.#busy = false;
  }

  /** How many of the queued items the next call takes. */
  #takeCount(): number {
    let n = 0;
    let weight = 0;
    for (const { weight: w } of this.#queue) {
      if (n === this.#maxItems || (n > 0 && weight + w > this.#maxWeight)) break;
      weight += w;
      n++;
    }
    return n;
  }
}

/**
 * Packets cut into consecutive pieces of at most `maxBytes` each (a packet larger than that
 * alone in its piece), in order; always at least one piece, empty when there are no packets.
 */
export function piecesOf(frames: Uint8Array[], maxBytes: number): Uint8Array[][] {
  const pieces: Uint8Array[][] = [[]];
  let bytes = 0;
  for (const frame of frames) {
    let piece = pieces[pieces.length - 1]!;
    if (piece.length > 0 && bytes + frame.byteLength > maxBytes) {
      pieces.push((piece = []));
      bytes = 0;
    }
    piece.push(frame);
    bytes += frame.byteLength;
  }
  return pieces;
}

/**
 * Packets joined into as few buffers as `maxBytes` allows (consecutive pieces, piecesOf), in
 * order: what goes out as one WebSocket message each. `maxBytes` 0: one buffer per packet.
 */
export function joinedPieces(frames: Uint8Array[], maxBytes: number): Uint8Array[] {
  if (frames.length < 2 || maxBytes <= 0) return frames;
  return piecesOf(frames, maxBytes).map((piece) => (piece.length === 1 ? piece[0]! : concatBytes(piece)));
}
