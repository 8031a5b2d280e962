import { ReasonCode, type AckPacket, type Properties, type PublishPacket } from "../mqtt/packets";
import { encodePacket } from "../mqtt/codec";
import { ReadDenials } from "./authorize";
import { DropCount, effectList } from "./drops";
import { deliverySize, type Outbound } from "./outbound";
import type { OutboundEntry, SessionRecord, SessionStore } from "./store";
import type { BrokerLimits, Delivery, Effect } from "./types";

export const MAX_PACKET_ID = 0xffff;
/** Queued messages read from the store at once when the window has room. */
const DRAIN_BATCH = 8;

/**
 * How long a session remembers the QoS 2 messages it took in. A message is routed again only
 * when its publisher retransmits it after a crash of the broker, which it does when it
 * reconnects: an hour covers that, and a publisher that comes back later may see its one
 * in-doubt message twice.
 */
const SEEN_MESSAGE_MS = 3_600_000;

/** What the outbound flow needs from its session. */
export interface OutboundFlowHost {
  /** The remembered identifiers of QoS 2 messages taken in (see #dropCopies). */
  readonly store: Pick<SessionStore, "seenMessage" | "rememberMessage" | "forgetMessagesBefore">;
  /** The session's outbound queue and in-flight window, shared with its acknowledgement handlers. */
  readonly outbound: Outbound;
  readonly limits: BrokerLimits;
  /** The current session record, undefined when there is no session. */
  record(): SessionRecord | undefined;
  save(record: SessionRecord): void;
  ack(type: AckPacket["type"], packetId: number, reasonCode: number): Effect;
  /** Whether the session's principal may read a message on `topic` (authorize.ts): checked on every send. */
  mayRead(topic: string): boolean;
}

/**
 * The outbound delivery flow of one session: messages routed to it are sent to the attached
 * client within the in-flight window, or queued, and sent again on reconnection. The session
 * owns the acknowledgements; it calls `drain` when they free room in the window.
 */
export class OutboundFlow {
  readonly #host: OutboundFlowHost;
  #lastPacketId: number | undefined;
  /** When remembered message identifiers were last pruned (epoch ms). */
  #prunedAt = 0;

  constructor(host: OutboundFlowHost) {
    this.#host = host;
  }

  /**
   * The last packet identifier allocated since the session was connected; undefined until
   * then, or after it ended. The session copies it to its record when the connection goes.
   */
  get lastPacketId(): number | undefined {
    return this.#lastPacketId;
  }

  set lastPacketId(id: number | undefined) {
    this.#lastPacketId = id;
  }

  /**
   * Messages routed to this session. QoS 1/2 ones are stored before this returns, which is
   * what lets the publisher's PUBACK mean "durably accepted" — except, with `defer`, QoS 1
   * ones sent at once: those are stored later by `Outbound.persist` unless acknowledged
   * first, and the host answers the publisher's side once each is settled (Outbound.settled).
   * Returns false when there is no session any more, so the caller can forget the stale
   * subscription.
   */
  deliver(deliveries: Delivery[], now: number, backlog = 0, defer = false): { effects: Effect[]; live: boolean } {
    const record = this.#host.record();
    if (!record) return { effects: [], live: false };
    const effects: Effect[] = [];
    this.#pruneSeenMessages(now);
    const fresh = deliveries.some((d) => d.message.messageId !== undefined) ? this.#dropCopies(deliveries, now) : deliveries;
    const drops = new DropCount(record.clientId);
    const denials = new ReadDenials();
    // Bytes on their way to the client: the host's figure, plus what this call sends.
    let pending = backlog;
    for (const d of fresh) {
      if (d.message.expiresAt !== undefined && d.message.expiresAt <= now) continue; // [MQTT-3.3.2-5]
      // Not delivered, not queued either, where the principal may not read (live and retained alike).
      if (!this.#host.mayRead(d.message.topic)) {
        denials.add(d.message.topic);
        continue;
      }
      if (!record.connected) {
        // Offline: QoS 0 is not kept; QoS 1/2 queue up to the limit, dropping the oldest (5.0 3.1.2.4 allows a limit).
        if (d.qos === 0) continue;
        drops.add("queue", this.#enqueueBounded(d));
        continue;
      }
      const sent =
        d.qos === 0
          ? pending > this.#host.limits.maxClientBacklogBytes
            ? drops.add("qos0", 1) // the client does not keep up: QoS 0 goes first
            : this.#publishEffect(d, undefined, false, now)
          : this.#deliverNow(d, now, drops, defer && d.qos === 1);
      for (const effect of effectList(sent)) {
        if (effect.kind === "send") pending += effect.bytes.byteLength;
        effects.push(effect);
      }
    }
    effects.push(...drops.effects(), ...denials.effects());
    return { effects, live: true };
  }

  /**
   * A QoS 2 message routed again after the broker crashed under its publisher: drop what was
   * taken in already, remember the rest. Within one call a message may come more than once (a
   * shared and a plain subscription), which is not a copy.
   */
  #dropCopies(deliveries: Delivery[], now: number): Delivery[] {
    const store = this.#host.store;
    const fresh = deliveries.filter((d) => d.message.messageId === undefined || !store.seenMessage(d.message.messageId));
    for (const d of fresh) if (d.message.messageId !== undefined) store.rememberMessage(d.message.messageId, now);
    return fresh;
  }

