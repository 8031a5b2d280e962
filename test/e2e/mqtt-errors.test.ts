// Protocol errors and framing: garbage, a second CONNECT, text frames, malformed packets,
// packets split across or packed into WebSocket messages; one bad client never harms
// another. Against a real broker.
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import {
  VERSION_ROUTES,
  VERSIONS,
  closeAll,
  connect,
  connectPacket,
  mqttUrl,
  rawConnect,
  rawSession,
  topicBase,
  uid,
  utf8,
  type Route,
  type Version,
} from "./clients";
import { encodePacket } from "../../core/mqtt/codec";
import { concatBytes } from "../../core/util/bytes";

const broker = useBroker();
afterEach(closeAll);

/** The broker still routes messages: a fresh subscriber gets a fresh publish. */
async function brokerStillServes(version: Version, route: Route = "relay") {
  const topic = `${topicBase("alive")}/t`;
  const c = await connect(broker().url, { version, route });
  await c.subscribe(topic, { qos: 1 });
  await c.publish(topic, "alive", { qos: 1 });
  expect((await c.inbox.waitFor(1))[0]!.payload.toString()).toBe("alive");
  await c.end();
}

const GARBAGE: Array<[string, Uint8Array]> = [
  ["random bytes", new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37])],
  // 'G' reads as a PUBACK header whose Remaining Length is 'E' (69): a request this long completes it.
  ["an HTTP request", utf8("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: e2e\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")],
  ["reserved packet type 0", new Uint8Array([0x00, 0x02, 0xbe, 0xef])],
  ["a PUBLISH before CONNECT", new Uint8Array([0x30, 0x04, 0x00, 0x01, 0x61, 0x62])],
  ["a Remaining Length of five bytes", new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])],
  ["a CONNECT with a wrong protocol name", new Uint8Array([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x58, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00])],
  ["a PINGREQ before CONNECT", new Uint8Array([0xc0, 0x00])],
];

describe.each(["relay", "fast"] as const)("garbage as the first packet (%s)", (route) => {
  it.each(GARBAGE)("%s: connection closed, no CONNACK accepted [MQTT-3.1.0-1]", async (_name, bytes) => {
    const raw = await rawConnect(mqttUrl(broker().url, route, uid("garbage")), bytes);
    await raw.waitClosed();
    const connack = raw.packets.find((p) => p.type === "connack");
    if (connack && connack.type === "connack") expect(connack.reasonCode, raw.describe()).not.toBe(0);
  });

  it("a connection that sends no CONNECT is closed after the CONNECT timeout (10 s) (5.0 3.1.4)", async () => {
    const raw = await rawConnect(mqttUrl(broker().url, route, uid("silent")));
    expect(await raw.waitClosing(20_000)).toBeGreaterThanOrEqual(9_000);
  });

  it("half a CONNECT and then silence: closed after the CONNECT timeout", async () => {
    const raw = await rawConnect(mqttUrl(broker().url, route, uid("half")), new Uint8Array([0x10, 0x40, 0x00, 0x04]));
    expect(await raw.waitClosing(20_000)).toBeGreaterThanOrEqual(9_000);
  });

  it("the broker still serves other clients afterwards", async () => {
    for (const version of VERSIONS) await brokerStillServes(version, route);
  });
});

describe.each(VERSION_ROUTES)("protocol errors after CONNECT (v%i, %s)", (version, route) => {
  const session = () => {
    const clientId = uid("err");
    return rawSession(mqttUrl(broker().url, route, clientId), { version, clientId });
  };

  it("a second CONNECT closes the connection (5.0: DISCONNECT 0x82) [MQTT-3.1.0-2]", async () => {
    const raw = await session();
    raw.send(connectPacket({ version, clientId: uid("second") }));
    await raw.waitClosed();
    expect(raw.packets.filter((p) => p.type === "connack").length).toBe(1);
    if (version === 5) {
      const d = raw.packets.find((p) => p.type === "disconnect");
      expect(d && d.type === "disconnect" && d.reasonCode, raw.describe()).toBe(0x82);
    }
  });

  it("a text WebSocket message closes the connection [MQTT-6.0.0-1]", async () => {
    const raw = await session();
    raw.sendText("hello");
    await raw.waitClosed();
    const d = raw.packets.find((p) => p.type === "disconnect");
    if (version === 5) expect(d && d.type === "disconnect" && d.reasonCode, raw.describe()).toBe(0x81);
  });

  it("malformed packets close the connection: bad SUBSCRIBE flags, PUBLISH QoS 3, a server-only packet", async () => {
    const cases: Array<[string, Uint8Array]> = [
      // SUBSCRIBE with fixed header flags 0000 instead of 0010 [MQTT-3.8.1-1].
      ["SUBSCRIBE flags", new Uint8Array([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00])],
      // PUBLISH with both QoS bits set [MQTT-3.3.1-4].
      ["PUBLISH QoS 3", new Uint8Array([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])],
      // CONNACK from a client.
      ["CONNACK from the client", encodePacket({ type: "connack", sessionPresent: false, reasonCode: 0 }, version)],
    ];
    for (const [name, bytes] of cases) {
      const raw = await session();
      raw.send(bytes);
      const closed = await raw.waitClosed().catch((e: Error) => {
        throw new Error(`${name}: ${e.message}`);
      });
      expect(closed, name).toBeDefined();
      const d = raw.packets.find((p) => p.type === "disconnect");
      if (version === 5 && d && d.type === "disconnect") expect([0x81, 0x82], name).toContain(d.reasonCode);
    }
  });

  it("a bad packet from one client does not affect another connected client", async () => {
    const topic = `${topicBase("bystander")}/t`;
    const bystander = await connect(broker().url, { version, route });
    await bystander.subscribe(topic, { qos: 1 });
    const bad = await session();
    bad.send(new Uint8Array([0x00, 0x02, 0xbe, 0xef])); // reserved packet type 0: malformed
    await bad.waitClosed();
    const pub = await connect(broker().url, { version });
    await pub.publish(topic, "after the bad one", { qos: 1 });
    expect((await bystander.inbox.waitFor(1))[0]!.payload.toString()).toBe("after the bad one");
    expect(bystander.closed).toBe(false);
  });
});

