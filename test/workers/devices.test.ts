/**
 * /api/v1/devices inside workerd: the registry list from D1 (filters, lease semantics, prefix
 * ranges, cursor pagination), one device with its live session, disconnect, decommission, and
 * the refusals. Rows are written straight into D1; sessions are made by MQTT clients over
 * WebSocket through the Worker (fast path), with the project codec.
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec";
import type { ConnectPacket, Packet, ProtocolVersion } from "../../core/mqtt/packets";
import { createDb, schema } from "../../db";
import type { NewDevice } from "../../db/schema";
import { eq } from "drizzle-orm";
import { listQuery } from "../../worker/routes/api/devices";

const BASE = "http://broker.test";
const ADMIN = { Authorization: "Bearer test-admin-token-0123456789" };
let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;

function api(method: string, path: string, headers: HeadersInit = ADMIN): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}/api/v1${path}`, { method, headers }));
}

async function json<T = any>(res: Response, status = 200): Promise<T> {
  const body = await res.text();
  expect(res.status, body).toBe(status);
  return JSON.parse(body) as T;
}

async function problem(res: Response, status: number, name?: string): Promise<Record<string, unknown>> {
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  const body = await json<Record<string, unknown>>(res, status);
  if (name) expect(body.type).toBe(`urn:edge-mqtt:problem:${name}`);
  return body;
}

const NOW = Date.now();
function device(clientId: string, o: Partial<NewDevice> = {}): NewDevice {
  return { clientId, protocolVersion: 5, online: false, transport: "mqtt", connectionCount: 1, ...o };
}
async function insert(...rows: NewDevice[]): Promise<void> {
  await createDb(env.DB).insert(schema.devices).values(rows);
}

// ------------------------------------------------------------------ a minimal MQTT client

class Client {
  readonly received: Packet[] = [];
  closed = false;
  #pending: Uint8Array = new Uint8Array(0);

  constructor(
    readonly ws: WebSocket,
    readonly version: ProtocolVersion,
  ) {
    ws.accept();
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => {
      const { frames, rest } = splitFrames(this.#pending, new Uint8Array(event.data as ArrayBuffer));
      this.#pending = rest;
      for (const f of frames) {
        const d = decodePacket(f, { protocolVersion: this.version });
        if (d.ok) this.received.push(d.packet);
      }
    });
    ws.addEventListener("close", () => {
      this.closed = true;
    });
  }

  send(p: Packet): void {
    this.ws.send(encodePacket(p, this.version));
  }

  async waitFor<T extends Packet["type"]>(type: T): Promise<Extract<Packet, { type: T }>> {
    await until(() => this.received.some((p) => p.type === type), `${type} (got ${this.received.map((p) => p.type).join(",")})`);
    return this.received.find((p) => p.type === type) as Extract<Packet, { type: T }>;
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await scheduler.wait(5);
  }
}

async function mqttClient(clientId: string, version: ProtocolVersion, o: Partial<ConnectPacket> = {}): Promise<Client> {
  const res = await exports.default.fetch(
    new Request(`${BASE}/mqtt/${encodeURIComponent(clientId)}`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt" } }),
  );
  expect(res.status).toBe(101);
  const c = new Client(res.webSocket!, version);
  c.send({ type: "connect", protocolName: "MQTT", protocolVersion: version, clean: false, keepAlive: 60, clientId, ...(version === 5 && { properties: { sessionExpiryInterval: 3600 } }), ...o } as ConnectPacket);
  const connack = await c.waitFor("connack");
  expect(connack.reasonCode).toBe(0);
  return c;
}

/** Presence reaches D1 in batches (PRESENCE_FLUSH_MS): wait for the device's row. */
async function registered(clientId: string): Promise<void> {
  const db = createDb(env.DB);
  const deadline = Date.now() + 5000;
  while ((await db.$count(schema.devices, eq(schema.devices.clientId, clientId))) === 0) {
    if (Date.now() > deadline) throw new Error(`${clientId} never reached the registry`);
    await scheduler.wait(50);
  }
}

