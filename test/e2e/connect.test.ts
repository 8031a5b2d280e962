import { request as httpRequest } from "node:http";
import mqtt, { type IConnackPacket } from "mqtt";
import { describe, expect, it } from "vitest";
import { ADMIN_AUTH, useBroker } from "./broker";

const broker = useBroker();

describe("MQTT over WebSocket (MQTT.js)", () => {
  it.each([
    [4, "/mqtt"],
    [5, "/mqtt"],
    [4, "/mqtt/<clientId>"],
    [5, "/mqtt/<clientId>"],
  ] as const)("protocol version %i via %s gets CONNACK", async (protocolVersion, path) => {
    const clientId = `e2e-connect-v${protocolVersion}-${path.length}`;
    const url = path === "/mqtt" ? broker().url : `${broker().url}/${encodeURIComponent(clientId)}`;
    const client = await mqtt
      .connectAsync(url, { protocolVersion, clientId, connectTimeout: 10_000, reconnectPeriod: 0 })
      .catch((err: Error) => {
        throw new Error(`${err.message}\n--- wrangler output ---\n${broker().output()}`);
      });
    try {
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync(true); // force: this test is about CONNACK, not the DISCONNECT handshake
    }
  });
});

describe("MQTT over WebSocket on / (MQTT.js's default path)", () => {
  it.each([4, 5] as const)("protocol version %i on ws://host:port/ gets CONNACK and a round trip", async (protocolVersion) => {
    const base = broker().url.replace(/\/mqtt$/, "/");
    const clientId = `e2e-root-v${protocolVersion}-${process.pid}-${Date.now().toString(36)}`;
    const client = await mqtt.connectAsync(base, { protocolVersion, clientId, connectTimeout: 10_000, reconnectPeriod: 0 });
    try {
      expect(client.connected).toBe(true);
      const topic = `e2e/root/${clientId}`;
      const got = new Promise<string>((resolve) => client.once("message", (_t, payload) => resolve(payload.toString())));
      await client.subscribeAsync(topic, { qos: 1 });
      await client.publishAsync(topic, "over /", { qos: 1 });
      expect(await got).toBe("over /");
    } finally {
      await client.endAsync(true);
    }
  });

  it("a plain GET / answers an index (JSON, or HTML for a browser), not an upgrade error", async () => {
    const json = await fetch(`${broker().httpUrl}/`);
    expect(json.status).toBe(200);
    expect(json.headers.get("content-type")).toMatch(/application\/json/);
    const body = (await json.json()) as { links: Record<string, string> };
    expect(body.links).toMatchObject({ health: "/health", metrics: "/metrics", api_docs: "/api/v1/docs", openapi: "/api/v1/openapi.json", mqtt: "/mqtt" });
    const html = await fetch(`${broker().httpUrl}/`, { headers: { Accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
    expect(html.status).toBe(200);
    expect(html.headers.get("content-type")).toMatch(/text\/html/);
    expect(await html.text()).toContain('href="/api/v1/docs"');
  });

  it("an upgrade on / without the mqtt subprotocol is refused like on /mqtt (400 problem)", async () => {
    // fetch() refuses to send Upgrade; a WebSocket handshake offering no subprotocol instead.
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${broker().httpUrl}/`, {
        headers: { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("upgrade", () => reject(new Error("upgraded without the mqtt subprotocol")));
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(400);
    expect((JSON.parse(body) as { type: string }).type).toBe("urn:edge-mqtt:problem:mqtt-subprotocol-required");
  });
});

describe("fast path: the client identifier in CONNECT differs from the URL's", () => {
  it("5.0: CONNACK 0x85 with a Reason String that says so", async () => {
    const url = `${broker().url}/${encodeURIComponent("the-url-id")}`;
    const client = mqtt.connect(url, { protocolVersion: 5, clientId: "the-connect-id", connectTimeout: 10_000, reconnectPeriod: 0 });
    client.on("error", () => undefined);
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no CONNACK")), 10_000);
      client.on("packetreceive", (p) => {
        if (p.cmd !== "connack") return;
        clearTimeout(timer);
        resolve(p as IConnackPacket);
      });
    });
    client.end(true);
    expect(connack.reasonCode).toBe(0x85);
    const reason = connack.properties?.reasonString ?? "";
    expect(reason).toContain('"the-connect-id"');
    expect(reason).toContain('"the-url-id"');
    expect(reason).toMatch(/differs from the one in the URL/);
  });

  it("3.1.1: CONNACK return code 2 (identifier rejected), no properties in 3.1.1", async () => {
    const url = `${broker().url}/${encodeURIComponent("url-id-4")}`;
    const client = mqtt.connect(url, { protocolVersion: 4, clientId: "connect-id-4", connectTimeout: 10_000, reconnectPeriod: 0 });
    client.on("error", () => undefined);
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no CONNACK")), 10_000);
      client.on("packetreceive", (p) => {
        if (p.cmd !== "connack") return;
        clearTimeout(timer);
        resolve(p as IConnackPacket);
      });
    });
    client.end(true);
    expect(connack.returnCode).toBe(2);
  });
});

describe("remote address", () => {
  // Locally, Miniflare's entry sets CF-Connecting-IP from the socket's peer, as Cloudflare's
  // edge does; the object that holds the socket keeps it (SocketState.remoteAddress) and
  // presence writes it to the device registry.
  it.each(["/mqtt", "/mqtt/<clientId>"] as const)("a connection via %s shows remote_address 127.0.0.1 in the registry", async (path) => {
    const clientId = `e2e-addr-${path.length}-${process.pid}-${Date.now().toString(36)}`;
    const url = path === "/mqtt" ? broker().url : `${broker().url}/${encodeURIComponent(clientId)}`;
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, connectTimeout: 10_000, reconnectPeriod: 0 });
    try {
      let address: string | null | undefined;
      const deadline = Date.now() + 15_000;
      while (address !== "127.0.0.1" && Date.now() < deadline) {
        const res = await fetch(`${broker().httpUrl}/api/v1/devices/${encodeURIComponent(clientId)}`, { headers: ADMIN_AUTH });
        if (res.ok) address = ((await res.json()) as { device: { remote_address: string | null } | null }).device?.remote_address;
        if (address !== "127.0.0.1") await new Promise((r) => setTimeout(r, 250));
      }
      expect(address).toBe("127.0.0.1");
    } finally {
      await client.endAsync(true);
    }
  });
});
