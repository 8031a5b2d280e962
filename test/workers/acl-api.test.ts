/**
 * /api/v1/acl: rules created, listed (filters, cursor), deleted; invalid rules refused; and
 * HTTP API keys held to the rules (user name `key:<key id>`), seen at once on this isolate.
 */
import { describe, expect, it } from "vitest";
import { ADMIN, api, createKey, postJson, unique } from "./ingest-helpers";

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
