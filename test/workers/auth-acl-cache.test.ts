/**
 * The per-isolate ACL cache (worker/security/acl-cache.ts) over D1's `acl_rules`: a snapshot
 * fresh for ACL_CACHE_SECONDS, one query shared by concurrent loads, a stale snapshot answering
 * while it is refreshed in the background, invalidate() for the isolate that changed a rule,
 * and nothing allowed before the first load.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Principal } from "../../core/policy/types";
import { createDb, schema } from "../../db";
import { AclCache, aclCache } from "../../worker/security/acl-cache";

let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;

afterEach(() => vi.restoreAllMocks());

async function addRule(rule: { username?: string | null; topic: string; action: "publish" | "subscribe" | "all"; allow: boolean }): Promise<void> {
  await createDb(env.DB)
    .insert(schema.aclRules)
    .values({ username: rule.username ?? null, clientId: null, topic: rule.topic, action: rule.action, allow: rule.allow, createdAt: Date.now() });
}

describe("ACL cache", () => {
  it("before the first load allows nothing; after it, the rules decide", async () => {
    const user = unique("u");
    const me: Principal = { clientId: unique("c"), username: user, method: "password" };
    await addRule({ username: user, topic: `${user}/#`, action: "all", allow: true });
    const cache = new AclCache({ ...env, ALLOW_ANONYMOUS: "false" });
    expect(cache.ready).toBe(false);
    expect(cache.current().authorizePublish(me, `${user}/a`)).toBe(false); // and a load started
    await cache.load();
    expect(cache.ready).toBe(true);
    expect(cache.current().authorizePublish(me, `${user}/a`)).toBe(true);
    expect(cache.current().authorizePublish(me, "elsewhere")).toBe(false); // ALLOW_ANONYMOUS off: default deny
  });

  it("the default follows ALLOW_ANONYMOUS; a deny rule closes a topic even then", async () => {
    const topic = unique("closed");
    await addRule({ topic: `${topic}/#`, action: "publish", allow: false });
    const cache = new AclCache({ ...env, ALLOW_ANONYMOUS: "true" });
    const policy = await cache.load();
    const anonymous: Principal = { clientId: unique("c"), method: "anonymous" };
    expect(policy.authorizePublish(anonymous, "open/topic")).toBe(true);
    expect(policy.authorizePublish(anonymous, `${topic}/x`)).toBe(false);
    expect(policy.authorizeSubscribe(anonymous, `${topic}/x`)).toBe(true); // publish rule only
  });

  it("concurrent loads share one query; a fresh snapshot is not read again", async () => {
    const cache = new AclCache({ ...env, ACL_CACHE_SECONDS: "10" });
    const prepare = vi.spyOn(env.DB, "prepare");
    const policies = await Promise.all([cache.load(), cache.load(), cache.load()]);
    expect(new Set(policies).size).toBe(1);
    await cache.load();
    cache.current();
    expect(prepare).toHaveBeenCalledTimes(1);
  });

  it("a stale snapshot answers at once and is refreshed in the background; a change is seen after it", async () => {
    const user = unique("u");
    const me: Principal = { clientId: unique("c"), username: user, method: "password" };
    const cache = new AclCache({ ...env, ALLOW_ANONYMOUS: "true", ACL_CACHE_SECONDS: "10" });
    const t0 = Date.now();
    await cache.load(t0);
    expect(cache.current(t0).authorizePublish(me, `${user}/x`)).toBe(true);
    await addRule({ username: user, topic: `${user}/#`, action: "publish", allow: false });
    // Within ACL_CACHE_SECONDS: the old snapshot.
    expect(cache.current(t0 + 5_000).authorizePublish(me, `${user}/x`)).toBe(true);
    // Past it: still answered from the old snapshot, while a refresh runs.
    const prepare = vi.spyOn(env.DB, "prepare");
    expect(cache.current(t0 + 11_000).authorizePublish(me, `${user}/x`)).toBe(true);
    expect(cache.current(t0 + 11_000).authorizePublish(me, `${user}/x`)).toBe(true); // one refresh, not two
    await vi.waitFor(() => expect(cache.current(t0 + 11_000).authorizePublish(me, `${user}/x`)).toBe(false));
    expect(prepare).toHaveBeenCalledTimes(1);
  });

  it("invalidate(): the next load reads the rules again, even while an older query is under way", async () => {
    const user = unique("u");
    const me: Principal = { clientId: unique("c"), username: user, method: "password" };
    const cache = new AclCache({ ...env, ALLOW_ANONYMOUS: "true" });
    await cache.load();
    const before = cache.load(Date.now() + 60_000); // a refresh under way...
    await addRule({ username: user, topic: "#", action: "all", allow: false });
    cache.invalidate(); // ...overtaken by the change
    await before;
    const after = await cache.load();
    expect(after.authorizeSubscribe(me, "any/thing")).toBe(false);
    expect(cache.current().authorizeRead(me, "any/thing")).toBe(false);
  });

  it("aclCache(env) is one cache per isolate (for the same settings)", () => {
    expect(aclCache(env)).toBe(aclCache(env));
    expect(aclCache({ ...env, ALLOW_ANONYMOUS: "false" })).not.toBe(aclCache({ ...env, ALLOW_ANONYMOUS: "true" }));
  });
});
