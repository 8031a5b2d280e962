// The security administration API against a broker started as `npm start` starts it:
// credentials and ACL rules created, listed, deleted; validation problems; the admin token;
// the OpenAPI document; and a credential's effect on CONNECT (made, replaced, deleted).
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN_AUTH, useBroker } from "./broker";
import { closeAll, connect, sleep, uid } from "./clients";

const broker = useBroker({ vars: { ALLOW_ANONYMOUS: "false", AUTH_CACHE_SECONDS: "1", PBKDF2_ITERATIONS: "1000" } });
afterEach(closeAll);

function api(method: string, path: string, body?: unknown, headers: Record<string, string> = ADMIN_AUTH): Promise<Response> {
  return fetch(`${broker().httpUrl}/api/v1${path}`, {
    method,
    headers: { ...headers, ...(body !== undefined && { "Content-Type": "application/json" }) },
    ...(body !== undefined && { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
}

async function problem(res: Response, status: number, type?: string): Promise<{ type: string; detail: string }> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
  const p = (await res.json()) as { type: string; detail: string; status: number };
  expect(p.status).toBe(status);
  if (type) expect(p.type).toBe(`urn:edge-mqtt:problem:${type}`);
  return p;
}

/** Whether a CONNECT with these credentials is accepted (the refusal's code otherwise). */
async function connects(username: string, password: string): Promise<true | number> {
  try {
    const c = await connect(broker().url, { version: 5, username, password });
    await c.end();
    return true;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

describe("credentials", () => {
  it("create (201), replace (200), list, delete (204), then 404", async () => {
    const username = uid("sec-user");
    const created = await api("POST", "/credentials", { username, password: "first password", admin: true });
    expect(created.status).toBe(201);
    const text = await created.text();
    expect(text).not.toContain("first password");
    expect(JSON.parse(text)).toEqual({ username, admin: true, algorithm: "pbkdf2-sha256:1000", created_at: expect.any(String) });

    const replaced = await api("POST", "/credentials", { username, password: "second password" });
    expect(replaced.status).toBe(200);
    expect(await replaced.json()).toMatchObject({ username, admin: true });

    const list = (await (await api("GET", "/credentials?limit=1000")).json()) as { items: Array<Record<string, unknown>>; next_cursor: string | null };
    expect(list.items.find((c) => c.username === username)).toEqual({ username, admin: true, algorithm: "pbkdf2-sha256:1000", created_at: expect.any(String) });
    expect(JSON.stringify(list)).not.toMatch(/salt|hash"|password/);

    expect((await api("DELETE", `/credentials/${encodeURIComponent(username)}`)).status).toBe(204);
    await problem(await api("DELETE", `/credentials/${encodeURIComponent(username)}`), 404, "credential-not-found");
  });

  it("the password works for CONNECT; a replaced one stops working, a deleted user is refused (within AUTH_CACHE_SECONDS)", async () => {
    const username = uid("sec-conn");
    await api("POST", "/credentials", { username, password: "first password" });
    expect(await connects(username, "first password")).toBe(true);
    expect(await connects(username, "wrong password")).toBe(0x86);
    await api("POST", "/credentials", { username, password: "second password" });
    // The isolate that changed it forgets at once; others within AUTH_CACHE_SECONDS (1 s here).
    await sleep(1_100);
    expect(await connects(username, "second password")).toBe(true);
    expect(await connects(username, "first password")).toBe(0x86);
    await api("DELETE", `/credentials/${encodeURIComponent(username)}`);
    await sleep(1_100);
    expect(await connects(username, "second password")).toBe(0x86);
  });

  it("validation problems (400), and nothing stored", async () => {
    const bad: unknown[] = [
      { username: "short-pw", password: "1234567" },
      { username: "", password: "long enough" },
      { username: "a\nb", password: "long enough" },
      { username: "a#b", password: "long enough" },
      { username: "ok-name", password: "long enough", role: "admin" },
      "not json",
    ];
    for (const body of bad) {
      const p = await problem(await api("POST", "/credentials", body), 400);
      expect(p.detail).not.toContain("long enough");
    }
    const list = (await (await api("GET", "/credentials?limit=1000")).json()) as { items: Array<{ username: string }> };
    expect(list.items.map((c) => c.username)).not.toEqual(expect.arrayContaining(["short-pw", "ok-name"]));
    await problem(await api("GET", "/credentials?cursor=!!"), 400, "invalid-cursor");
  });
});

describe("ACL rules", () => {
  it("create (201), identical again (200), list with filters and a cursor, delete (204), then 404", async () => {
    const username = uid("acl-user");
    const clientid = uid("acl-client");
    const res = await api("POST", "/acl", { username, topic: "devices/%c/#", action: "all", allow: true });
    expect(res.status).toBe(201);
    const rule = (await res.json()) as { id: number };
    expect(rule).toEqual({ id: expect.any(Number), username, clientid: null, topic: "devices/%c/#", action: "all", allow: true, created_at: expect.any(String) });
    const again = await api("POST", "/acl", { username, topic: "devices/%c/#", action: "all", allow: true });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: number }).id).toBe(rule.id);
    const second = (await (await api("POST", "/acl", { username, clientid, topic: "secret/#", action: "subscribe", allow: false })).json()) as { id: number };

    const page1 = (await (await api("GET", `/acl?username=${username}&limit=1`)).json()) as { items: Array<{ id: number }>; next_cursor: string | null };
    expect(page1.items.map((r) => r.id)).toEqual([rule.id]);
    expect(page1.next_cursor).not.toBeNull();
    const page2 = (await (await api("GET", `/acl?username=${username}&limit=1&cursor=${page1.next_cursor}`)).json()) as { items: Array<{ id: number }>; next_cursor: string | null };
    expect(page2.items.map((r) => r.id)).toEqual([second.id]);
    expect(page2.next_cursor).toBeNull();
    const byClient = (await (await api("GET", `/acl?clientid=${clientid}`)).json()) as { items: Array<{ id: number }> };
    expect(byClient.items.map((r) => r.id)).toEqual([second.id]);

    for (const id of [rule.id, second.id]) expect((await api("DELETE", `/acl/${id}`)).status).toBe(204);
    await problem(await api("DELETE", `/acl/${rule.id}`), 404, "acl-rule-not-found");
    expect(((await (await api("GET", `/acl?username=${username}`)).json()) as { items: unknown[] }).items).toEqual([]);
  });

  it("validation problems (400)", async () => {
    await problem(await api("POST", "/acl", { topic: "a/#/b", action: "all", allow: true }), 400, "invalid-acl-rule");
    await problem(await api("POST", "/acl", { topic: "a+b", action: "publish", allow: true }), 400, "invalid-acl-rule");
    await problem(await api("POST", "/acl", { topic: "a", action: "read", allow: true }), 400, "invalid-request");
    await problem(await api("POST", "/acl", { topic: "a", action: "all" }), 400, "invalid-request");
    await problem(await api("POST", "/acl", { topic: "a", action: "all", allow: true, username: "" }), 400, "invalid-request");
    await problem(await api("DELETE", "/acl/not-a-number"), 400);
    await problem(await api("GET", "/acl?cursor=x"), 400, "invalid-cursor");
  });
});

describe("admin only", () => {
  it("401 without the admin token or with a wrong one, for every operation", async () => {
    const wrong = { Authorization: "Bearer not-the-token" };
    for (const headers of [{}, wrong]) {
      await problem(await api("GET", "/credentials", undefined, headers), 401, "unauthorized");
      await problem(await api("POST", "/credentials", { username: "x-unauth", password: "long enough" }, headers), 401, "unauthorized");
      await problem(await api("DELETE", "/credentials/x", undefined, headers), 401, "unauthorized");
      await problem(await api("GET", "/acl", undefined, headers), 401, "unauthorized");
      await problem(await api("POST", "/acl", { topic: "a", action: "all", allow: true }, headers), 401, "unauthorized");
      await problem(await api("DELETE", "/acl/1", undefined, headers), 401, "unauthorized");
    }
    const list = (await (await api("GET", "/credentials?limit=1000")).json()) as { items: Array<{ username: string }> };
    expect(list.items.map((c) => c.username)).not.toContain("x-unauth");
  });
});

describe("OpenAPI document", () => {
  it("lists the new paths with named schemas and problem responses", async () => {
    const doc = (await (await fetch(`${broker().httpUrl}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/credentials", "/credentials/{username}", "/acl", "/acl/{id}"]));
    expect(Object.keys(doc.paths["/credentials"]!).sort()).toEqual(["get", "post"]);
    expect(Object.keys(doc.paths["/credentials/{username}"]!)).toEqual(["delete"]);
    expect(Object.keys(doc.paths["/acl"]!).sort()).toEqual(["get", "post"]);
    expect(Object.keys(doc.paths["/acl/{id}"]!)).toEqual(["delete"]);
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(["Credential", "NewCredential", "CredentialList", "AclRule", "NewAclRule", "AclRuleList"]));
    const post = doc.paths["/acl"]!.post!;
    expect(Object.keys(post.responses).sort()).toEqual(["200", "201", "400", "401", "503"]);
    expect(Object.keys(post.responses["400"]!.content!)).toEqual(["application/problem+json"]);
    expect(Object.keys(doc.paths["/credentials/{username}"]!.delete!.responses)).toEqual(expect.arrayContaining(["204", "404", "401"]));
  });
});