const sessionOf = (clientId: string) => env.SESSIONS.get(env.SESSIONS.idFromName(clientId));

// ------------------------------------------------------------------ tests

describe("refusals", () => {
  it("401 without the admin token or with a wrong one, on every route", async () => {
    for (const [method, path] of [
      ["GET", "/devices"],
      ["GET", "/devices/x"],
      ["POST", "/devices/x/disconnect"],
      ["DELETE", "/devices/x"],
    ] as const) {
      await problem(await api(method, path, {}), 401, "unauthorized");
      await problem(await api(method, path, { Authorization: "Bearer wrong" }), 401, "unauthorized");
    }
  });

  it("400 for a bad status, transport, limit or cursor", async () => {
    await problem(await api("GET", "/devices?status=maybe"), 400, "invalid-request");
    await problem(await api("GET", "/devices?transport=coap"), 400, "invalid-request");
    await problem(await api("GET", "/devices?limit=0"), 400, "invalid-request");
    await problem(await api("GET", "/devices?limit=1001"), 400, "invalid-request");
    await problem(await api("GET", "/devices?cursor=%2B%2B%2B"), 400, "invalid-cursor");
    await problem(await api("GET", "/devices?cursor=_w"), 400, "invalid-cursor"); // not UTF-8
  });

  it("404 for a client identifier nothing is known of", async () => {
    const id = unique("nobody");
    await problem(await api("GET", `/devices/${id}`), 404, "device-not-found");
    await problem(await api("POST", `/devices/${id}/disconnect`), 404, "device-not-found");
    await problem(await api("DELETE", `/devices/${id}`), 404, "device-not-found");
    await problem(await api("DELETE", `/devices/${id}?dry_run=true`), 404, "device-not-found");
  });

  it("400 for a retained filter that is not a topic filter, before anything is done", async () => {
    const id = unique("badfilter");
    await insert(device(id));
    const body = await problem(await api("DELETE", `/devices/${id}?retained=devices/${id}/%23/x`), 400, "invalid-topic-filter");
    expect(body.filter).toBe(`devices/${id}/#/x`);
    const after = await json(await api("GET", `/devices/${id}`));
    expect(after.device.decommissioned_at).toBeNull();
  });

  it("409 for a known device with no connection to disconnect", async () => {
    const id = unique("idle");
    await insert(device(id));
    await problem(await api("POST", `/devices/${id}/disconnect`), 409, "not-connected");
  });

  it("describing an unknown client identifier leaves no rows behind", async () => {
    const id = unique("ghost");
    await problem(await api("GET", `/devices/${id}`), 404);
    await runInDurableObject(sessionOf(id), (_instance, state) => {
      const tables = state.storage.sql
        .exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'`)
        .toArray()
        .map((r) => r.name);
      for (const table of tables) {
        expect(state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${table}"`).one().n, table).toBe(0);
      }
    });
  });
});

describe("GET /devices", () => {
  it("status follows the lease: online iff online = 1 AND lease_expires_at > now", async () => {
    const p = unique("lease");
    await insert(
      device(`${p}-a-live`, { online: true, leaseExpiresAt: NOW + 600_000, connectedAt: NOW - 1000, lastSeenAt: NOW - 500 }),
      device(`${p}-b-expired`, { online: true, leaseExpiresAt: NOW - 60_000, connectedAt: NOW - 120_000, disconnectReason: null }),
      device(`${p}-c-gone`, { online: false, disconnectedAt: NOW - 5000, disconnectReason: "protocol-error", disconnectCode: 0x81, willFired: true }),
      device(`${p}-d-nolease`, { online: true, leaseExpiresAt: null }),
    );
    const online = await json(await api("GET", `/devices?prefix=${p}&status=online`));
    expect(online.items.map((d: any) => d.client_id)).toEqual([`${p}-a-live`]);
    expect(online.items[0]).toMatchObject({
      online: true,
      disconnect_reason: null,
      connected_at: new Date(NOW - 1000).toISOString(),
      last_seen_at: new Date(NOW - 500).toISOString(),
      lease_expires_at: new Date(NOW + 600_000).toISOString(),
    });
    const offline = await json(await api("GET", `/devices?prefix=${p}&status=offline`));
    expect(offline.items.map((d: any) => d.client_id)).toEqual([`${p}-b-expired`, `${p}-c-gone`, `${p}-d-nolease`]);
    expect(offline.items[0]).toMatchObject({
      online: false,
      disconnect_reason: "lease-expired",
      disconnected_at: new Date(NOW - 60_000).toISOString(),
      disconnect_code: null,
    });
    expect(offline.items[1]).toMatchObject({ disconnect_reason: "protocol-error", disconnect_code: 0x81, will_fired: true });
    const all = await json(await api("GET", `/devices?prefix=${p}`));
    expect(all.items).toHaveLength(4);
    expect(all.next_cursor).toBeNull();
    // Every field of an item is there.
    expect(Object.keys(all.items[0]).sort()).toEqual(
      [
        "client_id", "online", "transport", "connected_at", "disconnected_at", "last_seen_at", "disconnect_reason", "disconnect_code",
        "will_fired", "protocol_version", "username", "remote_address", "connection_count", "session_expires_at", "lease_expires_at",
        "decommissioned_at",
      ].sort(),
    );
  });

  it("transport filter", async () => {
    const p = unique("tr");
    await insert(device(`${p}-1`, { transport: "http" }), device(`${p}-2`), device(`${p}-3`, { transport: "http" }));
    const http = await json(await api("GET", `/devices?prefix=${p}&transport=http`));
    expect(http.items.map((d: any) => d.client_id)).toEqual([`${p}-1`, `${p}-3`]);
    const mqtt = await json(await api("GET", `/devices?prefix=${p}&transport=mqtt`));
    expect(mqtt.items.map((d: any) => d.client_id)).toEqual([`${p}-2`]);
  });

  it("prefix is a range, not a pattern: % and _ are plain characters", async () => {
    const p = unique("pre");
    await insert(device(`${p}%x`), device(`${p}_y`), device(`${p}ab`), device(`${p}`), device(`${p.slice(0, -1)}~`));
    const pct = await json(await api("GET", `/devices?prefix=${encodeURIComponent(`${p}%`)}`));
    expect(pct.items.map((d: any) => d.client_id)).toEqual([`${p}%x`]);
    const under = await json(await api("GET", `/devices?prefix=${encodeURIComponent(`${p}_`)}`));
    expect(under.items.map((d: any) => d.client_id)).toEqual([`${p}_y`]);
    const all = await json(await api("GET", `/devices?prefix=${encodeURIComponent(p)}`));
    expect(all.items.map((d: any) => d.client_id)).toEqual([p, `${p}%x`, `${p}_y`, `${p}ab`]);
  });

  it("a prefix range and a cursor are searches of the primary key, not scans", async () => {
    const db = createDb(env.DB);
    for (const status of [undefined, "online", "offline"] as const) {
      const q = listQuery(db, { prefix: "sensor-", after: "sensor-17", status, limit: 101 }, NOW).toSQL();
      const plan = await env.DB.prepare(`EXPLAIN QUERY PLAN ${q.sql}`)
        .bind(...q.params)
        .all<{ detail: string }>();
      const details = plan.results.map((r) => r.detail).join("; ");
      expect(details, details).toMatch(/SEARCH devices USING INDEX sqlite_autoindex_devices_1 \(client_id>\? AND client_id<\?\)/);
      expect(details).not.toMatch(/SCAN|TEMP B-TREE/);
    }
  });

  it("cursor pagination walks every device once, in client identifier order", async () => {
    const p = unique("page");
    const ids = Array.from({ length: 7 }, (_, i) => `${p}-${String.fromCharCode(0x61 + i)}${i % 2 ? "é" : ""}`);
    await insert(...[...ids].reverse().map((id) => device(id)));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: any = await json(await api("GET", `/devices?prefix=${p}&limit=3${cursor ? `&cursor=${cursor}` : ""}`));
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((d: any) => d.client_id));
      cursor = page.next_cursor;
      if (cursor) expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(ids);
  });
});

