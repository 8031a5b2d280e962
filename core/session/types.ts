import type { Packet, Properties, QoS, UserProperty, Will } from "../mqtt/packets";
import type { DisconnectReason } from "../presence/reasons";

/** Limits and features the broker offers; every one is configurable (wrangler.toml [vars]). */
export interface BrokerLimits {
  /** Server Receive Maximum: QoS 1/2 publishes a client may have unacknowledged at once. */
  receiveMaximum: number;
  /** Largest packet the server accepts, in bytes (CONNACK Maximum Packet Size). */
  maximumPacketSize: number;
  /**
   * QoS 1/2 messages queued for one session behind its in-flight window, connected or not;
   * when full, the oldest queued message is dropped to make room.
   */
  maxQueuedMessages: number;
  /** The same queue's bound in bytes (payload and topic of each message). */
  maxQueuedBytes: number;
  /** QoS 1/2 messages sent to a client and not yet acknowledged: at most this, and at most the client's Receive Maximum. */
  maxInflightMessages: number;
  /** The same window in bytes: a message that would pass it waits in the queue (one is always allowed). */
  maxInflightBytes: number;
  /**
   * Bytes that may wait on the way to a client that does not keep up (its socket's send
   * buffer, and what is on its way to the object holding the socket): past it, QoS 0
   * messages to that client are dropped. QoS 1/2 ones are bounded by the window and the queue.
   */
  maxClientBacklogBytes: number;
  /** PUBLISH packets per second one client may send (0: no limit); past it, 0x96 (5.0) or a close (3.1.1). */
  publishRate: number;
  /** PUBLISH bytes per second one client may send (0: no limit); past it, 0x97 (5.0) or a close (3.1.1). */
  publishBytesRate: number;
  /** Topic aliases a client may use towards the server (CONNACK Topic Alias Maximum). */
  topicAliasMaximum: number;
  /** Longest keep alive accepted; a longer or zero request is answered with Server Keep Alive (5.0). */
  maxKeepAlive: number;
  /** Longest session expiry granted, in seconds. */
  maxSessionExpiry: number;
  /** Longest topic name or filter in UTF-8 bytes, and most levels. */
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Subscriptions one session may hold. */
  maxSubscriptionsPerClient: number;
}

export const defaultLimits: BrokerLimits = {
  receiveMaximum: 64,
  maximumPacketSize: 1024 * 1024,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxInflightMessages: 1000,
  maxInflightBytes: 4 * 1024 * 1024,
  maxClientBacklogBytes: 1024 * 1024,
  publishRate: 100,
  publishBytesRate: 1024 * 1024,
  topicAliasMaximum: 32,
  maxKeepAlive: 1200,
  maxSessionExpiry: 7 * 24 * 3600,
  maxTopicLength: 1024,
  maxTopicLevels: 32,
  maxSubscriptionsPerClient: 200,
};

/** The MQTT 5 properties that travel with an application message from publisher to subscriber. */
export interface MessageProperties {
  payloadFormatIndicator?: 0 | 1;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  userProperties?: UserProperty[];
}

/** An application message on its way through the topic space. */
export interface Message {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  /** Absolute expiry in epoch milliseconds, from Message Expiry Interval. */
  expiresAt?: number;
  /** Client identifier of the publisher, for No Local; absent for HTTP ingest and Wills of ended sessions. */
  origin?: string;
  /**
   * Broker-wide identifier of a QoS 2 publish, the same when the publisher's session routes it
   * again after a crash: a subscriber's session that already took it in drops the copy, so the
   * message still arrives once [MQTT-4.3.3]. Absent for QoS 0/1 and retained replays.
   */
  messageId?: string;
}

/** A message routed to one session, after matching: QoS already reduced to the granted QoS. */
export interface Delivery {
  message: Message;
  /** QoS to deliver with: min(message QoS, granted QoS) [MQTT-3.8.4-8]. */
  qos: QoS;
  /** RETAIN flag as sent to this subscriber (Retain As Published, or a retained replay). */
  retain: boolean;
  /** Identifiers of every matching subscription that has one (5.0). */
  subscriptionIds?: number[];
}

