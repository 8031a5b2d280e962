/**
 * D1 schema: global, queryable, low-rate data (device registry and presence,
 * credentials, ACL rules, API keys). Hot per-message state stays in Durable
 * Object SQLite. SQL lives in migrations/ (`npm run db:generate`).
 * Timestamps are Unix epoch milliseconds.
 */
import { sql } from "drizzle-orm";
import { check, index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Device registry and presence, one row per client identifier ever seen. */
export const devices = sqliteTable(
  "devices",
  {
    clientId: text("client_id").primaryKey(),
    username: text("username"),
    /** 3 = MQTT 3.1, 4 = MQTT 3.1.1, 5 = MQTT 5.0. */
    protocolVersion: integer("protocol_version").notNull(),
    online: integer("online", { mode: "boolean" }).notNull().default(false),
    connectedAt: integer("connected_at"),
    disconnectedAt: integer("disconnected_at"),
    lastSeenAt: integer("last_seen_at"),
    /** MQTT 5 reason code name or a broker reason ("keepalive-timeout", "taken-over", ...). */
    disconnectReason: text("disconnect_reason"),
    willFired: integer("will_fired", { mode: "boolean" }).notNull().default(false),
    remoteAddress: text("remote_address"),
    /** Null: the session ends with the connection (or never expires when `online`). */
    sessionExpiresAt: integer("session_expires_at"),
    /** How the device last reached the broker: "mqtt" (a connection) or "http" (ingest items naming it). */
    transport: text("transport", { enum: ["mqtt", "http"] }).notNull().default("mqtt"),
    /**
     * While `online`, the device counts as online only until this time (epoch ms): the holder of
     * its connection renews it; a reader treats an expired lease as offline ("lease-expired").
     */
    leaseExpiresAt: integer("lease_expires_at"),
    /** MQTT reason code of the last disconnect, when it had one (e.g. 0x81 for a protocol error). */
    disconnectCode: integer("disconnect_code"),
    /** Connections (MQTT) or reporting periods (HTTP) since the device was first seen. */
    connectionCount: integer("connection_count").notNull().default(0),
    /** Set by DELETE /api/v1/devices/<id>; a device that connects again is registered anew. */
    decommissionedAt: integer("decommissioned_at"),
  },
  (t) => [
    index("devices_online_idx").on(t.online),
    index("devices_username_idx").on(t.username),
    index("devices_last_seen_idx").on(t.lastSeenAt),
    index("devices_lease_idx").on(t.online, t.leaseExpiresAt),
  ],
);

/** MQTT CONNECT credentials: salted, slow hashes only. */
export const credentials = sqliteTable("credentials", {
  username: text("username").primaryKey(),
  salt: text("salt").notNull(),
  hash: text("hash").notNull(),
  /** e.g. "pbkdf2-sha256:600000". */
  algorithm: text("algorithm").notNull(),
  createdAt: integer("created_at").notNull(),
  /** May subscribe to and read `$SYS/...` (whatever the ACL rules say). */
  admin: integer("admin", { mode: "boolean" }).notNull().default(false),
});

export const aclActions = ["publish", "subscribe", "all"] as const;
export type AclAction = (typeof aclActions)[number];

/**
 * ACL rules (Mosquitto-like; semantics in core/policy/acl.ts and docs/security.md). A rule
 * applies to a principal when its `username` is null or equal to the principal's user name and
 * its `client_id` is null or equal to the client identifier (exact, no pattern). Among the
 * applicable rules whose topic matches, any deny wins over any allow: there is no priority.
 * `topic` is a topic filter in which `%c` / `%u` stand for the client identifier / user name.
 */
export const aclRules = sqliteTable(
  "acl_rules",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    username: text("username"),
    clientId: text("client_id"),
    topic: text("topic").notNull(),
    action: text("action", { enum: aclActions }).notNull(),
    allow: integer("allow", { mode: "boolean" }).notNull(),
    /** Null for a rule written before this column existed (migration 0002). */
    createdAt: integer("created_at"),
  },
  (t) => [
    check("acl_rules_action_check", sql`${t.action} in ('publish', 'subscribe', 'all')`),
    index("acl_rules_username_idx").on(t.username),
    index("acl_rules_client_id_idx").on(t.clientId),
  ],
);

/** HTTP API keys: only a hash of the key is stored. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    hash: text("hash").notNull(),
    /** JSON array of topic filters the key may publish to. */
    scopes: text("scopes").notNull().default('["#"]'),
    /** A key issued to one device: revoked when that device is decommissioned. */
    deviceId: text("device_id"),
    createdAt: integer("created_at").notNull(),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [index("api_keys_hash_idx").on(t.hash)],
);

export type Device = typeof devices.$inferSelect;
export type NewDevice = typeof devices.$inferInsert;
export type Credential = typeof credentials.$inferSelect;
export type AclRule = typeof aclRules.$inferSelect;
export type ApiKey = typeof apiKeys.$inferSelect;