  /** Identifiers are kept for SEEN_MESSAGE_MS; pruned at most once a minute. */
  #pruneSeenMessages(now: number): void {
    if (now - this.#prunedAt < 60_000) return;
    this.#prunedAt = now;
    this.#host.store.forgetMessagesBefore(now - SEEN_MESSAGE_MS);
  }

  /** Queued within the queue's bounds; returns how many messages that dropped. */
  #enqueueBounded(d: Delivery): number {
    const limits = this.#host.limits;
    return this.#host.outbound.addQueued(d, limits.maxQueuedMessages, limits.maxQueuedBytes);
  }

  /**
   * The in-flight window towards the client: the smaller of its Receive Maximum
   * [MQTT-4.9.0-2] and the broker's own bound, in messages and in bytes. What does not fit
   * waits in the queue (storage), so a backlog of any size leaves in pieces as the client
   * acknowledges, never all at once.
   */
  #windowHasRoom(size: number): boolean {
    const conn = this.#host.record()!.connection!;
    const limits = this.#host.limits;
    return this.#host.outbound.hasRoom(Math.min(conn.receiveMaximum, limits.maxInflightMessages), limits.maxInflightBytes, size);
  }

  /**
   * Send queued QoS 1/2 messages while the window allows. A message queued under rules (or a
   * principal) that has changed since is checked again: dropped if it may no longer be read.
   */
  drain(now: number): Effect[] {
    const denials = new ReadDenials();
    const effects = this.#drain(now, denials);
    effects.push(...denials.effects());
    return effects;
  }

  #drain(now: number, denials: ReadDenials): Effect[] {
    const conn = this.#host.record()?.connection;
    if (!conn) return [];
    const outbound = this.#host.outbound;
    const effects: Effect[] = [];
    // An entry dropped (expired, too large) frees its place for the next one: read again.
    for (;;) {
      const free = Math.min(conn.receiveMaximum, this.#host.limits.maxInflightMessages) - outbound.inFlightCount;
      // A few at a time: a stored message may be as large as the maximum packet size. And no
      // more than the bytes left in the window take, at the queue's average size: a window
      // full in bytes reads (and decodes) nothing; the next acknowledgement drains again.
      const bytesLeft = this.#host.limits.maxInflightBytes - outbound.inFlightBytes;
      const average = outbound.queuedCount > 0 ? outbound.queuedBytes / outbound.queuedCount : 0;
      const fit = outbound.inFlightCount === 0 || average === 0 ? DRAIN_BATCH : Math.floor(bytesLeft / average);
      const batch = free > 0 && fit > 0 ? outbound.queued(Math.min(free, fit, DRAIN_BATCH)) : [];
      if (batch.length === 0) return effects;
      for (const entry of batch) {
        if (!this.#windowHasRoom(deliverySize(entry.delivery))) return effects;
        const topic = entry.delivery.message.topic;
        const send = this.#host.mayRead(topic) ? this.#sendStored(entry.delivery, now) : denials.add(topic);
        if (!send) {
          outbound.dropQueued(entry);
          continue;
        }
        outbound.markSent(entry, send.packetId);
        effects.push(send.effect);
      }
    }
  }

  /**
   * A QoS 1/2 delivery with room in the window and nothing queued before it: stored directly
   * as in flight (one row written, one deleted on acknowledgement), or with `defer` sent
   * first and stored later, with others, unless acknowledged before (Outbound.addSentDeferred).
   */
  #deliverNow(d: Delivery, now: number, drops: DropCount, defer: boolean): Effect[] {
    if (this.#host.outbound.queuedCount > 0 || !this.#windowHasRoom(deliverySize(d))) {
      drops.add("queue", this.#enqueueBounded(d));
      return this.drain(now);
    }
    const send = this.#sendStored(d, now);
    if (!send) return [];
    if (defer) this.#host.outbound.addSentDeferred(d, send.packetId);
    else this.#host.outbound.addSent(d, send.packetId);
    return [send.effect];
  }

  /** The PUBLISH for a stored delivery with a fresh packet identifier; undefined when it must be dropped. */
  #sendStored(d: Delivery, now: number): { effect: Effect; packetId: number } | undefined {
    if (d.message.expiresAt !== undefined && d.message.expiresAt <= now) return undefined; // [MQTT-3.3.2-5]
    const packetId = this.#allocatePacketId();
    // Too large for the client: discarded as if delivered [MQTT-3.1.2-25].
    const effect = this.#publishEffect(d, packetId, false, now);
    return effect && { effect, packetId };
  }

  /** Every message in flight, again: PUBLISH with DUP, or PUBREL for a released one. */
  resendInFlight(now: number): Effect[] {
    const conn = this.#host.record()?.connection;
    if (!conn) return [];
    const effects: Effect[] = [];
    const denials = new ReadDenials();
    for (const entry of this.#host.outbound.inFlightEntries()) effects.push(...this.#resend(entry, now, denials));
    effects.push(...denials.effects());
    return effects;
  }

  #resend(entry: OutboundEntry, now: number, denials: ReadDenials): Effect[] {
    if (entry.state === "released") return [this.#host.ack("pubrel", entry.packetId!, ReasonCode.Success)];
    if (!this.#host.mayRead(entry.delivery.message.topic)) {
      // Sent under rules (or a principal) that have changed since: not sent again.
      denials.add(entry.delivery.message.topic);
      this.#host.outbound.complete(entry.packetId!);
      return [];
    }
    const send = this.#publishEffect(entry.delivery, entry.packetId, true, now); // [MQTT-3.3.1-1] DUP on redelivery
    if (send) return [send];
    this.#host.outbound.complete(entry.packetId!);
    return [];
  }

  #publishEffect(d: Delivery, packetId: number | undefined, dup: boolean, now: number): Effect | undefined {
    const record = this.#host.record()!;
    const conn = record.connection!;
    const m = d.message;
    const v = record.protocolVersion;
    const properties: Properties = {};
    if (v === 5) {
      Object.assign(properties, m.properties);
      if (m.expiresAt !== undefined) {
        // The interval sent is what remains of it [MQTT-3.3.2-6].
        properties.messageExpiryInterval = Math.max(0, Math.ceil((m.expiresAt - now) / 1000));
      }
      if (d.subscriptionIds?.length) properties.subscriptionIdentifiers = d.subscriptionIds;
    }
    let topic = m.topic;
    let newAlias: number | undefined;
    if (v === 5 && conn.topicAliasMaximum > 0) {
      const alias = conn.outboundAliases[topic];
      if (alias !== undefined) {
        properties.topicAlias = alias;
        topic = "";
      } else {
        const used = Object.keys(conn.outboundAliases).length;
        if (used < conn.topicAliasMaximum) {
          // First use of an alias carries the topic too [MQTT-3.3.2-12].
          newAlias = used + 1;
          properties.topicAlias = newAlias;
        }
      }
    }
    const packet: PublishPacket = {
      type: "publish",
      topic,
      payload: m.payload,
      qos: d.qos,
      retain: d.retain,
      dup: dup && d.qos > 0,
      ...(packetId !== undefined && { packetId }),
      ...(v === 5 && Object.keys(properties).length > 0 && { properties }),
    };
    const bytes = encodePacket(packet, v);
    if (bytes.byteLength > conn.maximumPacketSize) return undefined;
    if (newAlias !== undefined) {
      // Only a PUBLISH actually sent tells the client the alias.
      conn.outboundAliases[m.topic] = newAlias;
      this.#host.save(record);
    }
    return { kind: "send", packet, bytes };
  }

  #allocatePacketId(): number {
    let id = this.#lastPacketId ?? this.#host.record()?.lastPacketId ?? 0;
    for (let tries = 0; tries < MAX_PACKET_ID; tries++) {
      id = id >= MAX_PACKET_ID ? 1 : id + 1;
      if (!this.#host.outbound.inUse(id)) break; // [MQTT-2.2.1-3] not in use
    }
    this.#lastPacketId = id;
    return id;
  }
}
