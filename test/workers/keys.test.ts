/** /api/v1/keys: create (shown once), list (never the hash), revoke; scopes validated; admin only. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN, api, createKey, postJson, unique } from "./ingest-helpers";

describe("API keys", () => {
  it("creates a key shown once, stored as a SHA-256 hash", async () => {
    const res = await postJson("/keys", ADMIN, { name: "gateway berlin", scopes: ["devices/gw-1/#", "sites/+/t"], device: "gw-1" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ name: "gateway berlin", scopes: ["devices/gw-1/#", "sites/+/t"], device: "gw-1", revoked_at: null, last_used_at: null });
    expect(body.key).toMatch(new RegExp(`^emk_${body.id}_[A-Za-z0-9_-]{43}$`));
    const row = await env.DB.prepare("SELECT hash, scopes FROM api_keys WHERE id = ?").bind(body.id).first<{ hash: string; scopes: string }>();
    const secret = String(body.key).slice(`emk_${body.id}_`.length);
    const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)))].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(row?.hash).toBe(digest);
    expect(JSON.parse(row!.scopes)).toEqual(["devices/gw-1/#", "sites/+/t"]);

    const list = (await (await api("/keys", { headers: ADMIN })).json()) as { keys: Array<Record<string, unknown>> };
    const listed = list.keys.find((k) => k.id === body.id)!;
    expect(listed).toBeDefined();
    expect(listed).not.toHaveProperty("key");
    expect(listed).not.toHaveProperty("hash");
  });

  it("refuses invalid scopes with 400 and names them", async () => {
    for (const scopes of [["a/#/b"], ["$SYS/#"], ["$share/g/a"], []]) {
      const res = await postJson("/keys", ADMIN, { name: "x", scopes });
      expect(res.status, JSON.stringify(scopes)).toBe(400);
      expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    }
    const res = await postJson("/keys", ADMIN, { name: "x", scopes: ["ok/#", "bad+"] });
    expect(await res.json()).toMatchObject({ type: "urn:edge-mqtt:problem:invalid-scope", errors: [{ path: "scopes.1" }] });
  });

  it("needs the admin token", async () => {
    expect((await api("/keys")).status).toBe(401);
    expect((await api("/keys", { headers: { Authorization: "Bearer nope" } })).status).toBe(401);
    const { auth } = await createKey(["#"]);
    // An API key is not the admin token.
    expect((await api("/keys", { headers: auth })).status).toBe(401);
  });

  it("a revoked key is refused at once on the isolate that revoked it", async () => {
    const { id, auth } = await createKey([`${unique("t")}/#`]);
    const topic = (await (await api("/keys", { headers: ADMIN })).json() as { keys: Array<{ id: string; scopes: string[] }> }).keys.find((k) => k.id === id)!.scopes[0]!.replace("#", "x");
    expect((await postJson("/publish", auth, { topic, payload: "1" })).status).toBe(202);
    const lastUsed = await env.DB.prepare("SELECT last_used_at FROM api_keys WHERE id = ?").bind(id).first<{ last_used_at: number | null }>();
    expect(lastUsed?.last_used_at).toBeGreaterThan(0);

    const del = await api(`/keys/${id}`, { method: "DELETE", headers: ADMIN });
    expect(del.status).toBe(200);
    const revoked = (await del.json()) as { revoked_at: string };
    expect(Date.parse(revoked.revoked_at)).toBeGreaterThan(0);
    const res = await postJson("/publish", auth, { topic, payload: "1" });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toContain("Bearer");
    // Revoking again keeps the first time; an unknown id is 404.
    expect(((await (await api(`/keys/${id}`, { method: "DELETE", headers: ADMIN })).json()) as { revoked_at: string }).revoked_at).toBe(revoked.revoked_at);
    expect((await api(`/keys/0000000000000000`, { method: "DELETE", headers: ADMIN })).status).toBe(404);
  });

  it("a wrong secret for a real key id is refused", async () => {
    const { id } = await createKey(["#"]);
    const forged = `emk_${id}_${"A".repeat(43)}`;
    expect((await postJson("/publish", { Authorization: `Bearer ${forged}` }, { topic: "a", payload: "1" })).status).toBe(401);
  });
});

describe("OpenAPI document", () => {
  it("describes the publish and key endpoints", async () => {
    const res = await api("/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, unknown> } };
    for (const path of ["/publish", "/publish/bulk", "/publish/{topic}", "/keys", "/keys/{id}"]) {
      expect(Object.keys(doc.paths), path).toContain(path);
    }
    expect(Object.keys(doc.paths["/publish/bulk"]!.post!.responses).sort()).toEqual(["200", "202", "400", "401", "403", "413", "415", "422", "429", "503"]);
    expect(Object.keys(doc.paths["/publish/{topic}"]!.post!.responses)).toContain("429");
    expect(Object.keys(doc.paths).some((p) => p.includes("{topic{"))).toBe(false);
    for (const name of ["PublishMessage", "PublishProperties", "PublishOk", "PublishNoMatch", "ApiKey", "NewApiKey", "CreatedApiKey"]) expect(doc.components.schemas, name).toHaveProperty(name);
  });
});