describe("one device, disconnect, decommission (MQTT 5.0 client on the fast path)", () => {
  it("shows the live session; disconnect sends 0x98 and keeps it; decommission ends it", async () => {
    const id = unique("dev/with slash");
    const c = await mqttClient(id, 5, { will: { topic: `devices/${id}/status`, payload: new TextEncoder().encode("gone"), qos: 1, retain: false } });
    c.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: "cmd/#", qos: 1, noLocal: true }], properties: { subscriptionIdentifiers: [7] } });
    await c.waitFor("suback");

    const path = `/devices/${encodeURIComponent(id)}`;
    const seen = await json(await api("GET", path));
    expect(seen.client_id).toBe(id);
    expect(seen.session).toMatchObject({
      connected: true,
      route: "fast",
      protocol_version: 5,
      session_expiry_interval: 3600,
      expires_at: null,
      keep_alive: 60,
      will_pending: true,
      queued: { messages: 0, bytes: 0 },
      in_flight: { outbound: 0, outbound_bytes: 0, inbound_awaiting_release: 0 },
    });
    expect(seen.session.subscriptions).toEqual([
      { filter: "cmd/#", qos: 1, no_local: true, retain_as_published: false, retain_handling: 0, subscription_id: 7 },
    ]);

    const disconnected = await json(await api("POST", `${path}/disconnect`));
    expect(disconnected).toStrictEqual({ client_id: id, disconnected: true, will_published: true, session_kept: true });
    const d = await c.waitFor("disconnect");
    expect(d.reasonCode).toBe(0x98);
    await until(() => c.closed, "the close");
    const after = await json(await api("GET", path));
    expect(after.session).toMatchObject({ connected: false, route: null, will_pending: false });
    expect(Date.parse(after.session.expires_at)).toBeGreaterThan(Date.now() + 3000_000);
    await problem(await api("POST", `${path}/disconnect`), 409, "not-connected");

    // Dry run: says what would be done, does nothing.
    await registered(id);
    const dry = await json(await api("DELETE", `${path}?dry_run=true&retained=${encodeURIComponent(`devices/${id}/#`)}`));
    expect(dry).toMatchObject({ dry_run: true, session_ended: true, was_online: false, subscriptions_removed: 1, decommissioned_at: null });
    expect((await json(await api("GET", path))).session).not.toBeNull();

    const done = await json(await api("DELETE", `${path}?retained=${encodeURIComponent(`devices/${id}/#`)}`));
    expect(done).toMatchObject({ client_id: id, dry_run: false, session_ended: true, subscriptions_removed: 1, retained_cleared: { [`devices/${id}/#`]: 0 } });
    expect(Date.parse(done.decommissioned_at)).toBeGreaterThan(0);
    const gone = await json(await api("GET", path));
    expect(gone.session).toBeNull();
    expect(gone.device).toMatchObject({ online: false, disconnect_reason: "decommissioned" });
    expect(gone.device.decommissioned_at).toBe(done.decommissioned_at);
    await runInDurableObject(sessionOf(id), (_i, state) => {
      for (const table of ["session", "subscriptions", "outbound", "link"]) {
        expect(state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n, table).toBe(0);
      }
    });
  });

  it("decommission of a connected 3.1.1 client closes it, revokes credentials and keys, clears the templates", async () => {
    const id = unique("old");
    const c = await mqttClient(id, 4);
    const db = createDb(env.DB);
    await db.insert(schema.credentials).values({ username: id, salt: "s", hash: "h", algorithm: "pbkdf2-sha256:1", createdAt: NOW });
    await db.insert(schema.apiKeys).values([
      { id: `${id}-k1`, name: "k1", hash: `${id}-h1`, deviceId: id, createdAt: NOW },
      { id: `${id}-k2`, name: "k2", hash: `${id}-h2`, deviceId: id, createdAt: NOW, revokedAt: NOW - 1 },
      { id: `${id}-k3`, name: "k3", hash: `${id}-h3`, deviceId: `${id}-other`, createdAt: NOW },
    ]);
    await registered(id);
    const dry = await json(await api("DELETE", `/devices/${id}?dry_run=true`));
    expect(dry).toMatchObject({ was_online: true, credentials_revoked: 1, keys_revoked: 1, retained_cleared: { [`devices/${id}/#`]: 0 } });

    const done = await json(await api("DELETE", `/devices/${id}`));
    expect(done).toMatchObject({ session_ended: true, was_online: true, credentials_revoked: 1, keys_revoked: 1, retained_skipped: [] });
    await until(() => c.closed, "the close");
    expect(c.received.filter((p) => p.type === "disconnect"), "3.1.1: no DISCONNECT from the server").toEqual([]);
    const keys = await db.select().from(schema.apiKeys);
    const byId = Object.fromEntries(keys.map((k) => [k.id, k.revokedAt]));
    expect(byId[`${id}-k1`]).toBe(Date.parse(done.decommissioned_at));
    expect(byId[`${id}-k2`]).toBe(NOW - 1);
    expect(byId[`${id}-k3`]).toBeNull();
    expect((await db.select().from(schema.credentials)).map((r) => r.username)).not.toContain(id);
    // Again: nothing left to do, and says so.
    const again = await json(await api("DELETE", `/devices/${id}`));
    expect(again).toMatchObject({ session_ended: false, was_online: false, credentials_revoked: 0, keys_revoked: 0 });
  });

  it("a client identifier with a wildcard character does not turn the template into a wildcard", async () => {
    const id = unique("wild+card");
    await insert(device(id));
    const done = await json(await api("DELETE", `/devices/${encodeURIComponent(id)}?dry_run=true`));
    expect(done.retained_cleared).toEqual({});
    expect(done.retained_skipped).toEqual([{ template: "devices/%c/#", reason: expect.stringMatching(/wildcard/) }]);
  });
});

