// Plain /mqtt through the Worker relay (worker/relay.ts): the Worker holds the client's socket,
// reads CONNECT and pipes to the session object's own socket. MQTT.js, paho and raw clients,
// against a real broker; and MQTT_RELAY = "object" still going through a ConnectionDO.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { encodePacket } from "../../core/mqtt/codec";
import { useBroker, type TestBroker } from "./broker";
import { closeAll, connect, connectPacket, rawConnect, rawSession, topicBase, uid, utf8 } from "./clients";
import { pahoAvailable, PYTHON } from "./python";

const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0" } });
afterEach(closeAll);

interface Counts {
  requests: number;
  webSocketMessages: number;
}
interface Metrics {
  byKind: Record<"session" | "connection", Counts>;
}

async function metrics(b: TestBroker): Promise<Metrics> {
  const res = await fetch(`${b.httpUrl}/metrics`);
  expect(res.status).toBe(200);
  return (await res.json()) as Metrics;
}

/** Once the objects have reported (about once a second), the connection objects' requests since `before`. */
async function connectionRequestsSince(b: TestBroker, before: Metrics): Promise<number> {
  await new Promise((r) => setTimeout(r, 2_500));
  const after = await metrics(b);
  return after.byKind.connection.requests - before.byKind.connection.requests;
}

describe("MQTT.js on plain /mqtt through the Worker relay", () => {
  it("a message goes both ways, and no ConnectionDO is called", async () => {
    const before = await metrics(broker());
    const topic = `${topicBase("relay")}/a`;
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(topic, { qos: 1 });
    const pub = await connect(broker().url, { version: 4 });
    await pub.publish(topic, "through the Worker", { qos: 1 });
    expect((await sub.inbox.waitFor(1))[0]!.payload.toString()).toBe("through the Worker");
    await pub.end();
    await sub.end();
    expect(await connectionRequestsSince(broker(), before)).toBe(0);
  });

  it("5.0, empty client identifier: the session assigns one (CONNACK Assigned Client Identifier) and it can be resumed [MQTT-3.1.3-6]", async () => {
    const first = await connect(broker().url, { version: 5, clientId: "", clean: true, properties: { sessionExpiryInterval: 300 } });
    const assigned = first.connack?.properties?.assignedClientIdentifier;
    expect(assigned).toMatch(/^[0-9a-f-]{36}$/);
    const topic = `${topicBase("assigned")}/x`;
    await first.subscribe(topic, { qos: 1 });
    await first.end();
    // The fast path and the relay reach the same session object.
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const again = await connect(broker().url, { version: 5, clientId: assigned!, route: "fast", ...persistent });
    expect(again.connack?.sessionPresent).toBe(true);
    const viaRelay = await connect(broker().url, { version: 5, clientId: assigned!, ...persistent });
    expect(viaRelay.connack?.sessionPresent).toBe(true);
    await again.waitClosed(); // taken over
  });

  it("3.1.1, empty client identifier with Clean Session: accepted; without: refused with return code 2 [MQTT-3.1.3-8]", async () => {
    const ok = await connect(broker().url, { version: 4, clientId: "", clean: true });
    expect(ok.connack?.returnCode ?? 0).toBe(0);
    const raw = await rawConnect(broker().url, connectPacket({ version: 4, clientId: "", clean: false }));
    const connack = await raw.waitForType("connack");
    expect(connack.reasonCode).toBe(2);
    await raw.waitClosed();
  });

  it.each([4, 5] as const)("v%i: the Will is published when the client's connection drops without DISCONNECT [MQTT-3.1.2-8]", async (version) => {
    const topic = `${topicBase("will")}/gone`;
    const watcher = await connect(broker().url, { version: 5 });
    await watcher.subscribe(topic, { qos: 1 });
    const doomed = await connect(broker().url, { version, will: { topic, payload: Buffer.from("vanished"), qos: 1, retain: false } });
    await doomed.drop();
    expect((await watcher.inbox.waitFor(1, 10_000))[0]!.payload.toString()).toBe("vanished");
  });

  it("a graceful DISCONNECT through the relay: no Will", async () => {
    const topic = `${topicBase("nowill")}/x`;
    const watcher = await connect(broker().url, { version: 5 });
    await watcher.subscribe(topic, { qos: 1 });
    const polite = await connect(broker().url, { version: 4, will: { topic, payload: Buffer.from("should not"), qos: 1, retain: false } });
    await polite.end();
    expect(await watcher.inbox.settle(1_500)).toHaveLength(0);
  });

  it("takeover: a second connection with the same identifier closes the first (5.0: DISCONNECT 0x8E), both through the relay [MQTT-3.1.4-3]", async () => {
    const clientId = uid("takeover");
    const first = await connect(broker().url, { version: 5, clientId });
    const second = await connect(broker().url, { version: 5, clientId });
    expect((await first.waitForDisconnect()).reasonCode).toBe(0x8e);
    await first.waitClosed();
    const topic = `${topicBase("after-takeover")}/x`;
    await second.subscribe(topic, { qos: 1 });
    await second.publish(topic, "still here", { qos: 1 });
    expect((await second.inbox.waitFor(1))[0]!.payload.toString()).toBe("still here");
  });

  it("200 packets in 200 WebSocket messages, then DISCONNECT and the close at once: all arrive in order, the close after them, no Will", async () => {
    const topic = `${topicBase("burst")}/x`;
    const watcher = await connect(broker().url, { version: 5 });
    await watcher.subscribe(`${topic}/#`, { qos: 1 });
    const clientId = uid("burst");
    const raw = await rawSession(broker().url, {
      version: 4,
      clientId,
      will: { topic: `${topic}/will`, payload: utf8("should not"), qos: 1, retain: false },
    });
    for (let i = 0; i < 200; i++) {
      raw.send({ type: "publish", topic: `${topic}/m`, payload: utf8(String(i)), qos: 1, retain: false, dup: false, packetId: i + 1 });
    }
    raw.send({ type: "disconnect" });
    raw.close();
    const got = await watcher.inbox.waitFor(200, 15_000);
    expect(got.map((m) => m.payload.toString())).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
    expect((await watcher.inbox.settle(1_000)).filter((m) => m.topic.endsWith("/will"))).toHaveLength(0);
  });

  it("a 900 kB message up to the broker and back down, both through the relay", async () => {
    const topic = `${topicBase("big")}/x`;
    const c = await connect(broker().url, { version: 5 });
    await c.subscribe(topic, { qos: 1 });
    const payload = Buffer.alloc(900_000);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    await c.publish(topic, payload, { qos: 1 });
    const got = (await c.inbox.waitFor(1, 20_000))[0]!;
    expect(got.payload.equals(payload)).toBe(true);
  });
});

