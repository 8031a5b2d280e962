import { utf8Length } from "../mqtt/codec/utf8";
import type { QoS } from "../mqtt/packets";
import type { OutboundEntry, OutboundState, SessionStore } from "./store";
import type { Delivery, Message } from "./types";

interface InFlight {
  seq: number;
  qos: QoS;
  state: Exclude<OutboundState, "queued">;
  size: number;
}

/** What a message weighs against byte bounds: its topic and payload. */
export function messageSize(message: Message): number {
  return message.payload.byteLength + utf8Length(message.topic);
}

/** What a delivery weighs against the byte bounds of the window and the queue. */
export function deliverySize(delivery: Delivery): number {
  return messageSize(delivery.message);
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
  #inFlightBytes = 0;
  #queued = 0;
  #queuedBytes = 0;
  /** Sequence numbers of acknowledged entries whose rows are not deleted yet. */
  #acknowledged: number[] = [];

  constructor(store: SessionStore) {
    this.#store = store;
  }

  get #index(): Map<number, InFlight> {
    if (!this.#inFlight) {
      const index = new Map<number, InFlight>();
      this.#inFlightBytes = 0;
      for (const e of this.#store.inFlight()) {
        const size = deliverySize(e.delivery);
        index.set(e.packetId!, { seq: e.seq, qos: e.delivery.qos, state: e.state as InFlight["state"], size });
        this.#inFlightBytes += size;
      }
      this.#inFlight = index;
      this.#queued = this.#store.outboundCount() - index.size;
      this.#queuedBytes = this.#store.queuedBytes();
    }
    return this.#inFlight;
  }

  /** Forget the cached index (the store was cleared, acknowledged rows with it). */
  reset(): void {
    this.#inFlight = undefined;
    this.#inFlightBytes = 0;
    this.#queued = 0;
    this.#queuedBytes = 0;
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

  get inFlightBytes(): number {
    void this.#index;
    return this.#inFlightBytes;
  }

  get queuedCount(): number {
    void this.#index;
    return this.#queued;
  }

  get queuedBytes(): number {
    void this.#index;
    return this.#queuedBytes;
  }

  /** Whether one more message of `size` bytes fits a window of `maxMessages` and `maxBytes` (one always does). */
  hasRoom(maxMessages: number, maxBytes: number, size: number): boolean {
    const index = this.#index;
    return index.size < maxMessages && (index.size === 0 || this.#inFlightBytes + size <= maxBytes);
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
    const size = deliverySize(delivery);
    const seq = this.#store.enqueue(delivery, "sent", packetId);
    this.#index.set(packetId, { seq, qos: delivery.qos, state: "sent", size });
    this.#inFlightBytes += size;
  }

  /**
   * Queued behind the window, within `maxMessages` entries and `maxBytes`: when full, the
   * oldest queued entries make room (the newest message is the one a subscriber wants
   * most: a sensor's latest reading). A message larger than the whole byte bound is not
   * queued. Returns how many messages were dropped, the refused one included.
   */
  addQueued(delivery: Delivery, maxMessages: number, maxBytes: number): number {
    this.flush();
    void this.#index;
    const size = deliverySize(delivery);
    if (maxMessages === 0 || size > maxBytes) return 1;
    let dropped = 0;
    while (this.#queued > 0 && (this.#queued >= maxMessages || this.#queuedBytes + size > maxBytes)) {
      const oldest = this.#store.dropOldestQueued();
      if (!oldest) break;
      this.#queued--;
      this.#queuedBytes -= oldest.size;
      dropped++;
    }
    this.#store.enqueue(delivery, "queued");
    this.#queued++;
    this.#queuedBytes += size;
    return dropped;
  }

  /** The oldest queued entries, to send. */
  queued(limit: number): OutboundEntry[] {
    return this.#queued > 0 ? this.#store.queued(limit) : [];
  }

  markSent(entry: OutboundEntry, packetId: number): void {
    this.flush();
    this.#store.updateOutbound(entry.seq, "sent", packetId);
    const size = deliverySize(entry.delivery);
    this.#index.set(packetId, { seq: entry.seq, qos: entry.delivery.qos, state: "sent", size });
    this.#inFlightBytes += size;
    this.#queued--;
    this.#queuedBytes -= size;
  }

  dropQueued(entry: OutboundEntry): void {
    this.flush();
    this.#store.deleteOutbound(entry.seq);
    this.#queued--;
    this.#queuedBytes -= deliverySize(entry.delivery);
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
    this.#inFlightBytes -= e.size;
    this.#acknowledged.push(e.seq);
  }

  /** In-flight entries with their deliveries, oldest first, for resending after a reconnect. */
  inFlightEntries(): OutboundEntry[] {
    this.flush();
    return this.#store.inFlight();
  }
}
