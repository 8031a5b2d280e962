// Overload without harm (issue 10): a backlog larger than the runtime's call and message
// limits, a client that stops reading or acknowledging, a client that publishes too fast,
// and a broker that is behind. Against a real broker started as `npm start` starts it, with
// some bounds set lower (or rates off) so that each case is quick to reach.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodePacket } from "../../core/mqtt/codec";
import type { PublishPacket } from "../../core/mqtt/packets";
import { startTestBroker, type TestBroker } from "./broker";
import WebSocket from "ws";
import {
  closeAll,
  connect,
  connectPacket as rawConnectPacket,
  mqttUrl,
  RawClient,
  rawSession,
  ROUTES,
  sleep,
  topicBase,
  uid,
  utf8,
  waitUntil,
  type Route,
} from "./clients";

afterEach(closeAll);

const MB = 1_000_000;

/** A payload of `size` bytes that starts with its sequence number. */
const numbered = (seq: number, size: number) => Buffer.from(String(seq).padEnd(size, "."));
const seqOf = (payload: Uint8Array) => Number.parseInt(Buffer.from(payload.subarray(0, 8)).toString(), 10);

interface Drops {
  qos0: number;
  queue: number;
  rate: number;
  byClient: Record<string, { qos0: number; queue: number; rate: number }>;
}

/** GET /metrics's drops, once the objects have reported (they report at most once per second). */
async function dropsOf(b: TestBroker, clientId: string, pred: (d: Drops["byClient"][string]) => boolean, timeoutMs = 15_000): Promise<Drops> {
  let drops: Drops | undefined;
  await waitUntil(
    () => {
      void fetch(`${b.httpUrl}/metrics`)
        .then((r) => r.json() as Promise<{ drops: Drops }>)
        .then((m) => (drops = m.drops));
      const mine = drops?.byClient[clientId];
      return mine !== undefined && pred(mine);
    },
    `drops of ${clientId} in /metrics`,
    timeoutMs,
  );
  return drops!;
}

/** A broker for one describe block, with some [vars] overridden. */
function brokerWith(vars: Record<string, string>): () => TestBroker {
  let b: TestBroker | undefined;
  beforeAll(async () => {
    b = await startTestBroker({ vars });
  });
  afterAll(async () => {
    await b?.stop();
  });
  return () => b!;
}

