import type { QoS } from "../mqtt/packets";
import type { OutboundEntry, OutboundState, SessionStore } from "./store";
import type { Delivery } from "./types";

interface InFlight {
  seq: number;
  qos: QoS;
  state: Exclude<OutboundState, "queued">;
}

/**
 * A session's outbound QoS 1/2 messages: the stored queue, with an index of the ones in
 * flight (by packet identifier) and the number queued kept in memory, so an acknowledgement
 * costs no scan. The index is read from the store once after each wake and kept in step
 * with every change made through this class, the only writer.
 *
 * Deleting an acknowledged entry's row is deferred: its packet identifier is free at once,
 * and the row goes with the next write to the queue, in the same transaction, or when the
 * host calls `flush` (a short timer). So a stream of acknowledgements costs no commit of its
 * own; each commit is a synchronous disk flush on a local runtime and a replicated write
 * in production. If the object dies first, the row outlives the acknowledgement and the
 * message is sent again with DUP on the next connection: at least once still holds for
 * QoS 1 (4.3.2), and for a QoS 2 entry in state `released` the client is sent PUBREL again
 * and answers it with PUBCOMP, nothing being delivered twice (4.3.3).
 */
export class Outbound {
  readonly #store: SessionStore;
  #inFlight: Map<number, InFlight> | undefined;
  #queued = 0;
  /** Sequence numbers of acknowledged entries whose rows are not deleted yet. */
  #acknowledged: number[] = [];

  constructor(store: SessionStore) {
    this.#store = store;
  }

  get #index(): Map<number, InFlight> {
    if (!this.#inFlight) {
      const index = new Map<number, InFlight>();
      for (const e of this.#store.inFlight()) {
        index.set(e.packetId!, { seq: e.seq, qos: e.delivery.qos, state: e.state as InFlight["state"] });
      }
      this.#inFlight = index;
      this.#queued = this.#store.outboundCount() - index.size;
    }
    return this.#inFlight;
  }

  /** Forget the cached index (the store was cleared, acknowledged rows with it). */
  reset(): void {
    this.#inFlight = undefined;
    this.#queued = 0;
    this.#acknowledged = [];
  }

  /** Whether acknowledged rows wait to be deleted (the host then calls `flush` soon). */
  get unflushed(): boolean {
    return this.#acknowledged.length > 0;
  }

  /** Delete the rows of acknowledged entries. */
  flush(): void {
    if (this.#acknowledged.length === 0) return;
    for (const seq of this.#acknowledged) this.#store.deleteOutbound(seq);
    this.#acknowledged = [];
  }

  get inFlightCount(): number {
    return this.#index.size;
  }

  get queuedCount(): number {
    void this.#index;
    return this.#queued;
  }

  inUse(packetId: number): boolean {
    return this.#index.has(packetId);
  }

  byPacketId(packetId: number): Readonly<InFlight> | undefined {
    return this.#index.get(packetId);
  }

  /** Stored as sent at once (room in the window, nothing queued before it). */
  addSent(delivery: Delivery, packetId: number): void {
    this.flush();
    const seq = this.#store.enqueue(delivery, "sent", packetId);
    this.#index.set(packetId, { seq, qos: delivery.qos, state: "sent" });
  }

  /** Queued, up to `max` entries in all; when full, the oldest queued entry makes room. */
  addQueued(delivery: Delivery, max: number): void {
    this.flush();
    const index = this.#index;
    while (index.size + this.#queued >= max && this.#queued > 0) {
      if (!this.#store.dropOldestQueued()) break;
      this.#queued--;
    }
    if (index.size + this.#queued >= max) return;
    this.#store.enqueue(delivery, "queued");
    this.#queued++;
  }

  /** The oldest queued entries, to send. */
  queued(limit: number): OutboundEntry[] {
    return this.#queued > 0 ? this.#store.queued(limit) : [];
  }

  markSent(entry: OutboundEntry, packetId: number): void {
    this.flush();
    this.#store.updateOutbound(entry.seq, "sent", packetId);
    this.#index.set(packetId, { seq: entry.seq, qos: entry.delivery.qos, state: "sent" });
    this.#queued--;
  }

  dropQueued(entry: OutboundEntry): void {
    this.flush();
    this.#store.deleteOutbound(entry.seq);
    this.#queued--;
  }

  markReleased(packetId: number): void {
    const e = this.#index.get(packetId);
    if (!e || e.state === "released") return;
    this.flush();
    this.#store.updateOutbound(e.seq, "released");
    e.state = "released";
  }

  /** Acknowledged (or refused, or undeliverable): the packet identifier is free again; the row goes soon. */
  complete(packetId: number): void {
    const e = this.#index.get(packetId);
    if (!e) return;
    this.#index.delete(packetId);
    this.#acknowledged.push(e.seq);
  }

  /** In-flight entries with their deliveries, oldest first, for resending after a reconnect. */
  inFlightEntries(): OutboundEntry[] {
    this.flush();
    return this.#store.inFlight();
  }
}
