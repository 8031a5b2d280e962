// Device presence end to end, against the broker as `npm start` runs it, read through
// GET /api/v1/devices: MQTT.js clients on both routes show online, then offline with the
// right reason after a clean DISCONNECT (normal), a dropped socket (connection-lost, Will
// fired) and a SIGKILL of the whole broker (lease-expired, within the lease). Leases are
// renewed while connections live, also without keep alive; presence events go out on
// $SYS/broker/clients/<id>/connected|disconnected.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getFreePort, startBroker, type Broker } from "../../scripts/broker-process.mjs";
import { ADMIN_AUTH, createCredential, sysAdmin, TEST_VARS, useBroker } from "./broker";
import { closeAll, connect, ROUTES, sleep, uid, type Route } from "./clients";

const LEASE_S = 6;
const FLUSH_MS = 200;
const VARS = { PRESENCE_LEASE: String(LEASE_S), PRESENCE_FLUSH_MS: String(FLUSH_MS) };

interface DeviceJson {
  client_id: string;
  online: boolean;
  transport: string;
  disconnect_reason: string | null;
  disconnect_code: number | null;
  will_fired: boolean;
  protocol_version: number;
  username: string | null;
  connection_count: number;
  session_expires_at: string | null;
  lease_expires_at: string | null;
  disconnected_at: string | null;
}

