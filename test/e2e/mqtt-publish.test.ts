// PUBLISH: QoS 0/1/2 both ways, QoS downgrade, ordering, payloads, 5.0 properties and topic
// aliases, message expiry, invalid topics and packet size, against a real broker.
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import {
  VERSION_ROUTES,
  VERSIONS,
  closeAll,
  connect,
  mqttUrl,
  rawSession,
  sleep,
  topicBase,
  uid,
  utf8,
  type Version,
} from "./clients";

const broker = useBroker();
afterEach(closeAll);

const QUIET_MS = 600;

describe.each(VERSION_ROUTES)("QoS (v%i, %s)", (version, route) => {
  it("every publish QoS x subscription QoS: delivered once with min(publish, granted) [MQTT-3.8.4-8]", async () => {
    const base = topicBase("qos");
    const sub = await connect(broker().url, { version, route });
    for (const q of [0, 1, 2] as const) expect(await sub.subscribe(`${base}/s${q}`, { qos: q })).toEqual([q]);
    const pub = await connect(broker().url, { version, route });
    for (const p of [0, 1, 2] as const) {
      for (const s of [0, 1, 2] as const) await pub.publish(`${base}/s${s}`, `p${p}s${s}`, { qos: p });
    }
    await sub.inbox.waitFor(9);
    await sub.inbox.settle(QUIET_MS);
    expect(sub.inbox.length, sub.inbox.describe()).toBe(9);
    for (const m of sub.inbox.messages) {
      const [, p, s] = /p(\d)s(\d)/.exec(m.payload.toString())!.map(Number);
      expect(m.qos, `${m.payload} delivered with QoS ${m.qos}`).toBe(Math.min(p!, s!));
      expect(m.retain).toBe(false);
      expect(m.dup).toBe(false);
    }
  });

  it("QoS 2 from the client completes PUBREC/PUBREL/PUBCOMP and is delivered once", async () => {
    const base = topicBase("qos2");
    const sub = await connect(broker().url, { version, route });
    await sub.subscribe(`${base}/t`, { qos: 2 });
    const pub = await connect(broker().url, { version, route });
    for (let i = 0; i < 5; i++) await pub.publish(`${base}/t`, `m${i}`, { qos: 2 });
    await sub.inbox.waitFor(5);
    await sub.inbox.settle(QUIET_MS);
    expect(sub.inbox.payloads()).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(sub.packets.filter((p) => p.cmd === "pubrel").length).toBe(5);
  });
});

