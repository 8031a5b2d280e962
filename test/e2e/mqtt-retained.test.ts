// Retained messages: store, replace, delete, RETAIN flag on delivery, 5.0 Retain Handling,
// Retain As Published and expiry, against a real broker.
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import { VERSIONS, closeAll, connect, sleep, subscriptionIds, topicBase, uid } from "./clients";

const broker = useBroker();
afterEach(closeAll);

const QUIET_MS = 600;

describe.each(VERSIONS)("retained (v%i)", (version) => {
  it("stored per topic and sent on subscribe with RETAIN set, across shards, QoS reduced to the granted one", async () => {
    const base = topicBase("ret");
    const pub = await connect(broker().url, { version });
    // Ten topics: hashed over several shards, a wildcard subscription must collect them all.
    const topics = Array.from({ length: 10 }, (_, i) => `${base}/t${i}`);
    for (const t of topics) await pub.publish(t, `r-${t}`, { qos: 1, retain: true });
    await pub.publish(`${base}/plain`, "not retained", { qos: 1 });

    const wild = await connect(broker().url, { version, route: "fast" });
    await wild.subscribe(`${base}/+`, { qos: 0 });
    await wild.inbox.waitFor(10);
    await wild.inbox.settle(QUIET_MS);
    expect(wild.inbox.topics().sort()).toEqual([...topics].sort());
    for (const m of wild.inbox.messages) {
      expect(m.retain, `${m.topic}: RETAIN set on a message sent for a new subscription [MQTT-3.3.1-8]`).toBe(true);
      expect(m.qos).toBe(0);
      expect(m.payload.toString()).toBe(`r-${m.topic}`);
    }

    const exact = await connect(broker().url, { version });
    await exact.subscribe(topics[3]!, { qos: 2 });
    const [m] = await exact.inbox.waitFor(1);
    expect(m!.topic).toBe(topics[3]);
    expect(m!.retain).toBe(true);
    expect(m!.qos, "min(retained QoS 1, granted 2)").toBe(1);
  });

  it("a retained publish replaces the previous one; an empty retained payload deletes it", async () => {
    const base = topicBase("ret-replace");
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/a`, "first", { qos: 1, retain: true });
    await pub.publish(`${base}/a`, "second", { qos: 1, retain: true });
    await pub.publish(`${base}/b`, "to delete", { qos: 1, retain: true });
    await pub.publish(`${base}/b`, "", { qos: 1, retain: true });

    const sub = await connect(broker().url, { version });
    await sub.subscribe(`${base}/#`, { qos: 1 });
    await sub.inbox.waitFor(1);
    await sub.inbox.settle(QUIET_MS);
    expect(sub.inbox.messages.map((m) => `${m.topic}=${m.payload}`), "[MQTT-3.3.1-5] [MQTT-3.3.1-6]").toEqual([`${base}/a=second`]);

    // A non-retained publish does not touch the retained message [MQTT-3.3.1-7 (3.1.1) / MQTT-3.3.1-8].
    await pub.publish(`${base}/a`, "live only", { qos: 1, retain: false });
    await sub.inbox.waitFor(2);
    const late = await connect(broker().url, { version });
    await late.subscribe(`${base}/a`, { qos: 1 });
    const [m] = await late.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("second");
  });

  it("a retained publish reaches existing subscribers with RETAIN cleared [MQTT-3.3.1-9]", async () => {
    const base = topicBase("ret-live");
    const sub = await connect(broker().url, { version });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "live", { qos: 1, retain: true });
    const [m] = await sub.inbox.waitFor(1);
    expect(m!.retain).toBe(false);
    // The empty retained publish that deletes it is forwarded as a normal message too.
    await pub.publish(`${base}/t`, "", { qos: 1, retain: true });
    const msgs = await sub.inbox.waitFor(2);
    expect(msgs[1]!.payload.length).toBe(0);
    expect(msgs[1]!.retain).toBe(false);
  });

  it("re-subscribing sends the retained messages again (Retain Handling 0 is the default)", async () => {
    const base = topicBase("ret-resub");
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "kept", { qos: 1, retain: true });
    const sub = await connect(broker().url, { version });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    await sub.inbox.waitFor(1);
    await sub.subscribe(`${base}/t`, { qos: 1 });
    await sub.inbox.waitFor(2);
    expect(sub.inbox.messages.every((m) => m.retain)).toBe(true);
  });
});