async function listDevices(httpUrl: string, query: string): Promise<DeviceJson[]> {
  const res = await fetch(`${httpUrl}/api/v1/devices?${query}`, { headers: ADMIN_AUTH });
  if (!res.ok) throw new Error(`GET /api/v1/devices?${query}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { items: DeviceJson[] }).items;
}

async function device(httpUrl: string, id: string): Promise<DeviceJson | undefined> {
  return (await listDevices(httpUrl, `prefix=${encodeURIComponent(id)}`)).find((d) => d.client_id === id);
}

/** Poll until `pred` holds for the device; fail with what it last was. */
async function waitForDevice(httpUrl: string, id: string, pred: (d: DeviceJson) => boolean, what: string, timeoutMs = 10_000): Promise<DeviceJson> {
  const deadline = Date.now() + timeoutMs;
  let last: DeviceJson | undefined;
  for (;;) {
    last = await device(httpUrl, id);
    if (last && pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`${id}: not ${what} within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

const isOnline = (d: DeviceJson) => d.online;
const isOffline = (d: DeviceJson) => !d.online;

describe("presence through the devices API", () => {
  const broker = useBroker({ vars: VARS });
  afterAll(closeAll);

  it.each(ROUTES)("%s route: online, listed by status=online, then a clean DISCONNECT: normal, session expiry written", async (route: Route) => {
    const { url, httpUrl } = broker();
    const id = uid(`pres-${route}`);
    const alice = await createCredential(broker(), "alice");
    const c = await connect(url, { version: 5, route, clientId: id, ...alice, clean: false, properties: { sessionExpiryInterval: 600 } });
    const on = await waitForDevice(httpUrl, id, isOnline, "online");
    expect(on).toMatchObject({ transport: "mqtt", protocol_version: 5, username: "alice", disconnect_reason: null });
    expect((await listDevices(httpUrl, `status=online&prefix=${id}`)).map((d) => d.client_id)).toEqual([id]);
    const before = on.connection_count;
    await c.end();
    const off = await waitForDevice(httpUrl, id, isOffline, "offline");
    expect(off).toMatchObject({ disconnect_reason: "normal", disconnect_code: 0, will_fired: false, connection_count: before });
    const expiresIn = Date.parse(off.session_expires_at!) - Date.parse(off.disconnected_at!);
    expect(expiresIn).toBe(600_000);
    expect(await listDevices(httpUrl, `status=online&prefix=${id}`)).toEqual([]);
  });

  it.each(ROUTES)("%s route: a dropped socket: connection-lost, the Will fired; the session ended with it (no expiry)", async (route: Route) => {
    const { url, httpUrl } = broker();
    const id = uid(`drop-${route}`);
    const c = await connect(url, { version: 4, route, clientId: id, clean: true, will: { topic: `will/${id}`, payload: Buffer.from("gone"), qos: 0, retain: false } });
    await waitForDevice(httpUrl, id, isOnline, "online");
    await c.drop();
    const off = await waitForDevice(httpUrl, id, isOffline, "offline");
    expect(off).toMatchObject({ disconnect_reason: "connection-lost", will_fired: true, session_expires_at: null, protocol_version: 4 });
  });

  it.each(ROUTES)("%s route: a live connection stays online past its lease (renewed), also with keep alive 0", async (route: Route) => {
    const { url, httpUrl } = broker();
    const pinging = uid(`ka-${route}`);
    const silent = uid(`ka0-${route}`);
    const a = await connect(url, { version: 5, route, clientId: pinging, keepalive: 2 });
    // 3.1.1 with keep alive 0: the client sends nothing at all; the holder's alarm renews.
    const b = await connect(url, { version: 4, route, clientId: silent, keepalive: 0 });
    await waitForDevice(httpUrl, pinging, isOnline, "online");
    await waitForDevice(httpUrl, silent, isOnline, "online");
    const firstLease = Date.parse((await device(httpUrl, silent))!.lease_expires_at!);
    await sleep(LEASE_S * 1000 * 1.6);
    const [p, s] = [await device(httpUrl, pinging), await device(httpUrl, silent)];
    expect(p).toMatchObject({ online: true });
    expect(s).toMatchObject({ online: true });
    expect(Date.parse(s!.lease_expires_at!)).toBeGreaterThan(firstLease);
    await a.end();
    await b.end();
  }, 30_000);

  it("$SYS/broker/clients/+/connected and /disconnected carry the events", async () => {
    const { url } = broker();
    const watcher = await connect(url, { version: 5, clientId: uid("sys-watch"), ...(await sysAdmin(broker())) });
    await watcher.client.subscribeAsync(["$SYS/broker/clients/+/connected", "$SYS/broker/clients/+/disconnected"], { qos: 0 });
    const id = uid("sys-dev");
    const c = await connect(url, { version: 5, route: "fast", clientId: id, ...(await createCredential(broker(), "bob")) });
    await c.end();
    const connected = await watcher.inbox.waitForTopic(`$SYS/broker/clients/${id}/connected`);
    expect(JSON.parse(connected.payload.toString())).toMatchObject({ event: "connected", clientId: id, transport: "mqtt", protocolVersion: 5, username: "bob" });
    expect(connected.retain).toBe(false);
    const disconnected = await watcher.inbox.waitForTopic(`$SYS/broker/clients/${id}/disconnected`);
    expect(JSON.parse(disconnected.payload.toString())).toMatchObject({ event: "disconnected", clientId: id, reason: "normal", code: 0 });
    await watcher.end();
  });
});

describe("presence after a SIGKILL of the whole broker", () => {
  let broker: Broker | undefined;
  let persistTo: string | undefined;
  let log = "";
  afterAll(async () => {
    await closeAll();
    await broker?.stop();
    if (persistTo) await rm(persistTo, { recursive: true, force: true });
  });

  it("devices that were online show offline, lease-expired, within the lease after the restart", async () => {
    persistTo = await mkdtemp(join(tmpdir(), "edge-mqtt-presence-"));
    const port = await getFreePort();
    const start = () => startBroker({ port, persistTo: persistTo!, onOutput: (c: string) => (log += c), vars: { ...TEST_VARS, ...VARS } });
    broker = await start();
    const url = `ws://127.0.0.1:${port}/mqtt`;
    const httpUrl = `http://127.0.0.1:${port}`;
    const ids = { relay: uid("kill-relay"), fast: uid("kill-fast") };
    for (const route of ROUTES) {
      // Reconnects off: nobody comes back after the restart, so only the lease can tell.
      await connect(url, { version: 5, route, clientId: ids[route], keepalive: 30 });
      await waitForDevice(httpUrl, ids[route], isOnline, "online");
    }
    try {
      process.kill(-broker.pid, "SIGKILL");
    } catch {
      // gone already
    }
    const killedAt = Date.now();
    await broker.exited;
    await broker.stop();
    await closeAll();
    broker = await start();
    for (const route of ROUTES) {
      const off = await waitForDevice(httpUrl, ids[route], isOffline, "offline after the kill", 30_000);
      expect(off.disconnect_reason, log.slice(-2000)).toBe("lease-expired");
      // Offline at the latest one lease after the kill (plus the flush), counted from the last renewal.
      expect(Date.parse(off.disconnected_at!)).toBeLessThanOrEqual(killedAt + LEASE_S * 1000 + FLUSH_MS);
    }
  }, 120_000);
});