describe.each(VERSIONS)("publish (v%i)", (version) => {
  it("a retransmitted QoS 2 PUBLISH (same packet id, DUP) is delivered only once [MQTT-4.3.3-9]", async () => {
    const base = topicBase("qos2-dup");
    const sub = await connect(broker().url, { version });
    await sub.subscribe(`${base}/t`, { qos: 2 });
    const clientId = uid("raw-q2");
    const raw = await rawSession(mqttUrl(broker().url, "fast", clientId), { version, clientId });
    const publish = { type: "publish", topic: `${base}/t`, payload: utf8("once"), qos: 2, retain: false, packetId: 42 } as const;
    raw.send({ ...publish, dup: false });
    await raw.waitForType("pubrec");
    raw.send({ ...publish, dup: true });
    await raw.waitForPacket((p) => p.type === "pubrec" && raw.packets.filter((q) => q.type === "pubrec").length >= 2, 5_000, "second PUBREC");
    raw.send({ type: "pubrel", packetId: 42 });
    const pubcomp = await raw.waitForType("pubcomp");
    expect(pubcomp.packetId).toBe(42);
    expect(pubcomp.reasonCode ?? 0).toBe(0);
    await sub.inbox.waitFor(1);
    await sub.inbox.settle(QUIET_MS);
    expect(sub.inbox.payloads()).toEqual(["once"]);
    // A PUBREL for an unknown identifier still gets PUBCOMP (5.0: 0x92).
    raw.send({ type: "pubrel", packetId: 43 });
    const second = await raw.waitForPacket((p) => p.type === "pubcomp" && p.packetId === 43);
    if (version === 5) expect((second as { reasonCode?: number }).reasonCode).toBe(0x92);
  });

  it("keeps per-topic order: 200 QoS 1 messages from one publisher arrive in order", async () => {
    const base = topicBase("order");
    const sub = await connect(broker().url, { version, route: "fast" });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    const pub = await connect(broker().url, { version });
    const n = 200;
    // 5.0: stay inside the server's Receive Maximum (64) as the client must [MQTT-3.3.4-7];
    // 3.1.1 has no such limit, the client may pipeline freely.
    const window = version === 5 ? 50 : n;
    for (let start = 0; start < n; start += window) {
      const batch: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(n, start + window); i++) batch.push(pub.publish(`${base}/t`, String(i), { qos: 1 }));
      await Promise.all(batch);
    }
    await sub.inbox.waitFor(n, 15_000);
    const got = sub.inbox.payloads().map(Number);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(pub.closed).toBe(false);
  });

  it("payloads: empty, 100 KB, and every byte value 0-255 arrive intact", async () => {
    const base = topicBase("payload");
    const sub = await connect(broker().url, { version });
    await sub.subscribe(`${base}/+`, { qos: 1 });
    const pub = await connect(broker().url, { version, route: "fast" });
    const big = Buffer.alloc(100 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await pub.publish(`${base}/empty`, Buffer.alloc(0), { qos: 1 });
    await pub.publish(`${base}/big`, big, { qos: 1 });
    await pub.publish(`${base}/bytes`, bytes, { qos: 0 });
    await sub.inbox.waitFor(3, 8_000);
    const by = Object.fromEntries(sub.inbox.messages.map((m) => [m.topic.split("/").pop(), m.payload]));
    expect(by.empty!.length).toBe(0);
    expect(by.big!.equals(big), "100 KB payload differs").toBe(true);
    expect(by.bytes!.equals(bytes), "binary payload differs").toBe(true);
  });

  it("a PUBLISH with a wildcard in its topic closes the connection [MQTT-3.3.2-2]", async () => {
    for (const route of ["relay", "fast"] as const) {
      for (const topic of ["a/+/b", "a/#"]) {
        const clientId = uid("wild-pub");
        const raw = await rawSession(mqttUrl(broker().url, route, clientId), { version, clientId });
        raw.send({ type: "publish", topic, payload: utf8("x"), qos: 0, retain: false, dup: false });
        await raw.waitClosed();
        const d = raw.packets.find((p) => p.type === "disconnect");
        if (version === 5 && d && d.type === "disconnect") expect(d.reasonCode).toBe(0x90);
        expect(raw.packets.some((p) => p.type === "publish")).toBe(false);
      }
    }
  });

  it("a packet larger than the broker's Maximum Packet Size is refused (5.0: 0x95) and the broker keeps serving", async () => {
    const limit = 1_048_576; // wrangler.toml MAX_PACKET_SIZE
    for (const route of ["relay", "fast"] as const) {
      const clientId = uid("too-big");
      const raw = await rawSession(mqttUrl(broker().url, route, clientId), { version, clientId });
      if (version === 5) {
        // What the broker announced in CONNACK.
        const connack = raw.packets.find((p) => p.type === "connack");
        expect(connack?.type === "connack" && connack.properties?.maximumPacketSize).toBe(limit);
      }
      // A PUBLISH of limit + 100 bytes, sent whole.
      const payload = new Uint8Array(limit + 100);
      raw.send({ type: "publish", topic: "big/one", payload, qos: 0, retain: false, dup: false });
      const closed = await raw.waitClosed(10_000);
      expect(closed).toBeDefined();
      const d = raw.packets.find((p) => p.type === "disconnect");
      // 5.0 4.13.1: SHOULD send DISCONNECT with the reason code; both routes do.
      if (version === 5) expect(d && d.type === "disconnect" && d.reasonCode, `${route}: ${raw.describe()}`).toBe(0x95);
    }
    // Only the header of a 2 MB packet: refused as soon as its length is known.
    const clientId = uid("too-big-hdr");
    const raw = await rawSession(mqttUrl(broker().url, "fast", clientId), { version, clientId });
    raw.send(new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x01, 0x00, 0x01, 0x61]));
    await raw.waitClosed();
    const d = raw.packets.find((p) => p.type === "disconnect");
    if (version === 5) expect(d && d.type === "disconnect" && d.reasonCode, raw.describe()).toBe(0x95);

    const ok = await connect(broker().url, { version });
    const topic = `${topicBase("after-big")}/t`;
    await ok.subscribe(topic, { qos: 1 });
    await ok.publish(topic, "fine", { qos: 1 });
    await ok.inbox.waitFor(1);
  });

  it("a 3.1.1 and a 5.0 client exchange messages", async () => {
    const base = topicBase("mixed");
    const other: Version = version === 5 ? 4 : 5;
    const sub = await connect(broker().url, { version: other });
    await sub.subscribe(`${base}/t`, { qos: 2 });
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "across versions", { qos: 2 });
    expect((await sub.inbox.waitFor(1))[0]!.payload.toString()).toBe("across versions");
  });
});

