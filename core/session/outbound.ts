import { utf8Length } from "../mqtt/codec/utf8";
import type { QoS } from "../mqtt/packets";
import type { OutboundEntry, OutboundState, SessionStore } from "./store";
import type { Delivery, Message } from "./types";

interface InFlight {
  /** Its row; undefined while not stored yet (addSentDeferred). */
  seq: number | undefined;
  /** Stored with others under `seq` (enqueueSentGroup). */
  grouped: boolean;
  qos: QoS;
  state: Exclude<OutboundState, "queued">;
  size: number;
}

/** A QoS 1 message sent and not stored yet, with the ticket its caller waits on. */
interface Unstored {
  delivery: Delivery;
  ticket: number;
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
 *
 * A QoS 1 message may also be sent before it is stored (`addSentDeferred`): the host keeps
 * the publisher waiting (no PUBACK) until every such message is either acknowledged by the
 * client, and then never written at all, or stored by `persist`, which writes all those
 * still unacknowledged as one group row. Until then the message exists only in memory, and
 * its publisher has not been told it was accepted: if the object dies meanwhile, the
 * publisher sends it again, so at least once holds (4.3.2). A group row goes when its last
 * entry is acknowledged; `compact` rewrites one that lost some, so a wake from hibernation
 * never takes an acknowledged entry for one in flight.
 */
export class Outbound {
  readonly #store: SessionStore;
  #inFlight: Map<number, InFlight> | undefined;
  #inFlightBytes = 0;
  #queued = 0;
  #queuedBytes = 0;
  /** Sequence numbers of acknowledged entries (or whole groups) whose rows are not deleted yet. */
  #acknowledged: number[] = [];
  /** QoS 1 messages sent and not stored yet, by packet identifier, in the order sent. */
  #unstored = new Map<number, Unstored>();
  /** Tickets of #unstored, and the ones handed out since the host last took them. */
  #unstoredTickets = new Set<number>();
  #newTickets: number[] = [];
  #nextTicket = 1;
  /** Stored groups: the packet identifiers still in flight in each, by sequence number. */
  #groups = new Map<number, Set<number>>();
  /** Groups that lost entries since they were last written. */
  #shrunk = new Set<number>();

  constructor(store: SessionStore) {
    this.#store = store;
  }

  get #index(): Map<number, InFlight> {
    if (!this.#inFlight) {
      const index = new Map<number, InFlight>();
      this.#inFlightBytes = 0;
      this.#groups.clear();
      for (const e of this.#store.inFlight()) {
        const size = deliverySize(e.delivery);
        const grouped = e.grouped === true;
        index.set(e.packetId!, { seq: e.seq, grouped, qos: e.delivery.qos, state: e.state as InFlight["state"], size });
        this.#inFlightBytes += size;
        if (grouped) this.#groupOf(e.seq).add(e.packetId!);
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
    this.#unstored.clear();
    this.#unstoredTickets.clear();
    this.#newTickets = [];
    this.#groups.clear();
    this.#shrunk.clear();
  }

  #groupOf(seq: number): Set<number> {
    let group = this.#groups.get(seq);
    if (!group) this.#groups.set(seq, (group = new Set()));
    return group;
  }

  /** Whether acknowledged rows wait to be deleted, or groups to be rewritten (the host then calls `compact` soon). */
  get unflushed(): boolean {
    return this.#acknowledged.length > 0 || this.#shrunk.size > 0;
  }