/** Options of one subscription as kept by the session and the shards. */
export interface Subscription {
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

/** What the session asks its host (the Durable Object) to do, in order. */
export type Effect =
  /** Write one encoded packet to the client (the packet is kept for tests and logs). */
  | { kind: "send"; packet: Packet; bytes: Uint8Array }
  /** Close the network connection after the sends before it. */
  | { kind: "close"; reason: number }
  /**
   * Route a message into the topic space; when `ticket` is set, report back with `routed(ticket, matched)`.
   * `receivedAt`: when this session received the PUBLISH (epoch ms; absent for a Will), which
   * the shard keeps with the message for a SUBSCRIBE still on its way (core/session/recent.ts).
   */
  | { kind: "route"; message: Message; ticket?: number; receivedAt?: number }
  /**
   * Register subscriptions on the shards, then report back with `subscribed(ticket, retained)`.
   * `receivedAt`: when this session received the SUBSCRIBE (epoch ms): the shards replay what
   * they routed from then on and the session did not get. `connectedAt`: when its connection
   * began, before which nothing is replayed.
   */
  | { kind: "subscribe"; ticket: number; clientId: string; subscriptions: SubscribeRequest[]; receivedAt: number; connectedAt?: number }
  /** Remove the session's subscriptions from the shards (also after the session itself is gone). */
  | { kind: "unsubscribe"; clientId: string; filters: string[] }
  /** Tell the device registry about presence changes (batched by the host). */
  | { kind: "presence"; event: PresenceEvent }
  /** Messages for this client were dropped by a bound (see DropKind); the host counts and logs them. */
  | { kind: "dropped"; clientId: string; drop: DropKind; count: number }
  /**
   * Access control refused something (core/session/authorize.ts): a PUBLISH or a Will
   * (`publish`), a SUBSCRIBE filter (`subscribe`), or `count` messages not delivered (`read`,
   * one effect per input, `topic` the first one's). The host counts them (aclDenied*).
   */
  | { kind: "denied"; action: "publish" | "subscribe" | "read"; topic: string; count: number }
  /** The session ended: the host may drop everything it keeps for it. */
  | { kind: "ended" };

/**
 * Why messages for a client were dropped: `qos0` a QoS 0 message while the client's backlog
 * was over its bound; `queue` the oldest queued QoS 1/2 message, to make room in a full queue.
 */
export type DropKind = "qos0" | "queue";

export interface SubscribeRequest {
  subscription: Subscription;
  /** Retained messages to send back: Retain Handling 0, or 1 when the subscription is new. */
  wantRetained: boolean;
}

/**
 * A device's presence changed (core/presence, docs/presence.md): a connection began
 * (`online`), ended (`online: false`, with why), or, with `renewal`, its holder renewed the
 * lease of a live connection (nothing else changed). `connectedAt` identifies the connection,
 * so a late event of an older connection never overrides a newer one.
 */
export interface PresenceEvent {
  clientId: string;
  online: boolean;
  /** Epoch ms of the change (of the renewal). */
  at: number;
  /** Epoch ms the connection was accepted (equal to `at` for the connect itself). */
  connectedAt: number;
  /** A lease renewal of the live connection `connectedAt`. */
  renewal?: true;
  protocolVersion?: number;
  username?: string;
  /** The client's IP address (CF-Connecting-IP), added by the object holding the socket. */
  remoteAddress?: string;
  /** Offline: why, by name, and the MQTT reason code when there was one. */
  reason?: DisconnectReason;
  code?: number;
  willFired?: boolean;
  /** Offline: when the session will expire (epoch ms); null when it ended with the connection (or never expires). */
  sessionExpiresAt?: number | null;
}

export type { Will, Properties };
