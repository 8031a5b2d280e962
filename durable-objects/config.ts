import { defaultLimits, type BrokerLimits } from "../core/session/types";
import type { Env } from "../worker/env";

/** Broker limits from wrangler.toml [vars]; a missing or unparsable value keeps the default. */
export function limitsFromEnv(env: Env): BrokerLimits {
  const int = (name: keyof Env, fallback: number): number => {
    const n = Number.parseInt(String(env[name] ?? ""), 10);
    return Number.isFinite(n) && n >= 0 ? n : fallback;
  };
  return {
    receiveMaximum: Math.max(1, int("RECEIVE_MAXIMUM", defaultLimits.receiveMaximum)),
    maximumPacketSize: Math.max(128, int("MAX_PACKET_SIZE", defaultLimits.maximumPacketSize)),
    maxQueuedMessages: int("MAX_QUEUED_MESSAGES", defaultLimits.maxQueuedMessages),
    maxQueuedBytes: int("MAX_QUEUED_BYTES", defaultLimits.maxQueuedBytes),
    maxInflightMessages: Math.max(1, int("MAX_INFLIGHT_MESSAGES", defaultLimits.maxInflightMessages)),
    maxInflightBytes: int("MAX_INFLIGHT_BYTES", defaultLimits.maxInflightBytes),
    maxClientBacklogBytes: int("MAX_CLIENT_BACKLOG_BYTES", defaultLimits.maxClientBacklogBytes),
    publishRate: int("MAX_PUBLISH_RATE", defaultLimits.publishRate),
    publishBytesRate: int("MAX_PUBLISH_BYTES_RATE", defaultLimits.publishBytesRate),
    topicAliasMaximum: int("TOPIC_ALIAS_MAXIMUM", defaultLimits.topicAliasMaximum),
    maxKeepAlive: int("MAX_KEEPALIVE", defaultLimits.maxKeepAlive),
    maxSessionExpiry: int("MAX_SESSION_EXPIRY", defaultLimits.maxSessionExpiry),
    maxTopicLength: int("MAX_TOPIC_LENGTH", defaultLimits.maxTopicLength),
    maxTopicLevels: int("MAX_TOPIC_LEVELS", defaultLimits.maxTopicLevels),
    maxSubscriptionsPerClient: int("MAX_SUBSCRIPTIONS_PER_CLIENT", defaultLimits.maxSubscriptionsPerClient),
  };
}

export function shardCountFromEnv(env: Env): number {
  const n = Number.parseInt(env.SHARD_COUNT ?? "", 10);
  return Number.isFinite(n) && n >= 1 ? n : 8;
}

export function shardName(index: number): string {
  return `shard-${index}`;
}

/** The default of QOS1_STORE_DELAY_MS (docs/architecture.md, "Commits and rows"). */
export const DEFAULT_QOS1_STORE_DELAY_MS = 6;

/**
 * How long QoS 1 messages sent to a subscriber wait before being stored (SessionDO.deliver),
 * from `QOS1_STORE_DELAY_MS`; at most 1 s, since the publisher's PUBACK waits as long.
 */
export function qos1StoreDelayMsFromEnv(env: Pick<Env, "QOS1_STORE_DELAY_MS">): number {
  const ms = Number.parseFloat(env.QOS1_STORE_DELAY_MS ?? "");
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, 1000) : DEFAULT_QOS1_STORE_DELAY_MS;
}

/** The default of PACKETS_PER_MESSAGE_BYTES (docs/architecture.md, "Packets per WebSocket message"). */
export const DEFAULT_PACKETS_PER_MESSAGE_BYTES = 8_192;

/**
 * How many bytes of MQTT packets the broker puts in one WebSocket message to a client, from
 * `PACKETS_PER_MESSAGE_BYTES`: packets sent together (a batch of deliveries, a PUBACK with the
 * messages that follow it) share a message up to this size; a larger packet goes alone. 0: one
 * packet per message, for a client that wrongly expects packets aligned on messages.
 */
export function packetsPerMessageBytesFromEnv(env: Pick<Env, "PACKETS_PER_MESSAGE_BYTES">): number {
  return numberVar(env, "PACKETS_PER_MESSAGE_BYTES", DEFAULT_PACKETS_PER_MESSAGE_BYTES);
}

/** How long a new connection may take to send CONNECT unless `CONNECT_TIMEOUT` says otherwise. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * The CONNECT timeout in ms, from `CONNECT_TIMEOUT` (seconds) in wrangler.toml [vars]: how long
 * a new connection may take to send CONNECT, counted from the upgrade (5.0 3.1.4: the server
 * closes a connection that does not send it within a reasonable time). A missing, unparsable
 * or non-positive value keeps the default, 10 s.
 */
export function connectTimeoutMsFromEnv(env: Pick<Env, "CONNECT_TIMEOUT">): number {
  const seconds = Number.parseFloat(env.CONNECT_TIMEOUT ?? "");
  return Number.isFinite(seconds) && seconds > 0 ? Math.round(seconds * 1000) : DEFAULT_CONNECT_TIMEOUT_MS;
}

/**
 * Bytes of messages one call between objects carries at most: an RPC's arguments and result
 * are limited to 32 MiB, and a call this size is still quick to serialise.
 */
export const RPC_CALL_BYTES = 8 * 1024 * 1024;

/**
 * A non-negative number from wrangler.toml [vars] (vars arrive as strings); a missing or
 * unparsable value keeps `fallback`. For the settings of presence, $SYS, retained and HTTP.
 */
export function numberVar<K extends keyof Env>(env: Pick<Env, K>, name: K, fallback: number): number {
  const n = Number.parseFloat(String(env[name] ?? ""));
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}