  /** Delete the rows of acknowledged entries and groups. */
  flush(): void {
    if (this.#acknowledged.length === 0) return;
    for (const seq of this.#acknowledged) this.#store.deleteOutbound(seq);
    this.#acknowledged = [];
  }

  /** `flush`, and rewrite each group that lost entries with the ones still in flight (one row each). */
  compact(): void {
    this.flush();
    for (const seq of this.#shrunk) {
      const left = this.#groups.get(seq);
      if (left) this.#store.keepInGroup(seq, [...left]);
    }
    this.#shrunk.clear();
  }

  /**
   * Before a write to the queue: what was sent and not stored goes first, so sequence order
   * stays the order sent (a reconnect resends in it [MQTT-4.6.0-1]), and acknowledged rows go
   * in the same transaction.
   */
  #beforeWrite(): void {
    this.persist();
    this.flush();
  }

  /** QoS 1 messages sent and not stored yet. */
  get unstoredCount(): number {
    return this.#unstored.size;
  }

  /** The tickets of messages added by addSentDeferred since the last call. */
  takeNewTickets(): number[] {
    const tickets = this.#newTickets;
    this.#newTickets = [];
    return tickets;
  }

  /** Whether the message of `ticket` was acknowledged, stored, or dropped with its session. */
  settled(ticket: number): boolean {
    return !this.#unstoredTickets.has(ticket);
  }

  /**
   * Store the messages sent and not stored yet that are still unacknowledged: one row for
   * all of them (a plain row when there is one).
   */
  persist(): void {
    if (this.#unstored.size === 0) return;
    this.flush();
    const index = this.#index;
    const entries = [...this.#unstored].map(([packetId, u]) => ({ packetId, delivery: u.delivery }));
    this.#unstored.clear();
    this.#unstoredTickets.clear();
    if (entries.length === 1) {
      const { packetId, delivery } = entries[0]!;
      index.get(packetId)!.seq = this.#store.enqueue(delivery, "sent", packetId);
      return;
    }
    const seq = this.#store.enqueueSentGroup(entries);
    const group = this.#groupOf(seq);
    for (const { packetId } of entries) {
      const e = index.get(packetId)!;
      e.seq = seq;
      e.grouped = true;
      group.add(packetId);
    }
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
    this.#beforeWrite();
    const size = deliverySize(delivery);
    const seq = this.#store.enqueue(delivery, "sent", packetId);
    this.#index.set(packetId, { seq, grouped: false, qos: delivery.qos, state: "sent", size });
    this.#inFlightBytes += size;
  }

  /**
   * A QoS 1 message sent at once and not stored: it is stored by `persist` unless the client
   * acknowledges it first. Returns the ticket `settled` answers for.
   */
  addSentDeferred(delivery: Delivery, packetId: number): number {
    const size = deliverySize(delivery);
    const ticket = this.#nextTicket++;
    this.#index.set(packetId, { seq: undefined, grouped: false, qos: delivery.qos, state: "sent", size });
    this.#inFlightBytes += size;
    this.#unstored.set(packetId, { delivery, ticket });
    this.#unstoredTickets.add(ticket);
    this.#newTickets.push(ticket);
    return ticket;
  }

  /**
   * Queued behind the window, within `maxMessages` entries and `maxBytes`: when full, the
   * oldest queued entries make room (the newest message is the one a subscriber wants
   * most: a sensor's latest reading). A message larger than the whole byte bound is not
   * queued. Returns how many messages were dropped, the refused one included.
   */
  addQueued(delivery: Delivery, maxMessages: number, maxBytes: number): number {
    this.#beforeWrite();
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
    this.#beforeWrite();
    this.#store.updateOutbound(entry.seq, "sent", packetId);
    const size = deliverySize(entry.delivery);
    this.#index.set(packetId, { seq: entry.seq, grouped: false, qos: entry.delivery.qos, state: "sent", size });
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
    // Only QoS 2 entries are released, and those are never deferred nor grouped.
    if (!e || e.state === "released" || e.seq === undefined || e.grouped) return;
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
    if (e.seq === undefined) {
      // Acknowledged before it was stored: never written.
      this.#unstoredTickets.delete(this.#unstored.get(packetId)!.ticket);
      this.#unstored.delete(packetId);
    } else if (e.grouped) {
      const group = this.#groupOf(e.seq);
      group.delete(packetId);
      if (group.size > 0) {
        this.#shrunk.add(e.seq);
      } else {
        this.#groups.delete(e.seq);
        this.#shrunk.delete(e.seq);
        this.#acknowledged.push(e.seq);
      }
    } else {
      this.#acknowledged.push(e.seq);
    }
  }

  /** In-flight entries with their deliveries, oldest first, for resending after a reconnect. */
  inFlightEntries(): OutboundEntry[] {
    this.persist();
    this.compact();
    return this.#store.inFlight();
  }
}
