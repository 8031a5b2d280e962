import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createDb } from "../../db";
import { aclRules, devices } from "../../db/schema";

describe("D1 migrations", () => {
  it("created every table", async () => {
    const { results } = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    ).all<{ name: string }>();
    expect(results.map((r) => r.name)).toEqual(["acl_rules", "api_keys", "credentials", "d1_migrations", "devices"]);
  });

  it("stores and reads a device through drizzle", async () => {
    const db = createDb(env.DB);
    const now = Date.now();
    await db.insert(devices).values({ clientId: "sensor-1", protocolVersion: 5, online: true, connectedAt: now, remoteAddress: "203.0.113.7" });
    const [row] = await db.select().from(devices).where(eq(devices.clientId, "sensor-1"));
    expect(row).toMatchObject({
      clientId: "sensor-1",
      protocolVersion: 5,
      online: true,
      willFired: false,
      connectedAt: now,
      disconnectedAt: null,
      remoteAddress: "203.0.113.7",
    });
  });

  it("rejects an ACL action outside publish|subscribe|all", async () => {
    const db = createDb(env.DB);
    await db.insert(aclRules).values({ topic: "devices/#", action: "publish", allow: true });
    await expect(
      env.DB.prepare("INSERT INTO acl_rules (topic, action, allow) VALUES ('x', 'delete', 1)").run(),
    ).rejects.toThrow(/CHECK constraint failed/);
  });
});
