// SUBSCRIBE / UNSUBSCRIBE: wildcards, granted QoS, invalid filters, $-topics, overlapping,
// shared subscriptions, No Local and Subscription Identifiers, against a real broker.
import { afterEach, describe, expect, it } from "vitest";
import { sysAdmin, useBroker } from "./broker";
import {
  VERSIONS,
  closeAll,
  connect,
  mqttUrl,
  rawSession,
  subscriptionIds,
  topicBase,
  uid,
} from "./clients";

const broker = useBroker();
afterEach(closeAll);

/** Quiet period used to assert that something does NOT arrive. */
const QUIET_MS = 600;

describe.each(VERSIONS)("subscribe (v%i)", (version) => {
  it("'+' matches exactly one level, '#' the parent and any number of levels", async () => {
    const base = topicBase("wild");
    const sub = await connect(broker().url, { version });
    const plus = await connect(broker().url, { version, route: "fast" });
    await sub.subscribe(`${base}/#`, { qos: 1 });
    await plus.subscribe(`${base}/+/temp`, { qos: 1 });
    const pub = await connect(broker().url, { version });

    const topics = [base, `${base}/a/temp`, `${base}/b/temp`, `${base}/a/b/temp`, `${base}/a`, `${base}/a/temp/x`];
    for (const t of topics) await pub.publish(t, t, { qos: 1 });

    // '#' also matches the parent level itself [MQTT-4.7.1-2].
    const hash = await sub.inbox.waitFor(topics.length);
    expect(hash.map((m) => m.topic).sort()).toEqual([...topics].sort());
    await plus.inbox.waitFor(2);
    await plus.inbox.settle(QUIET_MS);
    expect(plus.inbox.topics().sort()).toEqual([`${base}/a/temp`, `${base}/b/temp`]);
  });

  it("'+' and '#' match empty levels; '+' alone does not match a leading-slash two-level topic", async () => {
    const base = topicBase("empty");
    const sub = await connect(broker().url, { version });
    await sub.subscribe(`${base}/+/x`, { qos: 0 });
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}//x`, "empty-level", { qos: 1 });
    await pub.publish(`${base}/y/z/x`, "two levels", { qos: 1 });
    await sub.inbox.waitFor(1);
    await sub.inbox.settle(QUIET_MS);
    expect(sub.inbox.payloads()).toEqual(["empty-level"]);
  });

  it("several filters in one SUBSCRIBE get one granted QoS each", async () => {
    const base = topicBase("multi");
    const c = await connect(broker().url, { version });
    const granted = await c.subscribe({
      [`${base}/q0`]: { qos: 0 },
      [`${base}/q1`]: { qos: 1 },
      [`${base}/q2`]: { qos: 2 },
      [`${base}/+/w`]: { qos: 2 },
    });
    expect(granted, "SUBACK return codes in order [MQTT-3.8.4-6]").toEqual([0, 1, 2, 2]);
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/q0`, "a", { qos: 2 });
    await pub.publish(`${base}/q1`, "b", { qos: 2 });
    await pub.publish(`${base}/q2`, "c", { qos: 2 });
    const got = await c.inbox.waitFor(3);
    const qosByTopic = Object.fromEntries(got.map((m) => [m.topic, m.qos]));
    expect(qosByTopic).toEqual({ [`${base}/q0`]: 0, [`${base}/q1`]: 1, [`${base}/q2`]: 2 });
  });

  it("an invalid filter gets a failure code; the valid ones in the same SUBSCRIBE are granted", async () => {
    // MQTT.js refuses invalid filters itself, so this goes through a raw WebSocket.
    const base = topicBase("invalid");
    const clientId = uid("raw-sub");
    const raw = await rawSession(mqttUrl(broker().url, "relay", clientId), { version, clientId });
    raw.send({
      type: "subscribe",
      packetId: 7,
      subscriptions: [
        { topicFilter: `${base}/ok`, qos: 1 },
        { topicFilter: `${base}/a#`, qos: 1 }, // '#' not on its own level [MQTT-4.7.1-1]
        { topicFilter: `${base}/#/b`, qos: 0 }, // '#' not last
        { topicFilter: `${base}/x+/y`, qos: 0 }, // '+' not on its own level [MQTT-4.7.1-2]
        { topicFilter: `${base}/+`, qos: 2 },
      ],
    });
    const suback = await raw.waitForType("suback");
    expect(suback.packetId).toBe(7);
    const failure = version === 5 ? 0x8f : 0x80;
    expect(suback.reasonCodes).toEqual([1, failure, failure, failure, 2]);
    expect(raw.closedInfo, "the connection stays open").toBeUndefined();

    // The granted ones work.
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/ok`, "ok", { qos: 1 });
    const msg = await raw.waitForType("publish");
    expect(msg.topic).toBe(`${base}/ok`);
  });

  it("$SYS topics are not matched by '#' or '+/...' at the first level [MQTT-4.7.2-1]", async () => {
    // The broker's own $SYS events (a client connecting): clients may not publish to $ topics,
    // and only an admin user may read $SYS (docs/security.md).
    const tail = uid("sys");
    const event = `$SYS/broker/clients/${tail}/connected`;
    const admin = await sysAdmin(broker());
    const all = await connect(broker().url, { version });
    await all.subscribe("#", { qos: 0 });
    const plus = await connect(broker().url, { version });
    await plus.subscribe(`+/broker/clients/${tail}/connected`, { qos: 0 });
    const explicit = await connect(broker().url, { version, ...admin });
    await explicit.subscribe(event, { qos: 0 });
    const explicitWild = await connect(broker().url, { version, ...admin });
    await explicitWild.subscribe(`$SYS/#`, { qos: 0 });

    const pub = await connect(broker().url, { version, clientId: tail });
    await pub.publish(`normal/${tail}`, "normal", { qos: 1 });

    await explicit.inbox.waitForTopic(event);
    await explicitWild.inbox.waitForTopic(event);
    await all.inbox.waitForTopic(`normal/${tail}`);
    await all.inbox.settle(QUIET_MS);
    expect(all.inbox.topics().filter((t) => t.startsWith("$"))).toEqual([]);
    expect(plus.inbox.topics()).toEqual([]);
    await all.client.unsubscribeAsync("#");
  });

  it("unsubscribe stops delivery; UNSUBACK also for a filter that was not subscribed", async () => {
    const base = topicBase("unsub");
    const c = await connect(broker().url, { version });
    await c.subscribe(`${base}/+`, { qos: 1 });
    await c.subscribe(`${base}/exact`, { qos: 1 });
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/exact`, "before", { qos: 1 });
    await c.inbox.waitFor(1);

    const unsuback = await c.client.unsubscribeAsync([`${base}/+`, `${base}/exact`, `${base}/never`]);
    if (version === 5) {
      const codes = (unsuback as { reasonCode?: number; reasonCodes?: number[] } | undefined)?.reasonCodes;
      if (codes) expect(codes).toEqual([0x00, 0x00, 0x11]);
    }
    await pub.publish(`${base}/exact`, "after", { qos: 1 });
    await pub.publish(`${base}/other`, "after", { qos: 1 });
    await c.inbox.settle(QUIET_MS);
    expect(c.inbox.payloads()).toEqual(["before"]);
  });

  it("overlapping subscriptions deliver each message once, with the highest granted QoS", async () => {
    const base = topicBase("overlap");
    const c = await connect(broker().url, { version });
    await c.subscribe(`${base}/#`, { qos: 0 });
    await c.subscribe(`${base}/+/b`, { qos: 2 });
    await c.subscribe(`${base}/a/b`, { qos: 1 });
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/a/b`, "one", { qos: 2 });
    await pub.publish(`${base}/a/c`, "two", { qos: 2 });
    await c.inbox.waitFor(2);
    await c.inbox.settle(QUIET_MS);
    expect(c.inbox.payloads()).toEqual(["one", "two"]);
    // [MQTT-3.3.4-2] 3.1.1: the server may deliver one copy with the max QoS; this broker does, in 5.0 too.
    expect(c.inbox.messages[0]!.qos).toBe(2);
    expect(c.inbox.messages[1]!.qos).toBe(0);
  });

  it("re-subscribing to the same filter replaces the subscription (QoS changes, no duplicate)", async () => {
    const base = topicBase("replace");
    const c = await connect(broker().url, { version });
    await c.subscribe(`${base}/t`, { qos: 2 });
    await c.subscribe(`${base}/t`, { qos: 0 });
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "x", { qos: 2 });
    await c.inbox.waitFor(1);
    await c.inbox.settle(QUIET_MS);
    expect(c.inbox.length).toBe(1);
    expect(c.inbox.messages[0]!.qos, "[MQTT-3.8.4-3] the new subscription replaces the old").toBe(0);
  });
});

describe("5.0 subscription features", () => {
  it("overlapping subscriptions: one delivery carrying every Subscription Identifier", async () => {
    const base = topicBase("overlap-ids");
    const c = await connect(broker().url, { version: 5 });
    await c.subscribe(`${base}/#`, { qos: 0, properties: { subscriptionIdentifier: 11 } });
    await c.subscribe(`${base}/+/b`, { qos: 1, properties: { subscriptionIdentifier: 22 } });
    await c.subscribe(`${base}/a/b`, { qos: 2 }); // no identifier
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/a/b`, "x", { qos: 2 });
    const [m] = await c.inbox.waitFor(1);
    await c.inbox.settle(QUIET_MS);
    expect(c.inbox.length).toBe(1);
    expect(m!.qos).toBe(2);
    expect(subscriptionIds(m!), "[MQTT-3.3.4-5] all the identifiers").toEqual([11, 22]);
  });

  it("Subscription Identifier: sent with matching messages, absent for a subscription without one", async () => {
    const base = topicBase("subid");
    const c = await connect(broker().url, { version: 5 });
    await c.subscribe(`${base}/with/+`, { qos: 1, properties: { subscriptionIdentifier: 268_435_455 } });
    await c.subscribe(`${base}/without`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/with/x`, "1", { qos: 1 });
    await pub.publish(`${base}/without`, "2", { qos: 1 });
    const got = await c.inbox.waitFor(2);
    const byTopic = Object.fromEntries(got.map((m) => [m.topic, subscriptionIds(m)]));
    expect(byTopic).toEqual({ [`${base}/with/x`]: [268_435_455], [`${base}/without`]: [] });

    // Re-subscribing with another identifier replaces it.
    await c.subscribe(`${base}/with/+`, { qos: 1, properties: { subscriptionIdentifier: 5 } });
    await pub.publish(`${base}/with/y`, "3", { qos: 1 });
    const m = await c.inbox.waitForTopic(`${base}/with/y`);
    expect(subscriptionIds(m)).toEqual([5]);
  });

  it("No Local: own messages are not delivered back; other clients' are", async () => {
    const base = topicBase("nolocal");
    const self = await connect(broker().url, { version: 5 });
    await self.subscribe(`${base}/t`, { qos: 1, nl: true });
    const other = await connect(broker().url, { version: 5 });
    await self.publish(`${base}/t`, "mine", { qos: 1 });
    await other.publish(`${base}/t`, "theirs", { qos: 1 });
    await self.inbox.waitFor(1);
    await self.inbox.settle(QUIET_MS);
    expect(self.inbox.payloads(), "[MQTT-3.8.3-3]").toEqual(["theirs"]);
  });

  it("without No Local a client receives its own messages", async () => {
    const base = topicBase("local");
    const self = await connect(broker().url, { version: 5 });
    await self.subscribe(`${base}/t`, { qos: 1 });
    await self.publish(`${base}/t`, "mine", { qos: 1 });
    await self.inbox.waitFor(1);
  });

  it("shared subscription: each message goes to exactly one member; both members get some", async () => {
    const base = topicBase("shared");
    const group = uid("g");
    const a = await connect(broker().url, { version: 5, label: "member A" });
    const b = await connect(broker().url, { version: 5, route: "fast", label: "member B" });
    const plain = await connect(broker().url, { version: 5, label: "plain subscriber" });
    await a.subscribe(`$share/${group}/${base}/+`, { qos: 1 });
    await b.subscribe(`$share/${group}/${base}/+`, { qos: 1 });
    await plain.subscribe(`${base}/+`, { qos: 1 });
    const pub = await connect(broker().url, { version: 5 });
    const n = 20;
    for (let i = 0; i < n; i++) await pub.publish(`${base}/x`, `m${i}`, { qos: 1 });

    await plain.inbox.waitFor(n);
    const deadline = Date.now() + 5_000;
    while (a.inbox.length + b.inbox.length < n && Date.now() < deadline) await a.inbox.settle(100);
    await a.inbox.settle(QUIET_MS);
    const all = [...a.inbox.payloads(), ...b.inbox.payloads()].sort();
    const expected = Array.from({ length: n }, (_, i) => `m${i}`).sort();
    expect(all, `${a.inbox.describe()}\n${b.inbox.describe()}`).toEqual(expected);
    expect(a.inbox.length, "member A got none").toBeGreaterThan(0);
    expect(b.inbox.length, "member B got none").toBeGreaterThan(0);
    // The topic is the real one, not the $share filter.
    expect(a.inbox.messages[0]!.topic).toBe(`${base}/x`);
  });

  it("shared subscription: unsubscribing one member sends everything to the other", async () => {
    const base = topicBase("shared-unsub");
    const group = uid("g");
    const filter = `$share/${group}/${base}`;
    const a = await connect(broker().url, { version: 5 });
    const b = await connect(broker().url, { version: 5 });
    await a.subscribe(filter, { qos: 1 });
    await b.subscribe(filter, { qos: 1 });
    await b.client.unsubscribeAsync(filter);
    const pub = await connect(broker().url, { version: 5 });
    for (let i = 0; i < 6; i++) await pub.publish(base, `m${i}`, { qos: 1 });
    await a.inbox.waitFor(6);
    await b.inbox.settle(QUIET_MS);
    expect(b.inbox.length).toBe(0);
  });

  it("No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]", async () => {
    const clientId = uid("raw-nl");
    const raw = await rawSession(mqttUrl(broker().url, "relay", clientId), { version: 5, clientId });
    raw.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{ topicFilter: `$share/g/${topicBase("x")}`, qos: 0, noLocal: true }],
    });
    await raw.waitClosed();
    const d = raw.packets.find((p) => p.type === "disconnect");
    if (d && d.type === "disconnect") expect(d.reasonCode).toBe(0x82);
    expect(raw.packets.some((p) => p.type === "suback")).toBe(false);
  });
});
