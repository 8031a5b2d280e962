/**
 * /api/v1/acl: rules created, listed (filters, cursor), deleted; invalid rules refused; and
 * HTTP API keys held to the rules (user name `key:<key id>`), seen at once on this isolate.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { ADMIN, BASE, api, createKey, postJson, unique } from "./ingest-helpers";

interface RuleJson {
  id: number;
  username: string | null;
  clientid: string | null;
  topic: string;
  action: string;
  allow: boolean;
  created_at: string | null;
}

async function addRule(body: Record<string, unknown>): Promise<RuleJson> {
  const res = await postJson("/acl", ADMIN, body);
  if (res.status !== 201) throw new Error(`rule: ${res.status} ${await res.text()}`);
  return (await res.json()) as RuleJson;
}

async function listAll(query: string, limit = 2): Promise<RuleJson[]> {
  const out: RuleJson[] = [];
  let cursor: string | null = null;
  do {
    const res = await api(`/acl?limit=${limit}${query ? `&${query}` : ""}${cursor ? `&cursor=${cursor}` : ""}`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: RuleJson[]; next_cursor: string | null };
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

describe("POST /api/v1/acl", () => {
  it("creates a rule (201) with its id; an identical one answers 200 with the first", async () => {
    const username = unique("u");
    const rule = await addRule({ username, topic: "devices/%c/#", action: "all", allow: true });
    expect(rule).toEqual({ id: expect.any(Number), username, clientid: null, topic: "devices/%c/#", action: "all", allow: true, created_at: expect.stringMatching(/Z$/) });
    const again = await postJson("/acl", ADMIN, { username, topic: "devices/%c/#", action: "all", allow: true });
    expect(again.status).toBe(200);
    expect(((await again.json()) as RuleJson).id).toBe(rule.id);
    // Differing only in allow: another rule.
    expect((await postJson("/acl", ADMIN, { username, topic: "devices/%c/#", action: "all", allow: false })).status).toBe(201);
    // A rule for everyone (no username, no clientid; null accepted too), and its twin.
    const everyone = await addRule({ topic: `${username}/#`, action: "publish", allow: false });
    expect(everyone).toMatchObject({ username: null, clientid: null });
    const twin = await postJson("/acl", ADMIN, { username: null, clientid: null, topic: `${username}/#`, action: "publish", allow: false });
    expect(twin.status).toBe(200);
  });

  it("refuses invalid rules with 400 problem+json", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ topic: "a/#/b", action: "all", allow: true }, "invalid-acl-rule"],
      [{ topic: "a+", action: "all", allow: true }, "invalid-acl-rule"],
      [{ topic: "$share/g/a", action: "subscribe", allow: true }, "invalid-acl-rule"],
      [{ topic: "", action: "all", allow: true }, "invalid-request"],
      [{ topic: "a", action: "delete", allow: true }, "invalid-request"],
      [{ topic: "a", action: "all" }, "invalid-request"],
      [{ topic: "a", action: "all", allow: "yes" }, "invalid-request"],
      [{ topic: "a", action: "all", allow: true, username: "" }, "invalid-request"],
      [{ topic: "a", action: "all", allow: true, clientid: "" }, "invalid-request"],
      [{ topic: "a", action: "all", allow: true, username: "bell\u0007" }, "invalid-request"],
      [{ topic: "a", action: "all", allow: true, priority: 3 }, "invalid-request"],
    ];
    for (const [body, problem] of cases) {
      const res = await postJson("/acl", ADMIN, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get("Content-Type")).toBe("application/problem+json");
      expect(await res.json(), JSON.stringify(body)).toMatchObject({ type: `urn:edge-mqtt:problem:${problem}` });
    }
  });
});

describe("GET /api/v1/acl", () => {
  it("lists in id order, a page at a time, filtered by username or clientid", async () => {
    const username = unique("lister");
    const clientid = unique("client");
    const a = await addRule({ username, topic: "a", action: "publish", allow: true });
    const b = await addRule({ username, clientid, topic: "b", action: "subscribe", allow: false });
    const c = await addRule({ clientid, topic: "c", action: "all", allow: true });
    expect((await listAll(`username=${username}`)).map((r) => r.id)).toEqual([a.id, b.id]);
    expect((await listAll(`clientid=${clientid}`)).map((r) => r.id)).toEqual([b.id, c.id]);
    expect((await listAll(`username=${username}&clientid=${clientid}`)).map((r) => r.id)).toEqual([b.id]);
    const all = await listAll("", 1);
    expect(all.map((r) => r.id)).toEqual([...all.map((r) => r.id)].sort((x, y) => x - y));
    expect(all.map((r) => r.id)).toEqual(expect.arrayContaining([a.id, b.id, c.id]));
    expect((await api("/acl?cursor=abc", { headers: ADMIN })).status).toBe(400);
  });
});

describe("DELETE /api/v1/acl/<id>", () => {
  it("deletes (204), then 404; a non-number id is 400", async () => {
    const rule = await addRule({ topic: unique("t"), action: "all", allow: true });
    expect((await api(`/acl/${rule.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    const again = await api(`/acl/${rule.id}`, { method: "DELETE", headers: ADMIN });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ type: "urn:edge-mqtt:problem:acl-rule-not-found" });
    expect((await api("/acl/abc", { method: "DELETE", headers: ADMIN })).status).toBe(400);
  });

  it("401 without the admin token", async () => {
    expect((await api("/acl")).status).toBe(401);
    expect((await postJson("/acl", {}, { topic: "a", action: "all", allow: true })).status).toBe(401);
    expect((await api("/acl/1", { method: "DELETE" })).status).toBe(401);
  });
});

describe("API keys follow the ACL rules (user name key:<key id>)", () => {
  it("a deny rule for the key refuses its items (403 acl-denied), at once on this isolate; deleting it allows them again", async () => {
    const base = unique("keyacl");
    const { id, auth } = await createKey([`${base}/#`]);
    expect((await postJson("/publish", auth, { topic: `${base}/x`, payload: "1" })).status).toBe(202);
    const rule = await addRule({ username: `key:${id}`, topic: `${base}/x`, action: "publish", allow: false });
    const denied = await postJson("/publish", auth, { topic: `${base}/x`, payload: "1" });
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ type: "urn:edge-mqtt:problem:acl-denied" });
    // Another topic of its scopes still goes; a bulk with one denied item publishes none.
    expect((await postJson("/publish", auth, { topic: `${base}/y`, payload: "1" })).status).toBe(202);
    const bulk = await postJson("/publish/bulk", auth, [{ topic: `${base}/y`, payload: "1" }, { topic: `${base}/x`, payload: "2" }]);
    expect(bulk.status).toBe(403);
    expect(await bulk.json()).toMatchObject({ type: "urn:edge-mqtt:problem:acl-denied", errors: [{ index: 1, problem: "acl-denied" }] });
    // The raw endpoint too.
    expect((await api(`/publish/${base}/x`, { method: "POST", headers: auth, body: "1" })).status).toBe(403);
    expect((await api(`/acl/${rule.id}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await postJson("/publish", auth, { topic: `${base}/x`, payload: "1" })).status).toBe(202);
  });

  it("%c is the device the item names; a rule for another key does not apply; the admin token is not held to rules", async () => {
    const base = unique("keydev");
    const { id, auth } = await createKey([`${base}/#`]);
    const other = await createKey([`${base}/#`]);
    await addRule({ username: `key:${id}`, topic: `${base}/%c`, action: "publish", allow: false });
    expect((await postJson("/publish", auth, { topic: `${base}/gw-1`, payload: "1", clientid: "gw-1" })).status).toBe(403);
    expect((await postJson("/publish", auth, { topic: `${base}/gw-1`, payload: "1", clientid: "gw-2" })).status).toBe(202);
    expect((await postJson("/publish", other.auth, { topic: `${base}/gw-1`, payload: "1", clientid: "gw-1" })).status).toBe(202);
    await addRule({ topic: `${base}/closed`, action: "publish", allow: false });
    expect((await postJson("/publish", auth, { topic: `${base}/closed`, payload: "1" })).status).toBe(403);
    expect((await postJson("/publish", ADMIN, { topic: `${base}/closed`, payload: "1" })).status).toBe(202);
  });
});

describe("POST /api/v1/acl/check", () => {
  interface Check {
    allowed: boolean;
    reason: string;
    rule: Omit<RuleJson, "created_at"> | null;
    allow_anonymous: boolean;
    admin: boolean;
  }
  async function check(body: Record<string, unknown>, workerEnv?: typeof env): Promise<Check> {
    const init = { method: "POST", headers: { ...ADMIN, "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const res = workerEnv
      ? await app.fetch(new Request(`${BASE}/api/v1/acl/check`, init), workerEnv, createExecutionContext())
      : await api("/acl/check", init);
    if (res.status !== 200) throw new Error(`check: ${res.status} ${await res.text()}`);
    return (await res.json()) as Check;
  }
  const strip = ({ created_at: _, ...rule }: RuleJson) => rule;

  it("allowed by a rule: names it; a deny wins over an allow, whatever their order", async () => {
    const base = unique("chk");
    const allow = await addRule({ topic: `${base}/#`, action: "all", allow: true });
    expect(await check({ clientid: "c1", topic: `${base}/a`, action: "publish" })).toEqual({
      allowed: true,
      reason: "rule",
      rule: strip(allow),
      allow_anonymous: true,
      admin: false,
    });
    const deny = await addRule({ username: "alice", topic: `${base}/a`, action: "subscribe", allow: false });
    // Fresh rules: the deny added just now decides, for alice only and subscribe/read only.
    expect(await check({ username: "alice", clientid: "c1", topic: `${base}/a`, action: "read" })).toMatchObject({ allowed: false, reason: "rule", rule: strip(deny) });
    expect(await check({ username: "alice", clientid: "c1", topic: `${base}/+`, action: "subscribe" })).toMatchObject({ allowed: false, reason: "rule", rule: { id: deny.id } });
    expect(await check({ username: "alice", clientid: "c1", topic: `${base}/a`, action: "publish" })).toMatchObject({ allowed: true, rule: { id: allow.id } });
    expect(await check({ username: "bob", clientid: "c1", topic: `${base}/a`, action: "read" })).toMatchObject({ allowed: true, rule: { id: allow.id } });
  });

  it("no rule matching: the default, allowed while ALLOW_ANONYMOUS is on, denied when it is off", async () => {
    const topic = `${unique("nomatch")}/x`;
    expect(await check({ clientid: "c", topic, action: "publish" })).toEqual({ allowed: true, reason: "default", rule: null, allow_anonymous: true, admin: false });
    const closed = { ...env, ALLOW_ANONYMOUS: "false" };
    expect(await check({ clientid: "c", topic, action: "publish" }, closed)).toEqual({ allowed: false, reason: "default", rule: null, allow_anonymous: false, admin: false });
    const allow = await addRule({ topic, action: "publish", allow: true });
    expect(await check({ clientid: "c", topic, action: "publish" }, closed)).toMatchObject({ allowed: true, reason: "rule", rule: { id: allow.id } });
  });

  it("$ topics: nobody publishes; $SYS is read by admins only (the stored admin flag, or admin: true)", async () => {
    const c = unique("dollar"); // a rule allowing everything, for this client only
    await addRule({ clientid: c, topic: "#", action: "all", allow: true });
    expect(await check({ clientid: c, topic: "$SYS/broker/uptime", action: "publish", admin: true })).toMatchObject({ allowed: false, reason: "dollar-topic", rule: null });
    expect(await check({ clientid: c, topic: "$SYS/broker/uptime", action: "read" })).toMatchObject({ allowed: false, reason: "sys-admin-only" });
    expect(await check({ clientid: c, topic: "$SYS/#", action: "subscribe", admin: true })).toMatchObject({ allowed: true, reason: "sys-admin", admin: true });
    const username = unique("root");
    expect((await postJson("/credentials", ADMIN, { username, password: "a-long-password-1", admin: true })).status).toBe(201);
    expect(await check({ username, clientid: c, topic: "$SYS/broker/uptime", action: "read" })).toMatchObject({ allowed: true, reason: "sys-admin", admin: true });
    expect(await check({ username, clientid: c, topic: "$SYS/broker/uptime", action: "read", admin: false })).toMatchObject({ allowed: false, admin: false });
  });

  it("%c and %u: substituted for the client checked; the rule is answered as written", async () => {
    const base = unique("pat");
    const closed = { ...env, ALLOW_ANONYMOUS: "false" };
    const own = await addRule({ topic: `${base}/%c/#`, action: "publish", allow: true });
    const mine = await addRule({ topic: `${base}/users/%u`, action: "subscribe", allow: true });
    expect(await check({ clientid: "gw-1", topic: `${base}/gw-1/t`, action: "publish" }, closed)).toMatchObject({ allowed: true, rule: { id: own.id, topic: `${base}/%c/#` } });
    expect(await check({ clientid: "gw-2", topic: `${base}/gw-1/t`, action: "publish" }, closed)).toMatchObject({ allowed: false, reason: "default" });
    expect(await check({ username: "ann", clientid: "x", topic: `${base}/users/ann`, action: "read" }, closed)).toMatchObject({ allowed: true, rule: { id: mine.id } });
    // No user name: a %u rule never applies.
    expect(await check({ clientid: "x", topic: `${base}/users/ann`, action: "read" }, closed)).toMatchObject({ allowed: false, reason: "default" });
  });

  it("refuses a bad topic (400 invalid-topic) or body (400 invalid-request); 401 without the token", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ clientid: "c", topic: "a/+", action: "publish" }, "invalid-topic"],
      [{ clientid: "c", topic: "a/#", action: "read" }, "invalid-topic"],
      [{ clientid: "c", topic: "a/#/b", action: "subscribe" }, "invalid-topic"],
      [{ clientid: "c", topic: "a", action: "all" }, "invalid-request"],
      [{ topic: "a", action: "publish" }, "invalid-request"],
      [{ clientid: "c", topic: "", action: "publish" }, "invalid-request"],
    ];
    for (const [body, problem] of cases) {
      const res = await postJson("/acl/check", ADMIN, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.json(), JSON.stringify(body)).toMatchObject({ type: `urn:edge-mqtt:problem:${problem}` });
    }
    expect((await postJson("/acl/check", {}, { clientid: "c", topic: "a", action: "publish" })).status).toBe(401);
  });

  it("is in the OpenAPI document", async () => {
    const doc = (await (await api("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> }>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    const op = doc.paths["/acl/check"]?.post;
    expect(op?.responses["200"]?.content?.["application/json"]?.schema.$ref).toBe("#/components/schemas/AclCheckResult");
    expect(Object.keys(doc.components.schemas.AclCheckResult?.properties ?? {})).toEqual(expect.arrayContaining(["allowed", "reason", "rule"]));
    expect(Object.keys(doc.components.schemas.AclCheck?.properties ?? {})).toEqual(expect.arrayContaining(["username", "clientid", "topic", "action", "admin"]));
  });
});