describe("5.0 retain options", () => {
  it("Retain Handling 0 / 1 / 2 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]", async () => {
    const base = topicBase("rh");
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/t`, "kept", { qos: 1, retain: true });

    const rh0 = await connect(broker().url, { version: 5, label: "rh=0" });
    await rh0.subscribe(`${base}/t`, { qos: 1, rh: 0 });
    await rh0.inbox.waitFor(1);
    await rh0.subscribe(`${base}/t`, { qos: 1, rh: 0 });
    await rh0.inbox.waitFor(2); // again on every subscribe

    const rh1 = await connect(broker().url, { version: 5, label: "rh=1" });
    await rh1.subscribe(`${base}/t`, { qos: 1, rh: 1 });
    await rh1.inbox.waitFor(1); // new subscription: sent
    await rh1.subscribe(`${base}/t`, { qos: 1, rh: 1 });

    const rh2 = await connect(broker().url, { version: 5, label: "rh=2" });
    await rh2.subscribe(`${base}/t`, { qos: 1, rh: 2 });

    await sleep(QUIET_MS);
    expect(rh1.inbox.length, "rh=1: not sent again for an existing subscription").toBe(1);
    expect(rh2.inbox.length, "rh=2: never sent").toBe(0);

    // All three still get live messages.
    await pub.publish(`${base}/t`, "live", { qos: 1 });
    await rh0.inbox.waitFor(3);
    await rh1.inbox.waitFor(2);
    await rh2.inbox.waitFor(1);
  });

  it("Retain As Published keeps RETAIN on live forwarding; without it RETAIN is cleared [MQTT-3.3.1-12] [MQTT-3.3.1-13]", async () => {
    const base = topicBase("rap");
    const rap = await connect(broker().url, { version: 5, label: "rap" });
    await rap.subscribe(`${base}/t`, { qos: 1, rap: true });
    const norap = await connect(broker().url, { version: 5, label: "no rap" });
    await norap.subscribe(`${base}/t`, { qos: 1, rap: false });
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/t`, "retained", { qos: 1, retain: true });
    await pub.publish(`${base}/t`, "plain", { qos: 1, retain: false });
    const a = await rap.inbox.waitFor(2);
    const b = await norap.inbox.waitFor(2);
    expect(a.map((m) => `${m.payload}:${m.retain}`)).toEqual(["retained:true", "plain:false"]);
    expect(b.map((m) => `${m.payload}:${m.retain}`)).toEqual(["retained:false", "plain:false"]);
  });

  it("a retained message with Message Expiry disappears once expired", async () => {
    const base = topicBase("ret-exp");
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/short`, "short", { qos: 1, retain: true, properties: { messageExpiryInterval: 2 } });
    await pub.publish(`${base}/long`, "long", { qos: 1, retain: true, properties: { messageExpiryInterval: 600 } });

    const early = await connect(broker().url, { version: 5 });
    await early.subscribe(`${base}/+`, { qos: 1 });
    await early.inbox.waitFor(2);
    const short = early.inbox.messages.find((m) => m.topic === `${base}/short`)!;
    expect(short.properties.messageExpiryInterval).toBeGreaterThan(0);
    expect(short.properties.messageExpiryInterval).toBeLessThanOrEqual(2);

    await sleep(3_000);
    for (const version of VERSIONS) {
      const late = await connect(broker().url, { version });
      await late.subscribe(`${base}/+`, { qos: 1 });
      await late.inbox.waitFor(1);
      await late.inbox.settle(QUIET_MS);
      expect(late.inbox.payloads(), `v${version} subscriber after expiry [MQTT-3.3.2-5]`).toEqual(["long"]);
    }
  });

  it("retained messages sent on subscribe carry that subscription's identifier", async () => {
    const base = topicBase("ret-subid");
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/t`, "kept", { qos: 1, retain: true });
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`${base}/#`, { qos: 1, properties: { subscriptionIdentifier: 77 } });
    const [m] = await sub.inbox.waitFor(1);
    expect(m!.retain).toBe(true);
    expect(subscriptionIds(m!)).toEqual([77]);
  });

  it("retained messages are not sent for a shared subscription", async () => {
    const base = topicBase("ret-shared");
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/t`, "kept", { qos: 1, retain: true });
    const sub = await connect(broker().url, { version: 5 });
    await sub.subscribe(`$share/${uid("g")}/${base}/t`, { qos: 1 });
    await sub.inbox.settle(QUIET_MS);
    expect(sub.inbox.length, "5.0 4.8.2: retained messages are not sent to shared subscriptions").toBe(0);
    await pub.publish(`${base}/t`, "live", { qos: 1 });
    await sub.inbox.waitFor(1);
  });
});
