/** /api/v1/credentials: create (201) or replace (200), list with a cursor, delete; validation; admin only. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { verifyPassword } from "../../worker/security/passwords";
import { ADMIN, api, postJson, unique } from "./ingest-helpers";

interface CredentialJson {
  username: string;
  admin: boolean;
  algorithm: string;
  created_at: string;
}

const row = (username: string) =>
  env.DB.prepare("SELECT salt, hash, algorithm, admin FROM credentials WHERE username = ?").bind(username).first<{ salt: string; hash: string; algorithm: string; admin: number }>();

describe("POST /api/v1/credentials", () => {
  it("creates a user (201) with a PBKDF2 hash; never echoes the password", async () => {
    const username = unique("user");
    const res = await postJson("/credentials", ADMIN, { username, password: "correct horse" });
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain("correct horse");
    const body = JSON.parse(text) as CredentialJson;
    expect(body).toEqual({ username, admin: false, algorithm: `pbkdf2-sha256:${env.PBKDF2_ITERATIONS ?? 100000}`, created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    const stored = (await row(username))!;
    expect(stored.admin).toBe(0);
    expect(await verifyPassword("correct horse", stored)).toBe(true);
    expect(await verifyPassword("wrong horse!", stored)).toBe(false);
  });

  it("replaces the password of an existing user (200); admin kept unless given", async () => {
    const username = unique("user");
    expect((await postJson("/credentials", ADMIN, { username, password: "first password", admin: true })).status).toBe(201);
    const first = (await row(username))!;
    const res = await postJson("/credentials", ADMIN, { username, password: "second password" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ username, admin: true });
    const second = (await row(username))!;
    expect(second.salt).not.toBe(first.salt);
    expect(await verifyPassword("second password", second)).toBe(true);
    expect(await verifyPassword("first password", second)).toBe(false);
    const demoted = await postJson("/credentials", ADMIN, { username, password: "third password", admin: false });
    expect(await demoted.json()).toMatchObject({ admin: false });
  });

  it("refuses bad input with 400 problem+json (and stores nothing)", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ username: "u1", password: "short" }, /password/],
      [{ username: "u1", password: "x".repeat(1025) }, /password/],
      [{ username: "", password: "long enough" }, /username/],
      [{ username: "x".repeat(257), password: "long enough" }, /username/],
      [{ username: "tab\there", password: "long enough" }, /control/],
      [{ username: "a/b", password: "long enough" }, /\+, # or \//],
      [{ username: "+", password: "long enough" }, /\+, # or \//],
      [{ username: "nul\u0000", password: "long enough" }, /username/],
      [{ username: "u1", password: "long enough", extra: 1 }, /extra|unrecognized/i],
      [{ username: "u1" }, /password/],
      [{ username: "u1", password: "long enough", admin: "yes" }, /admin/],
    ];
    for (const [body, detail] of cases) {
      const res = await postJson("/credentials", ADMIN, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get("Content-Type")).toBe("application/problem+json");
      const problem = (await res.json()) as { detail: string };
      expect(problem.detail, JSON.stringify(body)).toMatch(detail);
      expect(problem.detail).not.toContain("long enough");
    }
    expect(await row("u1")).toBeNull();
  });
});

describe("GET /api/v1/credentials", () => {
  it("lists users in name order, a page at a time, never a hash or salt", async () => {
    const prefix = unique("list");
    const names = [`${prefix}-c`, `${prefix}-a`, `${prefix}-b`];
    for (const username of names) expect((await postJson("/credentials", ADMIN, { username, password: "password-1" })).status).toBe(201);
    const seen: CredentialJson[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api(`/credentials?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { headers: ADMIN });
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: CredentialJson[]; next_cursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 1000);
    const mine = seen.filter((c) => c.username.startsWith(prefix)).map((c) => c.username);
    expect(mine).toEqual([...names].sort());
    for (const c of seen) expect(Object.keys(c).sort()).toEqual(["admin", "algorithm", "created_at", "username"]);
    expect((await api("/credentials?cursor=%%%", { headers: ADMIN })).status).toBe(400);
    expect((await api("/credentials?limit=0", { headers: ADMIN })).status).toBe(400);
  });
});

describe("DELETE /api/v1/credentials/<username>", () => {
  it("deletes (204), then 404", async () => {
    const username = unique("gone");
    await postJson("/credentials", ADMIN, { username, password: "password-1" });
    const res = await api(`/credentials/${encodeURIComponent(username)}`, { method: "DELETE", headers: ADMIN });
    expect(res.status).toBe(204);
    expect(await row(username)).toBeNull();
    const again = await api(`/credentials/${encodeURIComponent(username)}`, { method: "DELETE", headers: ADMIN });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ type: "urn:edge-mqtt:problem:credential-not-found" });
  });

  it("a user name with spaces and non-ASCII letters round-trips through the path", async () => {
    const username = `${unique("Zoë")} café ✓`;
    expect((await postJson("/credentials", ADMIN, { username, password: "password-1" })).status).toBe(201);
    expect((await api(`/credentials/${encodeURIComponent(username)}`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect(await row(username)).toBeNull();
  });
});

describe("admin only", () => {
  it("401 without the admin token, or with a wrong one", async () => {
    expect((await api("/credentials")).status).toBe(401);
    expect((await postJson("/credentials", { Authorization: "Bearer nope" }, { username: "x1", password: "password-1" })).status).toBe(401);
    expect((await api("/credentials/x1", { method: "DELETE" })).status).toBe(401);
    expect(await row("x1")).toBeNull();
  });
});
