import type { ConnectionDO } from "../durable-objects/connection";
import type { SessionDO } from "../durable-objects/session";
import type { MetricsDO } from "../durable-objects/metrics";
import type { TopicShardDO } from "../durable-objects/topic-shard";

/** Bindings declared in wrangler.toml. Vars arrive as strings. */
export interface Env {
  SESSIONS: DurableObjectNamespace<SessionDO>;
  CONNECTIONS: DurableObjectNamespace<ConnectionDO>;
  SHARDS: DurableObjectNamespace<TopicShardDO>;
  METRICS: DurableObjectNamespace<MetricsDO>;
  DB: D1Database;
  SHARD_COUNT: string;
  MAX_PACKET_SIZE: string;
  MAX_QUEUED_MESSAGES: string;
  RECEIVE_MAXIMUM: string;
  MAX_KEEPALIVE: string;
  TOPIC_ALIAS_MAXIMUM?: string;
  MAX_SESSION_EXPIRY?: string;
  MAX_TOPIC_LENGTH?: string;
  MAX_TOPIC_LEVELS?: string;
  MAX_SUBSCRIPTIONS_PER_CLIENT?: string;
  MAX_QUEUED_BYTES?: string;
  MAX_INFLIGHT_MESSAGES?: string;
  MAX_INFLIGHT_BYTES?: string;
  MAX_CLIENT_BACKLOG_BYTES?: string;
  MAX_PUBLISH_RATE?: string;
  MAX_PUBLISH_BYTES_RATE?: string;
  /** Seconds a new connection may take to send CONNECT (default 10). */
  CONNECT_TIMEOUT?: string;
}

/** Hono environment shared by every router of the Worker. */
export interface AppEnv {
  Bindings: Env;
}