describe("5.0 publish features", () => {
  it("PUBACK says 0x10 No matching subscribers when nobody subscribes, 0x00 otherwise", async () => {
    const topic = `${topicBase("nomatch")}/t`;
    const pub = await connect(broker().url, { version: 5 });
    const pubacks = () => pub.packets.filter((p) => p.cmd === "puback") as Array<{ reasonCode?: number }>;
    await pub.publish(topic, "x", { qos: 1 });
    expect(pubacks()[0]?.reasonCode).toBe(0x10);
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(topic, { qos: 1 });
    await pub.publish(topic, "y", { qos: 1 });
    expect(pubacks()[1]?.reasonCode ?? 0).toBe(0);
  });

  it("message properties are forwarded: user properties, content type, response topic, correlation data, payload format", async () => {
    const base = topicBase("props");
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    const v4 = await connect(broker().url, { version: 4 });
    await v4.subscribe(`${base}/t`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5, route: "fast" });
    const correlationData = Buffer.from([0, 1, 2, 254, 255]);
    await pub.publish(`${base}/t`, "{}", {
      qos: 1,
      properties: {
        payloadFormatIndicator: true,
        contentType: "application/json",
        responseTopic: `${base}/reply`,
        correlationData,
        userProperties: { a: "1", b: ["x", "y"] },
      },
    });
    const [m] = await sub.inbox.waitFor(1);
    const p = m!.properties;
    expect(p.payloadFormatIndicator).toBe(true);
    expect(p.contentType).toBe("application/json");
    expect(p.responseTopic).toBe(`${base}/reply`);
    expect(Buffer.from(p.correlationData!).equals(correlationData)).toBe(true);
    // Order and repetition of user properties are kept [MQTT-3.3.2-18].
    expect(p.userProperties).toEqual({ a: "1", b: ["x", "y"] });
    // The 3.1.1 subscriber gets the message, without properties.
    const [m4] = await v4.inbox.waitFor(1);
    expect(m4!.payload.toString()).toBe("{}");
  });

  it("topic aliases towards the client: first PUBLISH carries topic + alias, later ones the alias only", async () => {
    const base = topicBase("alias-out");
    const sub = await connect(broker().url, { version: 5, properties: { topicAliasMaximum: 5 } });
    await sub.subscribe(`${base}/+`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5 });
    for (const t of ["a", "a", "b", "a", "b"]) await pub.publish(`${base}/${t}`, t, { qos: 1 });
    await sub.inbox.waitFor(5);
    // What the application sees: full topics.
    expect(sub.inbox.topics()).toEqual(["a", "a", "b", "a", "b"].map((t) => `${base}/${t}`));
    // What was on the wire.
    const wire = sub.packets
      .filter((p) => p.cmd === "publish")
      .map((p) => ({ topic: String((p as { topic: string }).topic), alias: (p as { properties?: { topicAlias?: number } }).properties?.topicAlias }));
    expect(wire[0]!.topic).toBe(`${base}/a`);
    expect(wire[0]!.alias).toBeGreaterThanOrEqual(1);
    expect(wire[0]!.alias).toBeLessThanOrEqual(5);
    expect(wire[1]).toEqual({ topic: "", alias: wire[0]!.alias });
    expect(wire[2]!.topic).toBe(`${base}/b`);
    expect(wire[2]!.alias).not.toBe(wire[0]!.alias);
    expect(wire[3]).toEqual({ topic: "", alias: wire[0]!.alias });
    expect(wire[4]).toEqual({ topic: "", alias: wire[2]!.alias });
  });

  it("no topic aliases towards a client that did not announce a Topic Alias Maximum", async () => {
    const base = topicBase("alias-none");
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${base}/t`, { qos: 0 });
    const pub = await connect(broker().url, { version: 5 });
    for (let i = 0; i < 3; i++) await pub.publish(`${base}/t`, "x", { qos: 1 });
    await sub.inbox.waitFor(3);
    for (const p of sub.packets.filter((q) => q.cmd === "publish")) {
      expect((p as { properties?: { topicAlias?: number } }).properties?.topicAlias).toBeUndefined();
    }
  });

  it.each(["relay", "fast"] as const)("topic aliases from the client (%s) are resolved by the broker", async (route) => {
    const base = topicBase("alias-in");
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${base}/+`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5, route });
    expect(pub.connack?.properties?.topicAliasMaximum).toBeGreaterThan(0);
    await pub.publish(`${base}/x`, "1", { qos: 1, properties: { topicAlias: 1 } });
    await pub.publish("", "2", { qos: 1, properties: { topicAlias: 1 } });
    await pub.publish(`${base}/y`, "3", { qos: 1, properties: { topicAlias: 1 } }); // re-map alias 1
    await pub.publish("", "4", { qos: 0, properties: { topicAlias: 1 } });
    await sub.inbox.waitFor(4);
    expect(sub.inbox.messages.map((m) => `${m.topic}=${m.payload}`)).toEqual([
      `${base}/x=1`,
      `${base}/x=2`,
      `${base}/y=3`,
      `${base}/y=4`,
    ]);
  });

  it("an out-of-range or unknown topic alias from the client is a protocol error (0x94 / 0x82)", async () => {
    const clientId = uid("alias-bad");
    const raw = await rawSession(mqttUrl(broker().url, "relay", clientId), { version: 5, clientId });
    const connack = raw.packets.find((p) => p.type === "connack");
    const max = (connack?.type === "connack" && connack.properties?.topicAliasMaximum) || 0;
    raw.send({ type: "publish", topic: "a/b", payload: utf8("x"), qos: 0, retain: false, dup: false, properties: { topicAlias: max + 1 } });
    await raw.waitClosed();
    const d = raw.packets.find((p) => p.type === "disconnect");
    expect(d && d.type === "disconnect" && d.reasonCode, raw.describe()).toBe(0x94);

    const clientId2 = uid("alias-unknown");
    const raw2 = await rawSession(mqttUrl(broker().url, "fast", clientId2), { version: 5, clientId: clientId2 });
    raw2.send({ type: "publish", topic: "", payload: utf8("x"), qos: 0, retain: false, dup: false, properties: { topicAlias: 3 } });
    await raw2.waitClosed();
    const d2 = raw2.packets.find((p) => p.type === "disconnect");
    expect(d2 && d2.type === "disconnect" && d2.reasonCode, raw2.describe()).toBe(0x82);
  });

  it("Message Expiry: a message queued for an offline session expires and is not delivered; the rest carry the remaining interval", async () => {
    const base = topicBase("expiry");
    for (const subVersion of VERSIONS) {
      const clientId = uid(`exp-v${subVersion}`);
      const persistent = subVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const sub = await connect(broker().url, { version: subVersion, clientId, ...persistent });
      await sub.subscribe(`${base}/v${subVersion}`, { qos: 1 });
      await sub.end();

      const pub = await connect(broker().url, { version: 5 });
      await pub.publish(`${base}/v${subVersion}`, "expires", { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub.publish(`${base}/v${subVersion}`, "lasts", { qos: 1, properties: { messageExpiryInterval: 60 } });
      await pub.publish(`${base}/v${subVersion}`, "forever", { qos: 1 });
      await sleep(2_200);

      const back = await connect(broker().url, { version: subVersion, clientId, ...persistent });
      expect(back.connack?.sessionPresent).toBe(true);
      await back.inbox.waitFor(2);
      await back.inbox.settle(QUIET_MS);
      expect(back.inbox.payloads(), `v${subVersion} subscriber`).toEqual(["lasts", "forever"]);
      if (subVersion === 5) {
        const remaining = back.inbox.messages[0]!.properties.messageExpiryInterval;
        // [MQTT-3.3.2-6] the interval sent is what is left of it.
        expect(remaining).toBeGreaterThan(0);
        expect(remaining).toBeLessThan(60);
        expect(back.inbox.messages[1]!.properties.messageExpiryInterval).toBeUndefined();
      }
      await back.end(subVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : undefined);
    }
  });
});

