/**
 * PresenceDO inside workerd, against the migrated D1: events stored before record() returns
 * (nothing lost when the object is evicted before its flush), merged per client, written in
 * batches (N events -> ceil(rows / 100) D1 requests), the lease sweep, HTTP presence and
 * decommission. Each test uses its own presence object and client identifiers.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { PresenceEvent } from "../../core/session/types";
import { createDb } from "../../db";
import { devices } from "../../db/schema";

let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;

function newPresence() {
  return env.PRESENCE.get(env.PRESENCE.idFromName(unique("presence-test")));
}

const db = () => createDb(env.DB);

async function row(clientId: string) {
  return (await db().select().from(devices).where(eq(devices.clientId, clientId)))[0];
}

const connect = (clientId: string, at: number, extra: Partial<PresenceEvent> = {}): PresenceEvent => ({
  clientId,
  online: true,
  at,
  connectedAt: at,
  protocolVersion: 5,
  username: "user-1",
  remoteAddress: "203.0.113.7",
  ...extra,
});

const disconnect = (clientId: string, at: number, connectedAt: number, extra: Partial<PresenceEvent> = {}): PresenceEvent => ({
  clientId,
  online: false,
  at,
  connectedAt,
  reason: "normal",
  code: 0,
  willFired: false,
  sessionExpiresAt: at + 3_600_000,
  ...extra,
});

describe("PresenceDO", () => {
  it("stores events before returning: evicted before its flush, the alarm still writes them", async () => {
    const presence = newPresence();
    const id = unique("evicted");
    const now = Date.now();
    await presence.record([connect(id, now)]);
    expect(await row(id)).toBeUndefined(); // nothing on the message path writes D1
    await evictDurableObject(presence);
    expect(await runDurableObjectAlarm(presence)).toBe(true); // the alarm survived the eviction
    expect(await row(id)).toMatchObject({
      clientId: id,
      online: true,
      transport: "mqtt",
      protocolVersion: 5,
      username: "user-1",
      remoteAddress: "203.0.113.7",
      connectedAt: now,
      lastSeenAt: now,
      leaseExpiresAt: now + 90_000, // PRESENCE_LEASE
      connectionCount: 1,
      disconnectReason: null,
    });
    expect((await presence.status()).pending).toBe(0);
  });

  it("a crash (abort) before the flush loses nothing either", async () => {
    const name = unique("presence-test");
    const presence = env.PRESENCE.get(env.PRESENCE.idFromName(name));
    const id = unique("aborted");
    const now = Date.now();
    await presence.record([connect(id, now)]);
    await runInDurableObject(presence, (_instance, state) => state.abort("crash")).catch(() => undefined);
    const again = env.PRESENCE.get(env.PRESENCE.idFromName(name)); // the aborted one's stub is broken
    expect(await runDurableObjectAlarm(again)).toBe(true);
    expect(await row(id)).toMatchObject({ online: true, connectionCount: 1 });
  });

  it("batching: 250 clients connecting and disconnecting -> 250 rows in 3 D1 requests", async () => {
    const presence = newPresence();
    const now = Date.now();
    const ids = Array.from({ length: 250 }, () => unique("storm"));
    // As the senders' queues deliver them: many events per call.
    await presence.record(ids.map((id) => connect(id, now)));
    await presence.record(ids.map((id) => disconnect(id, now + 500, now)));
    expect((await presence.status()).pending).toBe(250); // merged: one row per client
    expect(await runDurableObjectAlarm(presence)).toBe(true);
    const status = await presence.status();
    expect(status).toMatchObject({ pending: 0, online: 0, d1Requests: 3 });
    const rows = await db().select().from(devices).where(inArray(devices.clientId, ids.slice(0, 50)));
    expect(rows).toHaveLength(50);
    for (const r of rows) {
      expect(r).toMatchObject({ online: false, connectedAt: now, disconnectedAt: now + 500, disconnectReason: "normal", disconnectCode: 0, connectionCount: 1 });
      expect(r.sessionExpiresAt).toBe(now + 500 + 3_600_000);
    }
  });

  it("connection counts add up across flushes; a protocol error keeps its code; the Will is recorded", async () => {
    const presence = newPresence();
    const id = unique("counted");
    const t = Date.now();
    await presence.record([connect(id, t), disconnect(id, t + 1, t)]);
    await runDurableObjectAlarm(presence);
    await presence.record([connect(id, t + 2), disconnect(id, t + 3, t + 2, { reason: "protocol-error", code: 0x81, willFired: true, sessionExpiresAt: null })]);
    await runDurableObjectAlarm(presence);
    expect(await row(id)).toMatchObject({ online: false, connectionCount: 2, disconnectReason: "protocol-error", disconnectCode: 0x81, willFired: true, sessionExpiresAt: null });
  });

  it("a lease nobody renews expires: offline, lease-expired, disconnected when it ended", async () => {
    const presence = newPresence();
    const id = unique("vanished");
    const renewed = unique("renewed");
    const t = Date.now() - 100_000; // connected 100 s ago, lease 90 s
    await presence.record([connect(id, t), connect(renewed, t), { clientId: renewed, online: true, renewal: true, at: t + 60_000, connectedAt: t }]);
    await runDurableObjectAlarm(presence);
    expect(await row(id)).toMatchObject({ online: false, disconnectReason: "lease-expired", disconnectedAt: t + 90_000, connectedAt: t });
    expect(await row(renewed)).toMatchObject({ online: true, leaseExpiresAt: t + 150_000, lastSeenAt: t + 60_000 });
    expect((await presence.status()).online).toBe(1);
    // The session's own "lease-expired" (its alarm found no socket) keeps the sweep's time.
    await presence.record([disconnect(id, Date.now(), t, { reason: "lease-expired", code: undefined, willFired: true })]);
    await runDurableObjectAlarm(presence);
    expect(await row(id)).toMatchObject({ disconnectReason: "lease-expired", disconnectedAt: t + 90_000, willFired: true });
  });

  it("the next alarm is the earliest lease when nothing waits for D1", async () => {
    const presence = newPresence();
    const t = Date.now();
    await presence.record([connect(unique("lease"), t)]);
    await runDurableObjectAlarm(presence);
    expect((await presence.status()).nextFlushAt).toBe(t + 90_000);
  });

  it("httpSeen: online over HTTP for the window, one reporting period, renewed at most once per half window", async () => {
    const presence = newPresence();
    const id = unique("gateway-device");
    const t = Date.now();
    await presence.httpSeen([{ clientId: id, at: t, remoteAddress: "198.51.100.4" }]);
    await presence.httpSeen([{ clientId: id, at: t + 1_000 }]);
    expect(await runDurableObjectAlarm(presence)).toBe(true);
    expect(await row(id)).toMatchObject({
      online: true,
      transport: "http",
      protocolVersion: 0,
      connectedAt: t,
      lastSeenAt: t,
      leaseExpiresAt: t + 300_000, // HTTP_PRESENCE_WINDOW
      remoteAddress: "198.51.100.4",
      connectionCount: 1,
    });
    await presence.httpSeen([{ clientId: id, at: t + 160_000 }]);
    await runDurableObjectAlarm(presence);
    expect(await row(id)).toMatchObject({ leaseExpiresAt: t + 460_000, lastSeenAt: t + 160_000, connectionCount: 1 });
  });

  it("decommission before the first flush: the device still gets its record, marked decommissioned", async () => {
    const presence = newPresence();
    const id = unique("fresh");
    const t = Date.now();
    await presence.record([connect(id, t)]); // not flushed yet
    expect(await row(id)).toBeUndefined();
    await presence.decommission(id, t + 1_000);
    expect(await row(id)).toMatchObject({ online: false, disconnectReason: "decommissioned", decommissionedAt: t + 1_000, connectedAt: t, disconnectedAt: t + 1_000 });
    expect((await presence.status()).pending).toBe(0);
  });

  it("decommission: written at once, pending changes dropped, later disconnects ignored; a new connect registers it anew", async () => {
    const presence = newPresence();
    const id = unique("retired");
    const t = Date.now();
    await presence.record([connect(id, t)]);
    await runDurableObjectAlarm(presence);
    await presence.record([{ clientId: id, online: true, renewal: true, at: t + 50_000, connectedAt: t }]); // pending
    await presence.decommission(id, t + 60_000);
    expect(await row(id)).toMatchObject({ online: false, disconnectReason: "decommissioned", decommissionedAt: t + 60_000, disconnectedAt: t + 60_000 });
    // The session's own disconnect (the admin ended it) arrives after: ignored.
    await presence.record([disconnect(id, t + 60_001, t, { reason: "admin-disconnect", code: 0x98 })]);
    await runDurableObjectAlarm(presence);
    expect(await row(id)).toMatchObject({ online: false, disconnectReason: "decommissioned", decommissionedAt: t + 60_000, leaseExpiresAt: null });
    expect((await presence.status()).online).toBe(0);
    await presence.record([connect(id, t + 70_000)]);
    await runDurableObjectAlarm(presence);
    expect(await row(id)).toMatchObject({ online: true, decommissionedAt: null, disconnectedAt: null, disconnectReason: null, connectionCount: 1 });
  });
});
