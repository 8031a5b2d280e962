// /api/v1/devices against a broker started as `npm start` starts it, with MQTT.js on both
// routes: the list with its filters and pages, a device's live session, disconnect (0x98, the
// Will goes out, the session stays) and decommission (retained topics cleared, session ended,
// Will discarded, registry marked), and the refusals.
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN_AUTH, useBroker } from "./broker";
import { ROUTES, VERSION_ROUTES, closeAll, connect, sleep, uid } from "./clients";

const broker = useBroker({ vars: { PRESENCE_FLUSH_MS: "100" } });
afterEach(closeAll);

async function api(method: string, path: string, headers: Record<string, string> = ADMIN_AUTH): Promise<{ status: number; body: any }> {
  const res = await fetch(`${broker().httpUrl}/api/v1${path}`, { method, headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function ok(method: string, path: string): Promise<any> {
  const { status, body } = await api(method, path);
  expect(status, JSON.stringify(body)).toBe(200);
  return body;
}

/** Polls the list until `pred` holds for the page (presence reaches D1 in batches). */
async function listUntil(query: string, pred: (items: any[]) => boolean, what: string): Promise<any[]> {
  let items: any[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    items = (await ok("GET", `/devices?${query}`)).items;
    if (pred(items)) return items;
    if (Date.now() > deadline) throw new Error(`${what}: last page ${JSON.stringify(items.map((d) => [d.client_id, d.online, d.disconnect_reason]))}`);
    await sleep(100);
  }
}

describe("GET /api/v1/devices", () => {
  it("lists exactly the connected clients of a prefix, then shows a clean disconnect offline; pages with a cursor", async () => {
    const p = uid("list");
    const a = await connect(broker().url, { version: 5, route: "relay", clientId: `${p}-a` });
    const b = await connect(broker().url, { version: 4, route: "fast", clientId: `${p}-b` });
    const online = await listUntil(`prefix=${p}&status=online`, (items) => items.length === 2, "both online");
    expect(online.map((d) => [d.client_id, d.transport, d.protocol_version])).toEqual([
      [`${p}-a`, "mqtt", 5],
      [`${p}-b`, "mqtt", 4],
    ]);
    const first = await ok("GET", `/devices?prefix=${p}&limit=1`);
    expect(first.items.map((d: any) => d.client_id)).toEqual([`${p}-a`]);
    const second = await ok("GET", `/devices?prefix=${p}&limit=1&cursor=${first.next_cursor}`);
    expect(second.items.map((d: any) => d.client_id)).toEqual([`${p}-b`]);
    expect(second.next_cursor).toBeNull();

    await a.end();
    const offline = await listUntil(`prefix=${p}&status=offline`, (items) => items.length === 1, "a offline");
    expect(offline[0]).toMatchObject({ client_id: `${p}-a`, online: false, disconnect_reason: "normal", will_fired: false });
    const still = await ok("GET", `/devices?prefix=${p}&status=online`);
    expect(still.items.map((d: any) => d.client_id)).toEqual([`${p}-b`]);
    await b.end();
  });
});

describe.each(ROUTES)("GET /api/v1/devices/{id} (%s)", (route) => {
  it("a persistent session offline with queued QoS 1 messages: subscriptions and queued count", async () => {
    const id = uid(`page-${route}`);
    const topic = `devices/${id}/cmd`;
    const dev = await connect(broker().url, { version: 5, route, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
    await dev.subscribe({ [topic]: { qos: 1 }, [`fleet/${id}/+`]: { qos: 0, nl: true } }, { properties: { subscriptionIdentifier: 4 } });
    await dev.end();
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(topic, "one", { qos: 1 });
    await pub.publish(topic, "two!", { qos: 1 });
    const body = await ok("GET", `/devices/${encodeURIComponent(id)}`);
    expect(body.session).toMatchObject({
      connected: false,
      route: null,
      protocol_version: 5,
      session_expiry_interval: 3600,
      queued: { messages: 2, bytes: 2 * topic.length + 3 + 4 },
      in_flight: { outbound: 0, inbound_awaiting_release: 0 },
    });
    expect(Date.parse(body.session.expires_at)).toBeGreaterThan(Date.now());
    expect(body.session.subscriptions).toEqual([
      { filter: topic, qos: 1, no_local: false, retain_as_published: false, retain_handling: 0, subscription_id: 4 },
      { filter: `fleet/${id}/+`, qos: 0, no_local: true, retain_as_published: false, retain_handling: 0, subscription_id: 4 },
    ]);
    const withRecord = await (async () => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const b = await ok("GET", `/devices/${encodeURIComponent(id)}`);
        if (b.device?.disconnect_reason === "normal" || Date.now() > deadline) return b;
        await sleep(100);
      }
    })();
    expect(withRecord.device).toMatchObject({ client_id: id, online: false, disconnect_reason: "normal", protocol_version: 5 });
    // Connected: the route it came by.
    const again = await connect(broker().url, { version: 5, route, clientId: id, clean: false, properties: { sessionExpiryInterval: 3600 } });
    await again.inbox.waitFor(2);
    const live = await ok("GET", `/devices/${encodeURIComponent(id)}`);
    expect(live.session).toMatchObject({ connected: true, route: route === "fast" ? "fast" : "relay", queued: { messages: 0 } });
    await again.end();
  });
});

describe.each(VERSION_ROUTES)("POST /api/v1/devices/{id}/disconnect (v%i, %s)", (version, route) => {
  it("closes the client (5.0: DISCONNECT 0x98), publishes the Will, keeps the session", async () => {
    const id = uid(`disc-v${version}${route[0]}`);
    const willTopic = `devices/${id}/status`;
    const watcher = await connect(broker().url, { version: 5 });
    await watcher.subscribe(willTopic, { qos: 1 });
    const dev = await connect(broker().url, {
      version,
      route,
      clientId: id,
      clean: false,
      ...(version === 5 && { properties: { sessionExpiryInterval: 3600 } }),
      will: { topic: willTopic, payload: Buffer.from("offline"), qos: 1, retain: false },
    });
    await dev.subscribe(`devices/${id}/cmd`, { qos: 1 });
    const res = await ok("POST", `/devices/${encodeURIComponent(id)}/disconnect`);
    expect(res).toStrictEqual({ client_id: id, disconnected: true, will_published: true, session_kept: true });
    if (version === 5) expect((await dev.waitForDisconnect()).reasonCode).toBe(0x98);
    await dev.waitClosed();
    const [will] = await watcher.inbox.waitFor(1);
    expect(will!.payload.toString()).toBe("offline");
    const after = await ok("GET", `/devices/${encodeURIComponent(id)}`);
    expect(after.session).toMatchObject({ connected: false, subscriptions: [expect.objectContaining({ filter: `devices/${id}/cmd` })] });
    const row = await listUntil(`prefix=${encodeURIComponent(id)}&status=offline`, (items) => items[0]?.disconnect_reason === "admin-disconnect", "admin-disconnect in the registry");
    expect(row[0]).toMatchObject({ will_fired: true, disconnect_code: 0x98 });
    // Nothing to disconnect any more.
    expect((await api("POST", `/devices/${encodeURIComponent(id)}/disconnect`)).status).toBe(409);
    // The session is there for the client when it comes back.
    const back = await connect(broker().url, { version, route, clientId: id, clean: false, ...(version === 5 && { properties: { sessionExpiryInterval: 3600 } }) });
    expect(back.connack!.sessionPresent).toBe(true);
    await back.end();
  });
});

describe.each(VERSION_ROUTES)("DELETE /api/v1/devices/{id} (v%i, %s)", (version, route) => {
  it("clears the device's retained topics, ends its session without its Will, marks it decommissioned", async () => {
    const id = uid(`gone-v${version}${route[0]}`);
    const other = uid("neighbour");
    const watcher = await connect(broker().url, { version: 5 });
    await watcher.subscribe(`devices/${id}/will`, { qos: 1 });
    const neighbour = await connect(broker().url, { version: 5, clientId: other });
    await neighbour.publish(`devices/${other}/status`, "still here", { qos: 1, retain: true });
    const persistent = { clean: false, ...(version === 5 && { properties: { sessionExpiryInterval: 3600 } }) };
    const dev = await connect(broker().url, {
      version,
      route,
      clientId: id,
      ...persistent,
      will: { topic: `devices/${id}/will`, payload: Buffer.from("should never arrive"), qos: 1, retain: false },
    });
    await dev.publish(`devices/${id}/status`, "online", { qos: 1, retain: true });
    await dev.publish(`devices/${id}/config`, '{"rate":5}', { qos: 1, retain: true });
    await dev.subscribe(`devices/${id}/cmd`, { qos: 1 });

    // Registered (presence reaches D1 in batches), so the record can show the decommission.
    await listUntil(`prefix=${encodeURIComponent(id)}&status=online`, (items) => items.length === 1, "registered online");
    const dry = await ok("DELETE", `/devices/${encodeURIComponent(id)}?dry_run=true`);
    expect(dry).toMatchObject({ dry_run: true, session_ended: true, was_online: true, retained_cleared: { [`devices/${id}/#`]: 2 } });
    expect(dev.closed).toBe(false);

    const done = await ok("DELETE", `/devices/${encodeURIComponent(id)}`);
    expect(done).toMatchObject({
      client_id: id,
      dry_run: false,
      session_ended: true,
      was_online: true,
      subscriptions_removed: 1,
      will_discarded: true,
      retained_cleared: { [`devices/${id}/#`]: 2 },
      credentials_revoked: 0,
      keys_revoked: 0,
    });
    if (version === 5) expect((await dev.waitForDisconnect()).reasonCode).toBe(0x98);
    await dev.waitClosed();

    // Its retained topics are gone; the neighbour's stay.
    const late = await connect(broker().url, { version: 5 });
    await late.subscribe([`devices/${id}/#`, `devices/${other}/#`], { qos: 1 });
    const got = await late.inbox.waitFor(1);
    await late.inbox.settle(500);
    expect(late.inbox.topics()).toEqual([`devices/${other}/status`]);
    expect(got[0]!.payload.toString()).toBe("still here");
    // The Will was discarded.
    expect(await watcher.inbox.settle(300)).toEqual([]);

    const record = await ok("GET", `/devices/${encodeURIComponent(id)}`);
    expect(record.session).toBeNull();
    expect(record.device).toMatchObject({ online: false, disconnect_reason: "decommissioned", decommissioned_at: done.decommissioned_at });

    // No session any more: a reconnect with Clean Start 0 finds none.
    const back = await connect(broker().url, { version, route, clientId: id, ...persistent });
    expect(back.connack!.sessionPresent).toBe(false);
    await back.end();
    await neighbour.publish(`devices/${other}/status`, "", { qos: 1, retain: true });
  });
});

describe("refusals", () => {
  it("401 without the token, 400 for a bad filter, 404 for an unknown device", async () => {
    const none = await api("GET", "/devices", {});
    expect(none.status).toBe(401);
    expect(none.body.type).toBe("urn:edge-mqtt:problem:unauthorized");
    const bad = await api("DELETE", `/devices/x?retained=${encodeURIComponent("a/#/b")}`);
    expect(bad.status).toBe(400);
    expect(bad.body.type).toBe("urn:edge-mqtt:problem:invalid-topic-filter");
    const unknown = uid("unknown");
    for (const [method, path] of [
      ["GET", `/devices/${unknown}`],
      ["POST", `/devices/${unknown}/disconnect`],
      ["DELETE", `/devices/${unknown}`],
    ] as const) {
      const r = await api(method, path);
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.type).toBe("urn:edge-mqtt:problem:device-not-found");
    }
  });
});