describe("a backlog larger than one call or one WebSocket message", () => {
  // One shard: every retained message of a filter on the one object whose answer is limited.
  const broker = brokerWith({ MAX_QUEUED_BYTES: String(64 * 1024 * 1024), MAX_PUBLISH_RATE: "0", MAX_PUBLISH_BYTES_RATE: "0", SHARD_COUNT: "1" });

  it.each(ROUTES)("reconnecting with 40 MB pending works (%s): in order, nothing lost (issue 10, case 1)", async (route: Route) => {
    const topic = topicBase("big");
    const clientId = uid("big");
    const sub = await connect(broker().url, { version: 4, route, clientId, clean: false });
    await sub.subscribe(`${topic}/#`, { qos: 1 });
    await sub.end();
    const pub = await connect(broker().url, { version: 4, route: "fast" });
    await Promise.all(Array.from({ length: 40 }, (_, i) => pub.publish(`${topic}/m`, numbered(i, MB), { qos: 1 })));
    const back = await connect(broker().url, { version: 4, route, clientId, clean: false });
    expect(back.connack?.sessionPresent).toBe(true);
    const got = await back.inbox.waitFor(40, 90_000);
    expect(got.map((m) => seqOf(m.payload))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(got.every((m) => m.payload.byteLength === MB)).toBe(true);
  });

  it.each(ROUTES)("subscribing to 40 MB of retained messages works (%s): every one arrives", async (route: Route) => {
    const topic = topicBase("retained-big");
    const pub = await connect(broker().url, { version: 4, route: "fast" });
    await Promise.all(Array.from({ length: 40 }, (_, i) => pub.publish(`${topic}/${i}`, numbered(i, MB), { qos: 1, retain: true })));
    const sub = await connect(broker().url, { version: 4, route });
    await sub.subscribe(`${topic}/#`, { qos: 1 });
    const got = await sub.inbox.waitFor(40, 90_000);
    expect(got.map((m) => seqOf(m.payload)).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(got.every((m) => m.retain)).toBe(true);
  });

  it("one WebSocket message carrying 31 MB of valid packets (plain /mqtt): every packet is taken in", async () => {
    const topic = topicBase("wide");
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${topic}/#`, { qos: 1 });
    const raw = await rawSession(broker().url, { version: 5, clientId: uid("wide") });
    const packets = Array.from({ length: 31 }, (_, i) =>
      encodePacket({ type: "publish", topic: `${topic}/m`, payload: numbered(i, MB), qos: 1, retain: false, dup: false, packetId: i + 1 }, 5),
    );
    raw.send(Buffer.concat(packets));
    for (let id = 1; id <= 31; id++) await raw.waitForPacket((p) => p.type === "puback" && p.packetId === id, 60_000, `PUBACK ${id}`);
    const got = await sub.inbox.waitFor(31, 60_000);
    expect(got.map((m) => seqOf(m.payload))).toEqual(Array.from({ length: 31 }, (_, i) => i));
  });
});

describe("a client that stops reading or acknowledging", () => {
  const broker = brokerWith({
    MAX_PUBLISH_RATE: "0",
    MAX_PUBLISH_BYTES_RATE: "0",
    MAX_INFLIGHT_MESSAGES: "10",
    MAX_QUEUED_MESSAGES: "50",
  });

  it.each(ROUTES)("QoS 0 to a subscriber that stops reading its socket is dropped and counted per client (%s; case 2)", async (route: Route) => {
    const topic = topicBase("flood");
    const clientId = uid("stalled");
    // Without permessage-deflate (paho, mosquitto and most devices offer none): when a client
    // offers it, the local runtime compresses outside what the socket's bufferedAmount shows
    // (docs/benchmarks.md, "Overload"), and the bound cannot see the backlog.
    const ws = new WebSocket(mqttUrl(broker().url, route, clientId), "mqtt", { perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const raw = new RawClient(ws, 5);
    raw.send(rawConnectPacket({ version: 5, clientId }));
    await raw.waitForType("connack");
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${topic}/#`, qos: 0 }] });
    await raw.waitForType("suback");
    ws.pause(); // stop reading: the bytes pile up in the kernel, then in the broker
    const pub = await connect(broker().url, { version: 5, route: "fast" });
    // 80 MB: more than the kernel's socket buffers on both ends take (tcp_rmem's maximum is
    // 32 MiB here), so the rest waits in the broker, which keeps at most MAX_CLIENT_BACKLOG_BYTES.
    const payload = Buffer.alloc(10_000, 0x61);
    for (let i = 0; i < 8_000; i++) pub.client.publish(`${topic}/x`, payload, { qos: 0 });
    await pub.client.publishAsync(`${topic}/end`, "end", { qos: 1 }); // all of it reached the broker
    const drops = await dropsOf(broker(), clientId, (d) => d.qos0 > 1_000, 60_000);
    expect(drops.qos0).toBeGreaterThanOrEqual(drops.byClient[clientId]!.qos0);
    // What was not dropped reaches the client once it reads again: at most the bound, the
    // kernel's buffers and what was on its way (the rest was dropped, not held).
    ws.resume();
    await sleep(3000);
    const received = raw.packets.filter((p) => p.type === "publish").length;
    expect(received + drops.byClient[clientId]!.qos0).toBeLessThanOrEqual(8_001); // and the QoS 1 `end`
    expect(received).toBeLessThan(8_000 - 1_000);
    ws.terminate();
  });

  it("a connected QoS 1 subscriber that stops acknowledging: the window (10) and the queue (50) are bounded, the oldest queued are dropped and counted (case 3)", async () => {
    const topic = topicBase("stall");
    const clientId = uid("noack");
    // Receive Maximum 65,535 (the default when absent): the broker's own maximum applies.
    const raw = await rawSession(broker().url, { version: 5, clientId });
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${topic}/#`, qos: 1 }] });
    await raw.waitForType("suback");
    const pub = await connect(broker().url, { version: 5, route: "fast" });
    for (let i = 0; i < 200; i++) await pub.publish(`${topic}/m`, numbered(i, 100), { qos: 1 });
    const received = (): PublishPacket[] => raw.packets.filter((p): p is PublishPacket => p.type === "publish");
    await waitUntil(() => received().length >= 10, "the first window");
    await sleep(500);
    expect(received()).toHaveLength(10);
    const drops = await dropsOf(broker(), clientId, (d) => d.queue >= 140);
    expect(drops.byClient[clientId]!.queue).toBe(140);
    // Acknowledging everything lets the queue go: the first 10, then the newest 50.
    for (let acked = 0; acked < received().length || received().length < 60; ) {
      await waitUntil(() => received().length > acked, "more publishes", 10_000);
      for (const p of received().slice(acked)) raw.send({ type: "puback", packetId: p.packetId! });
      acked = received().length;
    }
    expect(received().map((p) => seqOf(p.payload))).toEqual([
      ...Array.from({ length: 10 }, (_, i) => i),
      ...Array.from({ length: 50 }, (_, i) => 150 + i),
    ]);
  });
});

describe("publish rates, and a broker that is behind", () => {
  const broker = brokerWith({ MAX_PUBLISH_RATE: "20", MAX_PUBLISH_BYTES_RATE: "100000", RECEIVE_MAXIMUM: "5" });

  it.each(ROUTES)("5.0: a client over its message rate gets DISCONNECT 0x96 and is counted; 3.1.1: closed (%s; case 4)", async (route: Route) => {
    const flooder = await connect(broker().url, { version: 5, route });
    for (let i = 0; i < 200; i++) flooder.client.publish(`${topicBase("noise")}/x`, "x", { qos: 0 });
    expect((await flooder.waitForDisconnect(15_000)).reasonCode).toBe(0x96);
    await flooder.waitClosed();
    const old = await connect(broker().url, { version: 4, route });
    for (let i = 0; i < 200; i++) old.client.publish(`${topicBase("noise")}/x`, "x", { qos: 0 });
    await old.waitClosed(15_000);
    await dropsOf(broker(), flooder.clientId, (d) => d.rate === 1);
  });

  it("5.0: bytes over the byte rate: DISCONNECT 0x97 Quota exceeded", async () => {
    const heavy = await connect(broker().url, { version: 5 });
    // 40 × 60 kB: past the byte bucket, which holds 2 s of the rate or one largest packet (1 MiB).
    for (let i = 0; i < 40; i++) heavy.client.publish(`${topicBase("heavy")}/x`, Buffer.alloc(60_000), { qos: 0 });
    expect((await heavy.waitForDisconnect(15_000)).reasonCode).toBe(0x97);
  });

  it("a client that keeps to its rate is served while others flood, and never disconnected", async () => {
    const flooders = await Promise.all(Array.from({ length: 5 }, () => connect(broker().url, { version: 5 })));
    for (const f of flooders) for (let i = 0; i < 2000; i++) f.client.publish(`${topicBase("noise")}/x`, "x", { qos: 0 });
    const probe = await connect(broker().url, { version: 5 });
    const topic = `${topicBase("probe")}/p`;
    await probe.subscribe(topic, { qos: 1 });
    for (let i = 0; i < 30; i++) {
      await probe.publish(topic, String(i), { qos: 1 });
      await probe.inbox.waitFor(i + 1, 10_000);
      await sleep(100); // 10/s, under the rate of 20/s
    }
    for (const f of flooders) await f.waitClosed(15_000);
    expect(probe.closed).toBe(false);
    expect(probe.inbox.payloads()).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
  });

  it("QoS 1 publishes beyond the Receive Maximum while the broker routes them are acknowledged, not refused with 0x93", async () => {
    const topic = topicBase("burst");
    const raw = await rawSession(broker().url, { version: 5, clientId: uid("burst") });
    // 20 at once (within the burst of 40 at 20/s) against a Receive Maximum of 5: the broker acknowledges
    // them as it routes them; none counts while the broker, not the client, is behind.
    const packets = Array.from({ length: 20 }, (_, i) =>
      encodePacket({ type: "publish", topic: `${topic}/m`, payload: utf8(String(i)), qos: 1, retain: false, dup: false, packetId: i + 1 }, 5),
    );
    raw.send(Buffer.concat(packets));
    for (let id = 1; id <= 20; id++) await raw.waitForPacket((p) => p.type === "puback" && p.packetId === id, 15_000, `PUBACK ${id}`);
    expect(raw.packets.some((p) => p.type === "disconnect")).toBe(false);
  });
});