describe("the first packet, read by the Worker", () => {
  it("a CONNECT split over several WebSocket messages, with packets pipelined behind it in the last one", async () => {
    const clientId = uid("split");
    const topic = `${topicBase("split")}/x`;
    const connectBytes = encodePacket(connectPacket({ version: 4, clientId }), 4);
    const subscribe = encodePacket({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: topic, qos: 0 }] }, 4);
    const publish = encodePacket({ type: "publish", topic, payload: utf8("pipelined"), qos: 0, retain: false, dup: false }, 4);
    const raw = await rawConnect(broker().url);
    raw.send(connectBytes.subarray(0, 1));
    raw.send(connectBytes.subarray(1, 5));
    raw.send(Buffer.concat([connectBytes.subarray(5), subscribe, publish]));
    expect((await raw.waitForType("connack")).reasonCode).toBe(0);
    await raw.waitForType("suback");
    expect(new TextDecoder().decode((await raw.waitForPublish()).payload)).toBe("pipelined");
  });

  it.each([
    ["random bytes", new Uint8Array([0xde, 0xad, 0xbe, 0xef])],
    ["a PUBLISH", new Uint8Array([0x30, 0x04, 0x00, 0x01, 0x61, 0x62])],
    ["a PINGREQ", new Uint8Array([0xc0, 0x00])],
  ])("%s before CONNECT: closed (1002) without CONNACK [MQTT-3.1.0-1]", async (_name, bytes) => {
    const raw = await rawConnect(broker().url, bytes);
    const closed = await raw.waitClosed();
    expect(closed.code).toBe(1002);
    expect(raw.packets).toHaveLength(0);
  });

  it("a text message before CONNECT: closed (1002) [MQTT-6.0.0-1]", async () => {
    const raw = await rawConnect(broker().url);
    raw.sendText("hello");
    expect((await raw.waitClosed()).code).toBe(1002);
  });

  it("a Remaining Length over the maximum packet size: closed before the bytes arrive", async () => {
    // 0x10, then a Remaining Length of 200 MB: refused on the header, nothing is held.
    const raw = await rawConnect(broker().url, new Uint8Array([0x10, 0x80, 0x80, 0x80, 0x60]));
    expect((await raw.waitClosed()).code).toBe(1002);
  });

  it("a malformed CONNECT (wrong protocol name): closed, no CONNACK accepted", async () => {
    const raw = await rawConnect(broker().url, new Uint8Array([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x58, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00]));
    await raw.waitClosed();
    expect(raw.packets.filter((p) => p.type === "connack" && p.reasonCode === 0)).toHaveLength(0);
  });

  it("a CONNECT with protocol level 6: CONNACK return code 1 (unacceptable protocol version), then closed [MQTT-3.1.2-2]", async () => {
    const bytes = encodePacket(connectPacket({ version: 4, clientId: uid("level6") }), 4);
    bytes[8] = 6; // the protocol level byte: after 0x10, the length, 0x00 0x04 "MQTT"
    const raw = await rawConnect(broker().url, bytes, 4);
    const connack = await raw.waitForType("connack");
    expect(connack.reasonCode).toBe(1);
    await raw.waitClosed();
  });

  it("the session's protocol errors reach the client: a second CONNECT closes the connection (5.0: DISCONNECT 0x82) [MQTT-3.1.0-2]", async () => {
    const raw = await rawSession(broker().url, { version: 5, clientId: uid("second") });
    raw.send(connectPacket({ version: 5, clientId: uid("other") }));
    const disconnect = await raw.waitForType("disconnect");
    expect(disconnect.reasonCode).toBe(0x82);
    await raw.waitClosed();
  });
});

