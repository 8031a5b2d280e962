import {
  ReasonCode,
  type AckPacket,
  type ConnectPacket,
  type DisconnectPacket,
  type Packet,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  type SubscribePacket,
  type UnsubscribePacket,
} from "../mqtt/packets";
import { encodePacket, validateTopicFilter, validateTopicName } from "../mqtt/codec";
import { checkTopicFilterLimits, checkTopicNameLimits, type TopicLimits } from "../topics";
import { disconnectCause, type Ending } from "../presence/reasons";
import type { Authorizer, Principal } from "../policy/types";
import { AdminFlow } from "./admin";
import { to311ReturnCode } from "./admit";
import { SessionAccess, connectPrincipal, denied, rememberRefusedQos2 } from "./authorize";
import { MAX_PACKET_ID, OutboundFlow } from "./deliver";
import { messageProperties } from "./message";
import { Outbound } from "./outbound";
import type { ConnectionState, SessionRecord, SessionStore } from "./store";
import type { BrokerLimits, Delivery, Effect, Message, SubscribeRequest, Subscription } from "./types";

const NEVER = 0xffffffff;
/** The largest packet MQTT can express: remaining length 268,435,455 plus a 5-byte header. */
const PROTOCOL_MAX_PACKET = 268_435_460;

interface PendingAck {
  ticket: number;
  packetId: number;
  qos: 1 | 2;
  done: boolean;
  matched: number;
  /** Set when routing failed (5.0): the ack carries it. */
  failure?: number;
}

interface PendingSubscribe {
  packetId: number;
  reasonCodes: number[];
}

/**
 * The MQTT session state machine of one client identifier. It performs no I/O: each input
 * returns the effects its host must carry out, in order. State that must outlive the
 * process lives in the SessionStore; the rest is rebuilt from it, so the host may be
 * hibernated or evicted between any two inputs.
 */
export class Session {
  readonly #store: SessionStore;
  readonly #limits: BrokerLimits;
  #record: SessionRecord | undefined;
  #loaded = false;
  #nextTicket = 1;
  /** Inbound QoS 1/2 publishes being routed, in arrival order: acks go out in that order [MQTT-4.6.0-2]. */
  #pendingAcks: PendingAck[] = [];
  #pendingSubscribes = new Map<number, PendingSubscribe>();

  readonly #topicLimits: TopicLimits;
  readonly #outbound: Outbound;
  /** Outbound delivery: the in-flight window, the queue and the PUBLISH packets to the client. */
  readonly #flow: OutboundFlow;
  #qos2Count: number | undefined;

  /** Operator actions: describe, disconnect, end (admin.ts). */
  readonly admin: AdminFlow;

  /** Makes the identifiers of inbound QoS 2 messages (see Message.messageId). */
  readonly #newMessageId: () => string;
  /** Access control (authorize.ts): without an Authorizer, everything is allowed. Hosts ask `willAllowed` before a takeover. */
  readonly access: SessionAccess;

