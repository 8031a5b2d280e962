import type { ConnectionDO } from "../durable-objects/connection";
import type { SessionDO } from "../durable-objects/session";
import type { MetricsDO } from "../durable-objects/metrics";
import type { TopicShardDO } from "../durable-objects/topic-shard";
import type { PresenceDO } from "../durable-objects/presence";
import type { IdempotencyDO } from "../durable-objects/idempotency";
import type { AdmissionDO } from "../durable-objects/admission";

/** Bindings declared in wrangler.toml. Vars arrive as strings. */
export interface Env {
  SESSIONS: DurableObjectNamespace<SessionDO>;
  CONNECTIONS: DurableObjectNamespace<ConnectionDO>;
  SHARDS: DurableObjectNamespace<TopicShardDO>;
  METRICS: DurableObjectNamespace<MetricsDO>;
  PRESENCE: DurableObjectNamespace<PresenceDO>;
  IDEMPOTENCY: DurableObjectNamespace<IdempotencyDO>;
  /** Pending (not yet authenticated) connections and failure penalties, per shard of client addresses. */
  ADMISSION: DurableObjectNamespace<AdmissionDO>;
  /** MQTT upgrades per client address (wrangler.toml [[ratelimits]]); absent: not limited. */
  CONNECT_RATE_LIMITER?: RateLimit;
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
  QOS1_STORE_DELAY_MS?: string;
  PACKETS_PER_MESSAGE_BYTES?: string;
  MAX_CLIENT_BACKLOG_BYTES?: string;
  MAX_PUBLISH_RATE?: string;
  MAX_PUBLISH_BYTES_RATE?: string;
  /**
   * Who holds the socket of a plain `/mqtt` connection: "worker" (default) relays it from the
   * Worker to the session object (worker/relay.ts); "object" keeps the ConnectionDO.
   */
  MQTT_RELAY?: string;
  /**
   * Links between objects (durable-objects/link.ts): calls per second to one object from which
   * they go over a WebSocket instead of one RPC each ("off": never, "0": always).
   */
  LINK_MIN_RATE?: string;
  /** Milliseconds without a call after which a link is closed. */
  LINK_IDLE_MS?: string;
  /** Links one object holds open at most. */
  LINK_MAX_OPEN?: string;
  /** Seconds a new connection may take to send CONNECT (default 10). */
  CONNECT_TIMEOUT?: string;
  PRESENCE_SHARDS?: string;
  /** Seconds a device stays online without its lease being renewed. */
  PRESENCE_LEASE?: string;
  PRESENCE_FLUSH_MS?: string;
  HTTP_PRESENCE_WINDOW?: string;
  SYS_INTERVAL?: string;
  RETAINED_MAX_AGE?: string;
  RETAINED_SWEEP_INTERVAL?: string;
  RETAINED_ALERT_THRESHOLD?: string;
  DECOMMISSION_RETAINED?: string;
  MAX_HTTP_BODY_BYTES?: string;
  MAX_BULK_ITEMS?: string;
  HTTP_PUBLISH_RATE?: string;
  IDEMPOTENCY_TTL?: string;
  API_KEY_CACHE_SECONDS?: string;
  /** Secret: the bearer token of the admin API. Unset: admin endpoints answer 503. */
  ADMIN_TOKEN?: string;
  /** "true": clients without a user name may connect (docs/security.md). */
  ALLOW_ANONYMOUS?: string;
  PBKDF2_ITERATIONS?: string;
  AUTH_CACHE_SECONDS?: string;
  ACL_CACHE_SECONDS?: string;
  /** Secret: HS256 key for JSON Web Tokens given as the MQTT password. */
  JWT_SECRET?: string;
  /** A JSON Web Key Set (JSON text) for RS256/ES256 tokens. */
  JWT_JWKS?: string;
  JWT_AUDIENCE?: string;
  JWT_ISSUER?: string;
  JWT_USERNAME_CLAIM?: string;
  JWT_CLIENTID_CLAIM?: string;
  /** JSON: client certificate SHA-256 fingerprint (hex) or subject DN -> user name. */
  CLIENT_CERT_USERS?: string;
  MAX_PENDING_CONNECTIONS?: string;
  /** Comma-separated client addresses no per-address limit applies to (default: loopback). */
  LIMITS_EXEMPT_ADDRESSES?: string;
  ADMISSION_SHARDS?: string;
  AUTH_FAIL_DELAY?: string;
  AUTH_FAIL_DELAY_MAX?: string;
  /**
   * Secret: shared with TCP bridges (bridge/, docs/tcp-bridge.md). An upgrade that presents it
   * may name the TCP client's address, used instead of CF-Connecting-IP. Unset: never trusted.
   */
  BRIDGE_SECRET?: string;
}

/** Hono environment shared by every router of the Worker. */
export interface AppEnv {
  Bindings: Env;
}
