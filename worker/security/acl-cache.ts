/**
 * The ACL rules of D1 (`acl_rules`) as an AclPolicy, per isolate, shared by every object and
 * request of the isolate. The session's checks are synchronous (`current()`, on every PUBLISH
 * and every delivery), so they read a snapshot; a snapshot older than ACL_CACHE_SECONDS
 * (default 10) is refreshed in the background while the old one keeps answering. A rule
 * changed through the admin API therefore reaches live sessions on other isolates within
 * ACL_CACHE_SECONDS plus one D1 read, at once on the isolate that changed it (`invalidate()`).
 *
 * Before the first snapshot of an isolate exists, `current()` answers with a policy that allows
 * nothing: callers that must not deny wrongly await `load()` first (the SessionDO does, while
 * authenticating a CONNECT and on waking up with a connected session).
 */
import { AclPolicy } from "../../core/policy/acl";
import type { AclRule, Authorizer } from "../../core/policy/types";
import { createDb, schema } from "../../db";
import { numberVar } from "../../durable-objects/config";
import type { Env } from "../env";

const DEFAULT_ACL_CACHE_SECONDS = 10;
/** After a failed background refresh, the next attempt waits this long (D1 unavailable: not once per check). */
const REFRESH_RETRY_MS = 1_000;

export class AclCache {
  readonly #env: Env;
  readonly #ttlMs: number;
  readonly #allowAnonymous: boolean;
  #policy: AclPolicy | undefined;
  /** When the snapshot's query started; -Infinity once invalidated. */
  #loadedAt = Number.NEGATIVE_INFINITY;
  #loading: Promise<AclPolicy> | undefined;
  /** Bumped by invalidate(): a query that started before it does not count as fresh. */
  #generation = 0;
  #retryAt = 0;
  #denyAll: AclPolicy | undefined;
  /** The settings it was built from (aclCache() builds a new one when they differ). */
  readonly settings: string;

  static settingsOf(env: Env): string {
    return `${env.ALLOW_ANONYMOUS === "true"}|${env.ACL_CACHE_SECONDS ?? ""}`;
  }

  constructor(env: Env) {
    this.#env = env;
    this.settings = AclCache.settingsOf(env);
    this.#ttlMs = numberVar(env, "ACL_CACHE_SECONDS", DEFAULT_ACL_CACHE_SECONDS) * 1000;
    this.#allowAnonymous = env.ALLOW_ANONYMOUS === "true";
  }

  /** Whether a snapshot exists (fresh or not): `current()` then answers from the rules. */
  get ready(): boolean {
    return this.#policy !== undefined;
  }

  /** A snapshot no older than ACL_CACHE_SECONDS; concurrent calls share one D1 query. */
  load(now = Date.now()): Promise<AclPolicy> {
    if (this.#policy && now - this.#loadedAt < this.#ttlMs) return Promise.resolve(this.#policy);
    return this.#refresh(now);
  }

  /**
   * The snapshot, at once. A stale one starts a refresh in the background and still answers;
   * before the first load, a policy that denies everything (and a load is started).
   */
  current(now = Date.now()): AclPolicy {
    if ((!this.#policy || now - this.#loadedAt >= this.#ttlMs) && !this.#loading && now >= this.#retryAt) {
      this.#refresh(now).catch((e: unknown) => {
        this.#retryAt = Date.now() + REFRESH_RETRY_MS;
        console.error("ACL rules could not be refreshed; the previous snapshot still answers", e);
      });
    }
    return this.#policy ?? (this.#denyAll ??= new AclPolicy([], { allowAnonymous: false }));
  }

  /** The rules changed (through the API, in this isolate): the next check reads them again. */
  invalidate(): void {
    this.#generation++;
    this.#loadedAt = Number.NEGATIVE_INFINITY;
    this.#loading = undefined;
    this.#retryAt = 0;
  }

  /** Synchronous decisions over the snapshot, for a Session (core/session). */
  authorizer(): Authorizer {
    return {
      authorizePublish: (principal, topic) => this.current().authorizePublish(principal, topic),
      authorizeSubscribe: (principal, filter) => this.current().authorizeSubscribe(principal, filter),
      authorizeRead: (principal, topic) => this.current().authorizeRead(principal, topic),
    };
  }

  #refresh(now: number): Promise<AclPolicy> {
    if (this.#loading) return this.#loading;
    const generation = this.#generation;
    const loading = this.#query().then(
      (rules) => {
        if (this.#loading === loading) this.#loading = undefined;
        const policy = new AclPolicy(rules, { allowAnonymous: this.#allowAnonymous });
        // A query overtaken by invalidate() may predate the change: used, but not fresh.
        if (generation === this.#generation) {
          this.#policy = policy;
          this.#loadedAt = now;
        } else {
          this.#policy ??= policy;
        }
        return policy;
      },
      (e: unknown) => {
        if (this.#loading === loading) this.#loading = undefined;
        throw e;
      },
    );
    this.#loading = loading;
    return loading;
  }

  async #query(): Promise<AclRule[]> {
    const t = schema.aclRules;
    const rows = await createDb(this.#env.DB)
      .select({ id: t.id, username: t.username, clientId: t.clientId, topic: t.topic, action: t.action, allow: t.allow })
      .from(t)
      .orderBy(t.id);
    return rows;
  }
}

let shared: AclCache | undefined;

/** The isolate's cache (a new one if the settings it was built from changed, as between tests). */
export function aclCache(env: Env): AclCache {
  if (!shared || shared.settings !== AclCache.settingsOf(env)) shared = new AclCache(env);
  return shared;
}