describe.skipIf(!pahoAvailable)("paho-mqtt on plain /mqtt through the Worker relay", () => {
  const SCRIPT = fileURLToPath(new URL("./paho/paho_check.py", import.meta.url));
  it.each([4, 5])("MQTT %i: connect, retained, QoS 0/1/2, Will on a dropped socket", async (version) => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [SCRIPT, "127.0.0.1", String(broker().port), String(version)], { timeout: 60_000 }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      );
    });
    const report = JSON.parse(stdout) as { connack: number; received: { topic: string; payload: string; qos: number }[] };
    expect(report.connack).toBe(0);
    const byLevel = Object.fromEntries(report.received.map((m) => [m.topic.split("/").at(-1), m]));
    expect(byLevel.q2).toMatchObject({ payload: "hello 2", qos: 2 });
    expect(byLevel.will).toMatchObject({ payload: "gone", qos: 1 });
    expect(report.received).toHaveLength(5);
  });
});

describe('MQTT_RELAY = "object": plain /mqtt through a ConnectionDO, as before', () => {
  const objectBroker = useBroker({ vars: { MQTT_RELAY: "object" } });

  it("connects, relays both ways, fires the Will, and the ConnectionDO is called", async () => {
    const before = await metrics(objectBroker());
    const topic = `${topicBase("object")}/x`;
    const sub = await connect(objectBroker().url, { version: 5, clientId: "" });
    expect(sub.connack?.properties?.assignedClientIdentifier).toBeTruthy();
    await sub.subscribe(`${topic}/#`, { qos: 1 });
    const pub = await connect(objectBroker().url, { version: 4, will: { topic: `${topic}/will`, payload: Buffer.from("bye"), qos: 1, retain: false } });
    await pub.publish(`${topic}/m`, "via the object", { qos: 1 });
    await pub.drop();
    const got = await sub.inbox.waitFor(2, 10_000);
    expect(got.map((m) => m.payload.toString())).toEqual(["via the object", "bye"]);
    await sub.end();
    expect(await connectionRequestsSince(objectBroker(), before)).toBeGreaterThan(0);
  });
});
