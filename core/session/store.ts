import type { ProtocolVersion, Will } from "../mqtt/packets";
import type { Principal } from "../policy/types";
import type { Delivery, Subscription } from "./types";

/** What survives between connections of one session (and every hibernation). */
export interface SessionRecord {
  clientId: string;
  protocolVersion: ProtocolVersion;
  /** Session Expiry Interval in seconds; 0xFFFFFFFF never expires. */
  expiryInterval: number;
  /** Whether a network connection is attached. */
  connected: boolean;
  /** The Will of the current (or last) connection, until it is published or discarded. */
  will?: Will;
  /** When a pending Will is due (epoch ms), after an ungraceful disconnect with Will Delay. */
  willAt?: number;
  /** When the session ends (epoch ms) while disconnected. */
  expiresAt?: number;
  /** Last packet identifier used towards the client. */
  lastPacketId: number;
  /** Per-connection state that must survive hibernation. */
  connection?: ConnectionState;
  /**
   * Who the current (or last) connection acts as: deliveries to the session while it is
   * offline, and a Will that fires later, are checked against it. Absent in records written
   * before access control: then an anonymous principal with the connection's user name.
   */
  principal?: Principal;
}

export interface ConnectionState {
  keepAlive: number;
  /** The client's Receive Maximum: our QoS 1/2 sends in flight at once. */
  receiveMaximum: number;
  /** Largest packet the client accepts (5.0). */
  maximumPacketSize: number;
  /** Topic aliases the client accepts from us (5.0), and the ones assigned. */
  topicAliasMaximum: number;
  outboundAliases: Record<string, number>;
  /** Topic aliases the client set towards us. */
  inboundAliases: Record<number, string>;
  requestProblemInformation: boolean;
  /** This connection resumed an existing session (CONNACK Session Present 1). */
  resumed: boolean;
  username?: string;
  connectedAt: number;
}

/** States of an outbound QoS 1/2 message (MQTT 4.3). */
export type OutboundState = "queued" | "sent" | "released";

export interface OutboundEntry {
  seq: number;
  delivery: Delivery;
  packetId?: number;
  state: OutboundState;
  /** One of several QoS 1 messages stored together under one `seq` (`enqueueSentGroup`). */
  grouped?: boolean;
}

/** A QoS 1 message sent to the client, stored with others in one row. */
export interface SentEntry {
  delivery: Delivery;
  packetId: number;
}

/**
 * Durable state of one session. Synchronous on purpose: Durable Object SQLite is
 * synchronous, so a handler runs to completion without yielding mid-update. Every
 * implementation runs the shared contract suite in test/contracts/session-store.ts.
 */
export interface SessionStore {
  load(): SessionRecord | undefined;
  save(record: SessionRecord): void;
  /** Forget the session: record, subscriptions, queue and QoS 2 state. */
  clear(): void;

  subscriptions(): Subscription[];
  getSubscription(filter: string): Subscription | undefined;
  putSubscription(subscription: Subscription): void;
  deleteSubscription(filter: string): boolean;

  /** Append to the outbound queue; returns its sequence number, greater than every entry present. */
  enqueue(delivery: Delivery, state: OutboundState, packetId?: number): number;
  /**
   * Store QoS 1 messages already sent to the client (state `sent`) together, under one
   * sequence number: one row written for all of them, where `enqueue` writes one each.
   * Each is listed on its own by `inFlight` and the counts, with `grouped` set.
   */
  enqueueSentGroup(entries: SentEntry[]): number;
  /**
   * Keep only the entries of group `seq` whose packet identifiers are listed (the others were
   * acknowledged); deletes the group when none is left.
   */
  keepInGroup(seq: number, packetIds: number[]): void;
  /** Entries in sequence order (a group's in its own order), at most `limit`. */
  outbound(limit: number): OutboundEntry[];
  outboundCount(): number;
  /** Entries sent and not yet fully acknowledged (state `sent` or `released`). */
  inFlightCount(): number;
  /** Those entries, oldest first. */
  inFlight(): OutboundEntry[];
  /** The oldest `queued` entries, in sequence order, at most `limit`. */
  queued(limit: number): OutboundEntry[];
  outboundByPacketId(packetId: number): OutboundEntry | undefined;
  /** Change one ungrouped entry (a group's entries only ever leave it: `keepInGroup`). */
  updateOutbound(seq: number, state: OutboundState, packetId?: number): void;
  /** Delete an entry, or a whole group. */
  deleteOutbound(seq: number): void;
  /** Drop the oldest queued entry (not in flight); returns its `deliverySize`, if there was one. */
  dropOldestQueued(): { size: number } | undefined;
  /** The sum of `deliverySize` over the queued entries. */
  queuedBytes(): number;

  /**
   * Inbound QoS 2 messages received and not yet released by PUBREL [MQTT-4.3.3], by packet
   * identifier: the message's broker-wide identifier, and whether every subscriber's session
   * accepted it (only then is PUBREC sent).
   */
  inboundQos2(packetId: number): InboundQos2 | undefined;
  addInboundQos2(packetId: number, messageId: string): void;
  markInboundQos2Routed(packetId: number): void;
  deleteInboundQos2(packetId: number): boolean;
  inboundQos2Count(): number;

  /** Identifiers of QoS 2 messages this session accepted, to drop one routed again after a crash. */
  seenMessage(messageId: string): boolean;
  rememberMessage(messageId: string, at: number): void;
  /** Forget identifiers remembered before `at` (epoch ms). */
  forgetMessagesBefore(at: number): void;
}

export interface InboundQos2 {
  messageId: string;
  routed: boolean;
}