describe.each(VERSION_ROUTES)("framing over WebSocket (v%i, %s) [MQTT-6.0.0-2]", (version, route) => {
  it("a packet split over many WebSocket messages and several packets in one message are both handled", async () => {
    const clientId = uid("frames");
    const raw = await rawConnect(mqttUrl(broker().url, route, clientId), undefined, version);
    const connect = encodePacket(connectPacket({ version, clientId }), version);
    for (const byte of connect) raw.send(new Uint8Array([byte])); // one byte per message
    await raw.waitForType("connack");

    const topic = `${topicBase("frames")}/t`;
    const subscribe = encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: topic, qos: 1 }] }, version);
    const big = new Uint8Array(5_000).map((_, i) => i & 0xff);
    const publish = encodePacket({ type: "publish", topic, payload: big, qos: 1, retain: false, dup: false, packetId: 2 }, version);
    const ping = encodePacket({ type: "pingreq" }, version);
    // SUBSCRIBE + PINGREQ together in one message.
    raw.send(concatBytes([subscribe, ping]));
    await raw.waitForType("suback");
    await raw.waitForType("pingresp");
    // A 5 KB PUBLISH in three uneven pieces, the last one packed with a PINGREQ.
    raw.send(publish.subarray(0, 3));
    raw.send(publish.subarray(3, 2_100));
    raw.send(concatBytes([publish.subarray(2_100), ping]));
    const puback = await raw.waitForType("puback");
    expect(puback.packetId).toBe(2);
    const echoed = await raw.waitForType("publish");
    expect(Buffer.from(echoed.payload).equals(Buffer.from(big))).toBe(true);
    expect(raw.packets.filter((p) => p.type === "pingresp").length).toBe(2);
    raw.send({ type: "puback", packetId: echoed.packetId! });
    raw.send({ type: "disconnect" });
    await raw.waitClosed();
  });
});

describe("WebSocket handshake and CONNECT refusals", () => {
  it("an unsupported protocol level gets CONNACK 0x01 (3.1.1 form) and a close [MQTT-3.1.2-2]", async () => {
    const bytes = encodePacket(connectPacket({ version: 4, clientId: uid("lvl") }), 4);
    bytes[8] = 7; // protocol level byte after the 2-byte length + "MQTT"
    const raw = await rawConnect(broker().url, bytes, 4);
    await raw.waitClosed();
    const connack = raw.packets.find((p) => p.type === "connack");
    expect(connack && connack.type === "connack" && connack.reasonCode, raw.describe()).toBe(0x01);
  });

  it("the upgrade needs the mqtt subprotocol; plain HTTP gets 426", async () => {
    const plain = await fetch(broker().httpUrl + "/mqtt");
    expect(plain.status).toBe(426);
    const WebSocket = (await import("ws")).default;
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(broker().url, "not-mqtt");
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => {
        ws.close();
        reject(new Error("upgrade without the mqtt subprotocol was accepted"));
      });
      ws.on("error", () => undefined);
    });
    expect(status).toBe(400);
  });

  it("mqttv3.1 is accepted as a subprotocol and echoed", async () => {
    const WebSocket = (await import("ws")).default;
    const ws = new WebSocket(broker().url, ["mqttv3.1"]);
    await new Promise<void>((resolve, reject) => {
      ws.on("open", () => resolve());
      ws.on("error", reject);
    });
    expect(ws.protocol).toBe("mqttv3.1");
    ws.close();
  });
});