describe("OpenAPI", () => {
  it("every devices route is in /api/v1/openapi.json with its schemas and refusals", async () => {
    const doc = await json(await exports.default.fetch(new Request(`${BASE}/api/v1/openapi.json`)));
    const paths = doc.paths as Record<string, Record<string, any>>;
    expect(Object.keys(paths["/devices"]!)).toEqual(["get"]);
    expect(Object.keys(paths["/devices/{id}"]!).sort()).toEqual(["delete", "get"]);
    expect(Object.keys(paths["/devices/{id}/disconnect"]!)).toEqual(["post"]);
    const del = paths["/devices/{id}"]!.delete;
    const retained = del.parameters.find((p: any) => p.name === "retained");
    expect(retained).toMatchObject({ in: "query", required: false });
    expect(Object.keys(del.responses).sort()).toEqual(["200", "400", "401", "404", "500", "503"]);
    expect(paths["/devices"]!.get.parameters.map((p: any) => p.name).sort()).toEqual(["cursor", "limit", "prefix", "status", "transport"]);
    for (const name of ["Device", "DeviceList", "DeviceDetail", "Session", "Subscription", "DisconnectResult", "DecommissionResult", "Problem"]) {
      expect(doc.components.schemas, name).toHaveProperty(name);
    }
  });
});