  constructor(store: SessionStore, limits: BrokerLimits, newMessageId: () => string = randomMessageId, authorizer?: Authorizer) {
    this.#newMessageId = newMessageId;
    this.access = new SessionAccess(authorizer);
    this.#store = store;
    this.#outbound = new Outbound(store);
    this.#limits = limits;
    this.#flow = new OutboundFlow({
      store,
      outbound: this.#outbound,
      limits,
      record: () => this.record,
      save: (record) => this.#save(record),
      ack: (type, packetId, reasonCode) => this.#ack(type, packetId, reasonCode),
      mayRead: (topic) => this.access.mayRead(this.record, topic),
    });
    this.#topicLimits = { maxBytes: limits.maxTopicLength, maxLevels: limits.maxTopicLevels };
    this.admin = new AdminFlow({ store, outbound: this.#outbound, record: () => this.record, save: (r) => this.#save(r),
      send: (p) => this.#send(p), connectionLost: (reason, now) => this.connectionLost(reason, now), end: (now) => this.#end(now) });
  }

  get record(): SessionRecord | undefined {
    if (!this.#loaded) {
      this.#record = this.#store.load();
      this.#loaded = true;
    }
    return this.#record;
  }

  get connected(): boolean {
    return this.record?.connected ?? false;
  }

  get protocolVersion(): ProtocolVersion {
    return this.record?.protocolVersion ?? 4;
  }

  /** Epoch ms of the next Will or session expiry deadline, if any. */
  nextDeadline(): number | undefined {
    const r = this.record;
    if (!r) return undefined;
    const times = [r.willAt, r.connected ? undefined : r.expiresAt].filter((t): t is number => t !== undefined);
    return times.length ? Math.min(...times) : undefined;
  }

  /**
   * Whether deferred storage writes wait (rows of acknowledged deliveries): the host calls
   * `flushWrites` soon after, on a short timer, so a burst of acknowledgements shares one commit.
   */
  get unflushedWrites(): boolean {
    return this.#outbound.unflushed;
  }

  flushWrites(): void {
    this.#outbound.compact();
  }

  /** QoS 1 deliveries sent and not stored yet (deliver with `defer`): the host stores them soon. */
  get unstoredDeliveries(): number {
    return this.#outbound.unstoredCount;
  }

  /** Store the QoS 1 deliveries sent and still unacknowledged, in one row. */
  storeDeliveries(): void {
    this.#outbound.persist();
  }

  /** Tickets of the deliveries deferred since the last call (see `deliverySettled`). */
  takeDeferredDeliveries(): number[] {
    return this.#outbound.takeNewTickets();
  }

  /** Whether a deferred delivery was acknowledged by the client or stored (or its session ended). */
  deliverySettled(ticket: number): boolean {
    return this.#outbound.settled(ticket);
  }

  // ---------------------------------------------------------------- CONNECT

  /**
   * A CONNECT for this client identifier, already decoded and checked by the codec. If a
   * connection is still attached, the host has closed it and called `connectionLost` first.
   * `principal`: who the host authenticated (absent: anonymous, with the CONNECT's user name).
   */
  connect(packet: ConnectPacket, now: number, assignedClientId = false, principal?: Principal): Effect[] {
    const effects: Effect[] = [];
    const v = packet.protocolVersion;
    const props = packet.properties ?? {};

    if (v === 5 && props.authenticationMethod !== undefined) {
      // Enhanced authentication is not offered [MQTT-4.12.0-1].
      return this.#refuse(v, ReasonCode.BadAuthenticationMethod, "enhanced authentication is not supported");
    }
    if (packet.will) {
      const bad = this.#checkTopicName(packet.will.topic);
      if (bad !== undefined) return this.#refuse(v, bad, "invalid Will topic");
    }
    const who = connectPrincipal(packet, principal);
    if (packet.will && !this.access.willAllowed(packet, who)) {
      return [...this.#refuse(v, ReasonCode.NotAuthorized, "not authorized to publish the Will"), denied("publish", packet.will.topic)];
    }

    let record = this.record;
    if (record && record.connected) {
      // The host must have detached the previous connection; be safe if it did not.
      effects.push(...this.connectionLost(ReasonCode.SessionTakenOver, now));
      record = this.record;
    }
    if (record && record.expiresAt !== undefined && record.expiresAt <= now) {
      effects.push(...this.#end(now));
      record = undefined;
    }
    if (record && packet.clean) {
      // Clean Start: the existing session ends now, and a pending Will with it [MQTT-3.1.2-4].
      effects.push(...this.#end(now));
      record = undefined;
    }
    const sessionPresent = record !== undefined;
    if (record?.willAt !== undefined) {
      // Reconnected before the Will Delay elapsed: the Will is not sent [MQTT-3.1.3-9].
      delete record.willAt;
      delete record.will;
    }

    let expiryInterval: number;
    if (v === 5) expiryInterval = props.sessionExpiryInterval ?? 0;
    else expiryInterval = packet.clean ? 0 : NEVER;
    const grantedExpiry = Math.min(expiryInterval, this.#limits.maxSessionExpiry);

    let keepAlive = packet.keepAlive;
    let serverKeepAlive: number | undefined;
    if (keepAlive > this.#limits.maxKeepAlive || (keepAlive === 0 && v === 5 && this.#limits.maxKeepAlive > 0)) {
      if (v === 5) {
        keepAlive = this.#limits.maxKeepAlive;
        serverKeepAlive = keepAlive; // [MQTT-3.2.2-21]
      }
    }

    const connection: ConnectionState = {
      keepAlive,
      receiveMaximum: props.receiveMaximum ?? 65535,
      maximumPacketSize: props.maximumPacketSize ?? PROTOCOL_MAX_PACKET,
      topicAliasMaximum: v === 5 ? (props.topicAliasMaximum ?? 0) : 0,
      outboundAliases: {},
      inboundAliases: {},
      requestProblemInformation: props.requestProblemInformation !== 0,
      resumed: sessionPresent,
      connectedAt: now,
      ...(who.username !== undefined && { username: who.username }), // the authenticated name (a certificate's, a token's)
    };
    const next: SessionRecord = {
      clientId: packet.clientId,
      protocolVersion: v,
      expiryInterval: grantedExpiry,
      connected: true,
      lastPacketId: record?.lastPacketId ?? 0,
      connection,
      principal: who,
      ...(packet.will && { will: packet.will }),
    };
    this.#save(next);
    this.#flow.lastPacketId = next.lastPacketId;
    this.#pendingAcks = [];
    this.#pendingSubscribes.clear();

    const connackProps: Properties | undefined =
      v === 5
        ? {
            receiveMaximum: this.#limits.receiveMaximum,
            maximumPacketSize: this.#limits.maximumPacketSize,
            topicAliasMaximum: this.#limits.topicAliasMaximum,
            retainAvailable: 1,
            wildcardSubscriptionAvailable: 1,
            subscriptionIdentifierAvailable: 1,
            sharedSubscriptionAvailable: 1,
            ...(assignedClientId && { assignedClientIdentifier: packet.clientId }),
            ...(serverKeepAlive !== undefined && { serverKeepAlive }),
            ...(grantedExpiry !== expiryInterval && { sessionExpiryInterval: grantedExpiry }),
          }
        : undefined;
    effects.push(
      this.#send({
        type: "connack",
        sessionPresent, // [MQTT-3.2.2-2] [MQTT-3.2.2-3]
        reasonCode: ReasonCode.Success,
        ...(connackProps && { properties: connackProps }),
      }),
    );
    effects.push({
      kind: "presence",
      event: {
        clientId: packet.clientId,
        online: true,
        at: now,
        connectedAt: now,
        protocolVersion: v,
        ...(who.username !== undefined && { username: who.username }),
      },
    });
    // Resend unacknowledged messages with DUP, then the queue [MQTT-4.4.0-1].
    effects.push(...this.#flow.resendInFlight(now));
    effects.push(...this.#flow.drain(now));
    return effects;
  }

  #refuse(v: ProtocolVersion, reason: number, reasonString: string): Effect[] {
    return [
      this.#sendAs(v, {
        type: "connack",
        sessionPresent: false, // [MQTT-3.2.2-6]
        reasonCode: v === 5 ? reason : to311ReturnCode(reason),
        ...(v === 5 && { properties: { reasonString } }),
      }),
      { kind: "close", reason },
    ];
  }

  // ---------------------------------------------------------------- packets

  /** A packet from the attached client, after CONNECT. */
  packet(packet: Packet, now: number): Effect[] {
    if (!this.connected) return [];
    switch (packet.type) {
      case "publish":
        return this.#onPublish(packet, now);
      case "puback":
        return this.#onPuback(packet, now);
      case "pubrec":
        return this.#onPubrec(packet, now);
      case "pubrel":
        return this.#onPubrel(packet);
      case "pubcomp":
        return this.#onPubcomp(packet, now);
      case "subscribe":
        return this.#onSubscribe(packet, now);
      case "unsubscribe":
        return this.#onUnsubscribe(packet);
      case "pingreq":
        return [this.#send({ type: "pingresp" })]; // [MQTT-3.12.4-1]
      case "disconnect":
        return this.#onDisconnect(packet, now);
      case "connect":
        // A second CONNECT is a Protocol Error [MQTT-3.1.0-2].
        return this.protocolError(ReasonCode.ProtocolError, "second CONNECT", now);
      case "auth":
        return this.protocolError(ReasonCode.ProtocolError, "AUTH without an authentication method", now);
      default:
        // Server-to-client packet types must not come from a client.
        return this.protocolError(ReasonCode.ProtocolError, `unexpected ${packet.type.toUpperCase()}`, now);
    }
  }

  /** The client broke the protocol: tell it why (5.0), close, and treat as an ungraceful loss. */
  protocolError(reason: number, reasonString: string, now: number): Effect[] {
    const effects: Effect[] = [];
    if (this.protocolVersion === 5 && this.connected) {
      effects.push(this.#send({ type: "disconnect", reasonCode: reason, properties: { reasonString } }));
    }
    effects.push({ kind: "close", reason });
    effects.push(...this.connectionLost(reason, now));
    return effects;
  }

  #onPublish(packet: PublishPacket, now: number): Effect[] {
    const record = this.record!;
    const conn = record.connection!;
    const props = packet.properties ?? {};
    let topic = packet.topic;

    if (props.subscriptionIdentifiers?.length) {
      // A PUBLISH from a client must not carry Subscription Identifiers [MQTT-3.3.4-6].
      return this.protocolError(ReasonCode.ProtocolError, "Subscription Identifier on PUBLISH", now);
    }
    if (props.topicAlias !== undefined) {
      const alias = props.topicAlias;
      if (alias === 0 || alias > this.#limits.topicAliasMaximum) {
        return this.protocolError(ReasonCode.TopicAliasInvalid, "topic alias out of range", now); // [MQTT-3.3.2-9]
      }
      if (topic === "") {
        const known = conn.inboundAliases[alias];
        if (known === undefined) return this.protocolError(ReasonCode.ProtocolError, "unknown topic alias", now);
        topic = known;
      } else if (conn.inboundAliases[alias] !== topic) {
        conn.inboundAliases[alias] = topic;
        this.#save(record);
      }
    } else if (topic === "") {
      return this.protocolError(ReasonCode.ProtocolError, "empty topic without topic alias", now); // [MQTT-4.7.3-1]
    }
    const badTopic = this.#checkTopicName(topic);
    if (badTopic !== undefined) {
      if (record.protocolVersion === 5 && packet.qos > 0) {
        return [this.#ack(packet.qos === 1 ? "puback" : "pubrec", packet.packetId!, badTopic)];
      }
      return this.protocolError(badTopic, "topic name invalid", now);
    }

    const message: Message = {
      topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      origin: record.clientId,
      ...messageProperties(props),
      ...(props.messageExpiryInterval !== undefined && { expiresAt: now + props.messageExpiryInterval * 1000 }),
    };

    const allowed = this.access.mayPublish(record, topic);
    // Stamped with the time it was received: a subscription whose SUBSCRIBE was received
    // before it gets it, wherever the two met first (core/session/recent.ts).
    if (packet.qos === 0) return [allowed ? { kind: "route", message, receivedAt: now } : denied("publish", topic)];

    const packetId = packet.packetId!;
    const known = packet.qos === 2 ? this.#store.inboundQos2(packetId) : undefined;
    if (known) {
      // A retransmission of a publish we own already: do not deliver it again [MQTT-4.3.3-9].
      if (this.#pendingAcks.some((p) => p.packetId === packetId && p.qos === 2)) return [];
      if (known.routed) return [this.#ack("pubrec", packetId, ReasonCode.Success)];
      // Taken in before a crash, and not known to have reached every subscriber (PUBREC was
      // never sent): route it again under the same identifier; sessions that took it in
      // already drop the copy, so it arrives once.
      return this.#routeForAck({ ...message, messageId: known.messageId }, packetId, 2, now);
    }
    // More unacknowledged QoS 1/2 publishes than the Receive Maximum we announced [MQTT-3.3.4-9]:
    // counted are only the QoS 2 messages whose PUBREC went out and whose PUBREL the client
    // owes. Publishes still being routed are the broker's delay, not the client's doing: a
    // client is never disconnected because the broker is behind (the publish rate limit,
    // enforced where the socket is, bounds how many can pile up). 3.1.1 has no Receive
    // Maximum to announce: there only the packet identifier space bounds it.
    const awaitingRelease = this.#inboundQos2Count() - this.#pendingAcks.filter((p) => p.qos === 2).length;
    const receiveMaximum = this.protocolVersion === 5 ? this.#limits.receiveMaximum : MAX_PACKET_ID;
    if (awaitingRelease >= receiveMaximum) {
      return this.protocolError(ReasonCode.ReceiveMaximumExceeded, "receive maximum exceeded", now);
    }
    if (!allowed) return this.#denyPublish(packetId, packet.qos, topic);
    if (packet.qos === 2) {
      message.messageId = this.#newMessageId();
      this.#store.addInboundQos2(packetId, message.messageId);
      this.#qos2Count = this.#inboundQos2Count() + 1;
    }
    return this.#routeForAck(message, packetId, packet.qos, now);
  }

  /**
   * A QoS 1/2 PUBLISH its principal may not make, never routed, acknowledged in arrival order
   * [MQTT-4.6.0-2]: 5.0 PUBACK / PUBREC 0x87, which ends a QoS 2 exchange [MQTT-4.3.3-4] (nothing
   * kept: a retransmission is a new message [MQTT-4.3.3-9]); 3.1.1 a plain one [MQTT-3.3.5-2].
   */
  #denyPublish(packetId: number, qos: 1 | 2, topic: string): Effect[] {
    if (qos === 2 && this.protocolVersion !== 5) {
      rememberRefusedQos2(this.#store, packetId, this.#newMessageId());
      this.#qos2Count = this.#inboundQos2Count() + 1;
    }
    this.#pendingAcks.push({ ticket: this.#nextTicket++, packetId, qos, done: true, matched: 0, failure: ReasonCode.NotAuthorized });
    return [...this.#flushAcks(), denied("publish", topic)];
  }

  /** Route a QoS 1/2 publish; its PUBACK or PUBREC waits for routed() (see #flushAcks). */
  #routeForAck(message: Message, packetId: number, qos: 1 | 2, receivedAt: number): Effect[] {
    const ticket = this.#nextTicket++;
    this.#pendingAcks.push({ ticket, packetId, qos, done: false, matched: 0 });
    return [{ kind: "route", message, ticket, receivedAt }];
  }

  /** A routed QoS 1/2 publish is durably accepted by every subscriber's session. */
  routed(ticket: number, matched: number): Effect[] {
    const pending = this.#pendingAcks.find((p) => p.ticket === ticket);
    if (!pending) return [];
    pending.done = true;
    pending.matched = matched;
    // Stored in the turn that sends PUBREC: a retransmission after a crash is then only acknowledged.
    if (pending.qos === 2) this.#store.markInboundQos2Routed(pending.packetId);
    return this.#flushAcks();
  }

  /** Send the acks that are ready, in arrival order: stop at the first still being routed. */
  #flushAcks(): Effect[] {
    const effects: Effect[] = [];
    while (this.#pendingAcks[0]?.done) {
      const p = this.#pendingAcks.shift()!;
      const reason =
        p.failure ?? (p.matched === 0 && this.protocolVersion === 5 ? ReasonCode.NoMatchingSubscribers : ReasonCode.Success);
      effects.push(this.#ack(p.qos === 1 ? "puback" : "pubrec", p.packetId, reason));
    }
    return effects;
  }

  /** Routing a QoS 1/2 publish failed: answer with an error reason (5.0) or drop the connection (3.1.1). */
  routeFailed(ticket: number, now: number): Effect[] {
    const index = this.#pendingAcks.findIndex((p) => p.ticket === ticket);
    if (index < 0) return [];
    const p = this.#pendingAcks[index]!;
    if (p.qos === 2) this.#forgetInboundQos2(p.packetId);
    if (this.protocolVersion === 5) {
      // Answered in arrival order like any other ack [MQTT-4.6.0-2].
      p.done = true;
      p.failure = ReasonCode.ImplementationSpecificError;
      return this.#flushAcks();
    }
    return this.protocolError(ReasonCode.UnspecifiedError, "could not route message", now);
  }

  #onPubrel(packet: AckPacket): Effect[] {
    const known = this.#forgetInboundQos2(packet.packetId);
    // [MQTT-4.3.3-11] PUBCOMP with the same packet identifier. An unknown one is 0x92, except
    // on a resumed session: a PUBREL repeated after reconnecting is "not an error during
    // recovery" (5.0 3.7.2.1) — the PUBCOMP was lost, the message was delivered.
    const recovering = this.record?.connection?.resumed === true;
    const reason = known || recovering ? ReasonCode.Success : ReasonCode.PacketIdentifierNotFound;
    return [this.#ack("pubcomp", packet.packetId, reason)];
  }

  #onPuback(packet: AckPacket, now: number): Effect[] {
    const entry = this.#outbound.byPacketId(packet.packetId);
    if (!entry || entry.qos !== 1) return [];
    this.#outbound.complete(packet.packetId); // the packet identifier becomes free (5.0 4.3.2)
    return this.#flow.drain(now);
  }

  #onPubrec(packet: AckPacket, now: number): Effect[] {
    const entry = this.#outbound.byPacketId(packet.packetId);
    if (!entry || entry.qos !== 2) {
      return [this.#ack("pubrel", packet.packetId, ReasonCode.PacketIdentifierNotFound)];
    }
    if ((packet.reasonCode ?? 0) >= 0x80) {
      // The receiver refused the message: the exchange ends here (5.0 4.3.3).
      this.#outbound.complete(packet.packetId);
      return this.#flow.drain(now);
    }
    this.#outbound.markReleased(packet.packetId);
    return [this.#ack("pubrel", packet.packetId, ReasonCode.Success)]; // [MQTT-4.3.3-4]
  }

  #onPubcomp(packet: AckPacket, now: number): Effect[] {
    const entry = this.#outbound.byPacketId(packet.packetId);
    if (!entry || entry.state !== "released") return [];
    this.#outbound.complete(packet.packetId);
    return this.#flow.drain(now);
  }

  // ---------------------------------------------------------------- SUBSCRIBE

  #onSubscribe(packet: SubscribePacket, now: number): Effect[] {
    const v = this.protocolVersion;
    const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0];
    const reasonCodes: number[] = [];
    const requests: SubscribeRequest[] = [];
    const denials: Effect[] = [];
    let count = this.#store.subscriptions().length;

    for (const sub of packet.subscriptions) {
      const filter = sub.topicFilter;
      const shared = filter.startsWith("$share/");
      if (shared && sub.noLocal) {
        // No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].
        return this.protocolError(ReasonCode.ProtocolError, "No Local on a shared subscription", now);
      }
      const bad = this.#checkTopicFilter(filter);
      if (bad !== undefined) {
        reasonCodes.push(v === 5 ? bad : 0x80);
        continue;
      }
      if (!this.access.maySubscribe(this.record!, filter)) {
        reasonCodes.push(v === 5 ? ReasonCode.NotAuthorized : 0x80); // not stored, no retained messages
        denials.push(denied("subscribe", filter));
        continue;
      }
      const existing = this.#store.getSubscription(filter);
      if (!existing && count >= this.#limits.maxSubscriptionsPerClient) {
        reasonCodes.push(v === 5 ? ReasonCode.QuotaExceeded : 0x80);
        continue;
      }
      if (!existing) count++;
      const subscription: Subscription = {
        filter,
        qos: sub.qos,
        noLocal: sub.noLocal ?? false,
        retainAsPublished: sub.retainAsPublished ?? false,
        retainHandling: sub.retainHandling ?? 0,
        ...(subscriptionId !== undefined && { subscriptionId }),
      };
      // A subscription to the same filter replaces the previous one [MQTT-3.8.4-3].
      this.#store.putSubscription(subscription);
      const wantRetained =
        !shared && // Retained messages are not sent for shared subscriptions (5.0 4.8.2)
        (subscription.retainHandling === 0 || (subscription.retainHandling === 1 && !existing)); // [MQTT-3.3.1-9] [MQTT-3.3.1-10]
      requests.push({ subscription, wantRetained });
      reasonCodes.push(sub.qos); // granted QoS: we support up to 2 (3.9.3)
    }

    if (requests.length === 0) {
      return [...denials, this.#send({ type: "suback", packetId: packet.packetId, reasonCodes })];
    }
    const ticket = this.#nextTicket++;
    this.#pendingSubscribes.set(ticket, { packetId: packet.packetId, reasonCodes });
    // The time it was received: the shards replay what they routed from then on (core/session/recent.ts).
    const connectedAt = this.record!.connection?.connectedAt;
    return [...denials, { kind: "subscribe", ticket, clientId: this.record!.clientId, subscriptions: requests, receivedAt: now,
      ...(connectedAt !== undefined && { connectedAt }) }];
  }

  /** The shards hold the new subscriptions: acknowledge [MQTT-3.8.4-1]. Retained messages follow via `deliver`. */
  subscribed(ticket: number): Effect[] {
    const pending = this.#pendingSubscribes.get(ticket);
    if (!pending) return [];
    this.#pendingSubscribes.delete(ticket);
    return [this.#send({ type: "suback", packetId: pending.packetId, reasonCodes: pending.reasonCodes })];
  }

  #onUnsubscribe(packet: UnsubscribePacket): Effect[] {
    const removed: string[] = [];
    const reasonCodes = packet.topicFilters.map((filter) => {
      if (this.#store.deleteSubscription(filter)) {
        removed.push(filter);
        return ReasonCode.Success;
      }
      return ReasonCode.NoSubscriptionExisted;
    });
    const effects: Effect[] = [];
    if (removed.length) effects.push({ kind: "unsubscribe", clientId: this.record!.clientId, filters: removed });
    // [MQTT-3.10.4-4] UNSUBACK even when nothing was removed; reason codes only in 5.0.
    effects.push(
      this.#send({
        type: "unsuback",
        packetId: packet.packetId,
        ...(this.protocolVersion === 5 && { reasonCodes }),
      }),
    );
    return effects;
  }

  // ---------------------------------------------------------------- DISCONNECT and loss

  #onDisconnect(packet: DisconnectPacket, now: number): Effect[] {
    const record = this.record!;
    const reason = packet.reasonCode ?? ReasonCode.NormalDisconnection;
    const newExpiry = packet.properties?.sessionExpiryInterval;
    if (newExpiry !== undefined) {
      if (record.expiryInterval === 0 && newExpiry !== 0) {
        // Cannot turn a zero expiry into a non-zero one at DISCONNECT [MQTT-3.14.2-2].
        return this.protocolError(ReasonCode.ProtocolError, "session expiry changed from zero", now);
      }
      record.expiryInterval = Math.min(newExpiry, this.#limits.maxSessionExpiry);
    }
    if (reason !== ReasonCode.DisconnectWithWill) {
      // A normal DISCONNECT discards the Will [MQTT-3.1.2-10] [MQTT-3.14.4-3].
      delete record.will;
    }
    this.#save(record);
    return [{ kind: "close", reason }, ...this.connectionLost(reason, now, "client")];
  }

  /**
   * The network connection is gone (closed, keep alive timeout, protocol error, taken over,
   * or after DISCONNECT). Publishes or schedules the Will and starts the session expiry.
   * `ending` (how it ended) with `reason` names the presence reason (core/presence/reasons.ts).
   */
  connectionLost(reason: number, now: number, ending: Ending = "server"): Effect[] {
    const record = this.record;
    if (!record || !record.connected) return [];
    const effects: Effect[] = [];
    const connectedAt = record.connection?.connectedAt ?? now;
    record.connected = false;
    delete record.connection;
    record.lastPacketId = this.#flow.lastPacketId ?? record.lastPacketId;
    this.#pendingAcks = [];
    this.#pendingSubscribes.clear();

    let willFired = false;
    if (record.will) {
      const delay = Math.min(record.will.properties?.willDelayInterval ?? 0, record.expiryInterval);
      if (delay === 0) {
        const will = this.access.will(record, now); // checked again: the rules may have changed
        effects.push(will);
        delete record.will;
        willFired = will.kind === "route";
      } else {
        record.willAt = now + delay * 1000; // [MQTT-3.1.3-9]
      }
    }
    const expires = record.expiryInterval !== 0 && record.expiryInterval !== NEVER;
    effects.push({
      kind: "presence",
      event: { clientId: record.clientId, online: false, at: now, connectedAt, ...disconnectCause(reason, ending), willFired,
        sessionExpiresAt: expires ? now + record.expiryInterval * 1000 : null },
    });
    if (record.expiryInterval === 0) {
      // Session Expiry 0 (or a 3.1.1 clean session) ends with the connection [MQTT-3.1.2-5].
      effects.push(...this.#end(now));
      return effects;
    }
    if (record.expiryInterval !== NEVER) record.expiresAt = now + record.expiryInterval * 1000;
    // Sent and not stored yet: kept for the next connection, which sends it again (4.4); and
    // the acknowledged entries of stored groups go, or the next connection gets them again.
    this.#outbound.persist();
    this.#outbound.compact();
    this.#save(record);
    return effects;
  }

  /** Timer: publish a delayed Will, end an expired session. */
  alarm(now: number): Effect[] {
    const record = this.record;
    if (!record) return [];
    const effects: Effect[] = [];
    if (!record.connected && record.expiresAt !== undefined && record.expiresAt <= now) {
      return this.#end(now); // publishes a pending Will too
    }
    if (record.willAt !== undefined && record.willAt <= now && record.will) {
      effects.push(this.access.will(record, now));
      delete record.will;
      delete record.willAt;
      this.#save(record);
    }
    return effects;
  }

  /** End the session: publish a pending Will, drop subscriptions and state. */
  #end(now: number): Effect[] {
    const record = this.record;
    if (!record) return [];
    const effects: Effect[] = [];
    if (record.will && !record.connected) {
      // The session ends before the Will Delay elapsed: the Will goes now (5.0 3.1.3.2.2).
      effects.push(this.access.will(record, now));
    }
    const filters = this.#store.subscriptions().map((s) => s.filter);
    if (filters.length) effects.push({ kind: "unsubscribe", clientId: record.clientId, filters });
    this.#store.clear();
    this.#outbound.reset();
    this.#qos2Count = undefined;
    this.#record = undefined;
    this.#flow.lastPacketId = undefined;
    effects.push({ kind: "ended" });
    return effects;
  }

  // ---------------------------------------------------------------- delivery (deliver.ts)

  /**
   * Messages routed to this session. QoS 1/2 ones are stored before this returns, which is
   * what lets the publisher's PUBACK mean "durably accepted"; with `defer`, QoS 1 ones sent
   * at once are stored later unless acknowledged first (OutboundFlow.deliver). Returns false
   * when there is no session any more, so the caller can forget the stale subscription.
   */
  deliver(deliveries: Delivery[], now: number, backlog = 0, defer = false): { effects: Effect[]; live: boolean } {
    return this.#flow.deliver(deliveries, now, backlog, defer);
  }

  // ---------------------------------------------------------------- inbound QoS 2

  /** Inbound QoS 2 identifiers awaiting PUBREL: counted once from the store, then kept in step. */
  #inboundQos2Count(): number {
    this.#qos2Count ??= this.#store.inboundQos2Count();
    return this.#qos2Count;
  }

  #forgetInboundQos2(packetId: number): boolean {
    const known = this.#store.deleteInboundQos2(packetId);
    if (known) this.#qos2Count = this.#inboundQos2Count() - 1;
    return known;
  }

  // ---------------------------------------------------------------- helpers

  #checkTopicName(topic: string): number | undefined {
    return validateTopicName(topic) ?? checkTopicNameLimits(topic, this.#topicLimits);
  }

  #checkTopicFilter(filter: string): number | undefined {
    return validateTopicFilter(filter) ?? checkTopicFilterLimits(filter, this.#topicLimits);
  }


  #ack(type: AckPacket["type"], packetId: number, reasonCode: number): Effect {
    return this.#send({
      type,
      packetId,
      ...(this.protocolVersion === 5 && reasonCode !== 0 && { reasonCode }),
    });
  }

  #send(packet: Packet): Effect {
    return this.#sendAs(this.protocolVersion, packet);
  }

  #sendAs(v: ProtocolVersion, packet: Packet): Effect {
    return { kind: "send", packet, bytes: encodePacket(packet, v) };
  }

  #save(record: SessionRecord): void {
    this.#record = record;
    this.#loaded = true;
    this.#store.save(record);
  }
}

/** A random identifier from the platform: Node, workerd and browsers have `crypto.randomUUID` (core is built without their types). */
function randomMessageId(): string {
  return (globalThis as unknown as { crypto: { randomUUID(): string } }).crypto.randomUUID();
}
