/**
 * Who a connection (or an HTTP API key) acts as, and the narrow hooks that decide what it may
 * do, in the manner of Aedes' `authenticate`, `authorizePublish` and `authorizeSubscribe`.
 * Pure: the objects load the data these decisions need (credentials, ACL rules) from D1 and
 * cache it; the decisions themselves are here, tested in Node.
 */

/** What an ACL rule governs: `subscribe` also governs which messages are delivered (read). */
export type AclAction = "publish" | "subscribe" | "all";

/** One ACL rule, as stored in D1 (`acl_rules`) and served by `/api/v1/acl`. */
export interface AclRule {
  id: number;
  /** Applies only to this user name; null: to every user name, anonymous clients included. */
  username: string | null;
  /** Applies only to this client identifier; null: to every client identifier. */
  clientId: string | null;
  /** A topic filter; `%c` stands for the client identifier, `%u` for the user name (Mosquitto's `pattern`). */
  topic: string;
  action: AclAction;
  allow: boolean;
}

/** How a principal proved who it is. */
export type AuthMethod = "anonymous" | "password" | "jwt" | "certificate" | "api-key";

/** Who a connection acts as, fixed when its CONNECT is accepted (kept with the session). */
export interface Principal {
  clientId: string;
  /** The authenticated user name; absent for an anonymous client. */
  username?: string;
  method: AuthMethod;
  /** May read `$SYS/...` (a credential marked admin, or a token's `admin: true` claim). */
  admin?: boolean;
  /**
   * Topic filters a token allows, from its `acl` claim in EMQX's shape (`pub`, `sub`, `all`):
   * when present for an action, topics outside them are denied for that action.
   */
  claims?: { publish?: string[]; subscribe?: string[] };
}

/**
 * The decisions the session asks for. Synchronous: the object keeps a snapshot of the rules
 * in memory and refreshes it in the background (the staleness bound is ACL_CACHE_SECONDS).
 */
export interface Authorizer {
  /** A PUBLISH (or a Will, or an HTTP ingest item) from `principal` to `topic`. */
  authorizePublish(principal: Principal, topic: string): boolean;
  /** A SUBSCRIBE of `principal` to `filter` (a `$share/<group>/` prefix already removed). */
  authorizeSubscribe(principal: Principal, filter: string): boolean;
  /** A message on `topic` may be delivered to `principal` (live and retained messages alike). */
  authorizeRead(principal: Principal, topic: string): boolean;
}
