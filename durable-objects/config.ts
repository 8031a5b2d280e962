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