describe("5.0 flow control and limits towards the client", () => {
  it.each(["relay", "fast"] as const)(
    "the broker respects the client's Receive Maximum (%s) [MQTT-3.3.4-9]",
    async (route) => {
      const base = topicBase("recvmax");
      const clientId = uid("recvmax");
      const raw = await rawSession(mqttUrl(broker().url, route, clientId), {
        version: 5,
        clientId,
        properties: { receiveMaximum: 2 },
      });
      raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/t`, qos: 1 }] });
      await raw.waitForType("suback");
      const pub = await connect(broker().url, { version: 5 });
      for (let i = 0; i < 5; i++) await pub.publish(`${base}/t`, `m${i}`, { qos: 1 });
      await sleep(QUIET_MS);
      const publishes = () => raw.packets.filter((p) => p.type === "publish") as Array<{ packetId?: number; payload: Uint8Array }>;
      expect(publishes().length, raw.describe()).toBe(2);
      // Each PUBACK frees one place in the window.
      raw.send({ type: "puback", packetId: publishes()[0]!.packetId! });
      await raw.waitForPacket(() => publishes().length >= 3, 5_000, "third PUBLISH after one PUBACK");
      await sleep(300);
      expect(publishes().length).toBe(3);
      for (const p of publishes().slice(1)) raw.send({ type: "puback", packetId: p.packetId! });
      await raw.waitForPacket(() => publishes().length >= 5, 5_000, "the remaining PUBLISHes");
      expect(publishes().map((p) => Buffer.from(p.payload).toString())).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    },
  );

  it("a message larger than the client's Maximum Packet Size is not sent to it [MQTT-3.1.2-25]", async () => {
    const base = topicBase("client-max");
    const clientId = uid("client-max");
    const raw = await rawSession(mqttUrl(broker().url, "fast", clientId), {
      version: 5,
      clientId,
      properties: { maximumPacketSize: 256 },
    });
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/+`, qos: 1 }] });
    await raw.waitForType("suback");
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/big`, Buffer.alloc(1_000, 0x61), { qos: 1 });
    await pub.publish(`${base}/small`, "small", { qos: 1 });
    await pub.publish(`${base}/big0`, Buffer.alloc(1_000, 0x62), { qos: 0 });
    const small = await raw.waitForPublish((p) => p.topic === `${base}/small`);
    raw.send({ type: "puback", packetId: small.packetId! });
    await sleep(QUIET_MS);
    expect(raw.packets.filter((p) => p.type === "publish").map((p) => (p as { topic: string }).topic)).toEqual([`${base}/small`]);
    expect(raw.closedInfo).toBeUndefined();
  });

  it("more unacknowledged QoS 2 publishes than the broker's Receive Maximum: DISCONNECT 0x93 [MQTT-3.3.4-8]", async () => {
    const clientId = uid("over-recvmax");
    const raw = await rawSession(mqttUrl(broker().url, "relay", clientId), { version: 5, clientId });
    const connack = raw.packets.find((p) => p.type === "connack");
    const max = (connack?.type === "connack" && connack.properties?.receiveMaximum) || 65_535;
    expect(max).toBe(64);
    const topic = `${topicBase("over")}/t`;
    const publish = (id: number) => raw.send({ type: "publish", topic, payload: utf8("x"), qos: 2, retain: false, dup: false, packetId: id });
    // 64 acknowledged with PUBREC, whose PUBREL the client owes: the window is full. (Publishes
    // the broker is still routing do not count: the broker's delay is not the client's doing.)
    for (let id = 1; id <= max; id++) publish(id);
    await raw.waitForPacket(() => raw.packets.filter((p) => p.type === "pubrec").length >= max, 8_000, `${max} PUBRECs`);
    publish(max + 1);
    await raw.waitClosed();
    const d = raw.packets.find((p) => p.type === "disconnect");
    expect(d && d.type === "disconnect" && d.reasonCode, raw.describe()).toBe(0x93);
  });

  it("3.1.1 has no Receive Maximum: 70 unreleased QoS 2 publishes are all acknowledged", async () => {
    const clientId = uid("v4-many-qos2");
    const raw = await rawSession(mqttUrl(broker().url, "fast", clientId), { version: 4, clientId });
    const topic = `${topicBase("v4-many")}/t`;
    for (let id = 1; id <= 70; id++) {
      raw.send({ type: "publish", topic, payload: utf8("x"), qos: 2, retain: false, dup: false, packetId: id });
    }
    await raw.waitForPacket(() => raw.packets.filter((p) => p.type === "pubrec").length >= 70, 8_000, "70 PUBRECs");
    for (let id = 1; id <= 70; id++) raw.send({ type: "pubrel", packetId: id });
    await raw.waitForPacket(() => raw.packets.filter((p) => p.type === "pubcomp").length >= 70, 8_000, "70 PUBCOMPs");
    expect(raw.closedInfo).toBeUndefined();
  });
});
