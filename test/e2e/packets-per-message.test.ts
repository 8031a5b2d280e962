// Several MQTT packets to a WebSocket message (docs/architecture.md, "Packets per WebSocket
// message"): packets that leave the broker together share a message up to
// PACKETS_PER_MESSAGE_BYTES (and a 5.0 client's Maximum Packet Size), as MQTT over WebSocket
// allows [MQTT-6.0.0-2]; a larger packet goes alone; 0 sends one packet per message. A raw
// client counts the messages and the packets each completed; MQTT.js reads the same stream as
// a user's client would.
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import { closeAll, connect, rawSession, topicBase, uid } from "./clients";

afterEach(closeAll);

/** Retained messages on `count` topics under `base`, `bytes` of payload each. */
async function retainTopics(url: string, base: string, count: number, bytes: number): Promise<void> {
  const pub = await connect(url, { version: 5, route: "fast", label: "retainer" });
  for (let i = 0; i < count; i++) await pub.publish(`${base}/${i}`, Buffer.alloc(bytes, 48 + (i % 10)), { qos: 1, retain: true });
  await pub.end();
}

describe("packets per WebSocket message, default (8 KiB)", () => {
  const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0" } });

  it("the retained answer to a SUBSCRIBE comes as whole packets, several to a message", async () => {
    const base = topicBase("ppm");
    await retainTopics(broker().url, base, 40, 100);
    const raw = await rawSession(broker().url, { version: 5, clientId: uid("ppm") });
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/#`, qos: 0 }] });
    await raw.waitForPacket((p) => p.type === "publish" && p.topic === `${base}/39`);
    const publishes = raw.packets.filter((p) => p.type === "publish");
    expect(publishes.map((p) => (p.type === "publish" ? p.topic : "")).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `${base}/${i}`).sort());
    expect(raw.decodeErrors).toEqual([]);
    const packets = raw.messages.reduce((n, m) => n + m.packets, 0);
    expect(packets).toBe(raw.packets.length);
    expect(raw.messages.length, JSON.stringify(raw.messages)).toBeLessThan(packets / 2);
  });

  it("a message holds at most 8 KiB of packets; a larger packet goes alone", async () => {
    const base = topicBase("ppm-big");
    await retainTopics(broker().url, base, 6, 3_000); // two to a message
    const pub = await connect(broker().url, { version: 5, route: "fast", label: "big" });
    await pub.publish(`${base}/huge`, Buffer.alloc(40_000, 65), { qos: 1, retain: true });
    await pub.end();
    const raw = await rawSession(broker().url, { version: 5, clientId: uid("ppm-big") });
    const connackMessages = raw.messages.length;
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/#`, qos: 0 }] });
    await raw.waitForPacket((p) => p.type === "publish" && p.topic === `${base}/huge`);
    await raw.waitForPacket((p) => raw.packets.filter((q) => q.type === "publish").length === 7 && p.type === "publish");
    const after = raw.messages.slice(connackMessages);
    for (const m of after) expect(m.packets === 1 || m.bytes <= 8_192, JSON.stringify(after)).toBe(true);
    expect(after.some((m) => m.packets > 1)).toBe(true);
    expect(after.some((m) => m.bytes > 40_000 && m.packets === 1)).toBe(true);
  });

  it("5.0: never more in a message than the client's Maximum Packet Size", async () => {
    const base = topicBase("ppm-max");
    await retainTopics(broker().url, base, 40, 100);
    const raw = await rawSession(broker().url, { version: 5, clientId: uid("ppm-max"), properties: { maximumPacketSize: 512 } });
    const connackMessages = raw.messages.length;
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/#`, qos: 0 }] });
    await raw.waitForPacket((p) => raw.packets.filter((q) => q.type === "publish").length === 40 && p.type === "publish");
    const after = raw.messages.slice(connackMessages);
    expect(after.every((m) => m.bytes <= 512), JSON.stringify(after)).toBe(true);
    expect(after.some((m) => m.packets > 1)).toBe(true);
  });

  it("MQTT.js (5.0 and 3.1.1, both routes) reads a batch of deliveries as the messages they are", async () => {
    const base = topicBase("ppm-js");
    const subs = [await connect(broker().url, { version: 5, route: "fast", label: "s5" }), await connect(broker().url, { version: 4, route: "relay", label: "s4" })];
    for (const s of subs) await s.subscribe(`${base}/#`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5, route: "fast", label: "burst" });
    await Promise.all(Array.from({ length: 300 }, (_, i) => pub.publish(`${base}/${i % 7}`, `m${i}`, { qos: (i % 2) as 0 | 1 })));
    for (const s of subs) {
      await s.inbox.waitFor(300, 20_000);
      await s.inbox.settle(200);
      expect(s.inbox.length, s.inbox.describe()).toBe(300);
      expect(new Set(s.inbox.messages.map((m) => m.payload.toString())).size).toBe(300);
    }
  });
});

describe("PACKETS_PER_MESSAGE_BYTES = 0", () => {
  const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0", PACKETS_PER_MESSAGE_BYTES: "0" } });

  it("one packet per WebSocket message", async () => {
    const base = topicBase("ppm-0");
    await retainTopics(broker().url, base, 20, 100);
    const raw = await rawSession(broker().url, { version: 4, clientId: uid("ppm-0") });
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/#`, qos: 0 }] });
    await raw.waitForPacket((p) => raw.packets.filter((q) => q.type === "publish").length === 20 && p.type === "publish");
    expect(raw.messages.every((m) => m.packets === 1), JSON.stringify(raw.messages)).toBe(true);
    expect(raw.messages.length).toBe(raw.packets.length);
  });
});
