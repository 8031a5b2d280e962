// Persistent sessions: offline queueing, clean start, 5.0 session expiry, redelivery of
// unacknowledged messages, and resuming through either route, against a real broker.
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import {
  ROUTES,
  VERSION_ROUTES,
  closeAll,
  connect,
  mqttUrl,
  rawSession,
  sleep,
  topicBase,
  uid,
  waitUntil,
  type Route,
  type Version,
} from "./clients";

const broker = useBroker();
afterEach(closeAll);

const QUIET_MS = 600;
/** Pause after the last packet so it reaches the broker before the socket drops. */
const SETTLE_MS = 300;

function persistent(version: Version, expiry = 300) {
  return version === 5 ? { clean: false, properties: { sessionExpiryInterval: expiry } } : { clean: false };
}

const other = (route: Route): Route => (route === "relay" ? "fast" : "relay");

describe.each(VERSION_ROUTES)("persistent session (v%i, %s)", (version, route) => {
  it("QoS 1/2 messages published while offline are delivered on reconnect, in order; QoS 0 is not", async () => {
    const base = topicBase("offline");
    const clientId = uid("offline");
    const sub = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    expect(sub.connack?.sessionPresent).toBe(false);
    await sub.subscribe(`${base}/#`, { qos: 2 });
    await sub.end();

    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/a`, "q1-first", { qos: 1 });
    await pub.publish(`${base}/b`, "q0-lost", { qos: 0 });
    await pub.publish(`${base}/a`, "q2-second", { qos: 2 });
    for (let i = 0; i < 10; i++) await pub.publish(`${base}/a`, `seq-${i}`, { qos: 1 });

    const back = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    expect(back.connack?.sessionPresent, "[MQTT-3.2.2-3]").toBe(true);
    await back.inbox.waitFor(12);
    await back.inbox.settle(QUIET_MS);
    const expected = ["q1-first", "q2-second", ...Array.from({ length: 10 }, (_, i) => `seq-${i}`)];
    // Order on the wire (MQTT.js hands a QoS 2 message to the application only at PUBREL).
    const wire = back.packets.filter((p) => p.cmd === "publish") as Array<{ payload: Buffer; qos: number }>;
    expect(wire.map((p) => p.payload.toString())).toEqual(expected);
    expect(wire[0]!.qos).toBe(1);
    expect(wire[1]!.qos).toBe(2);
    expect(back.inbox.payloads().sort()).toEqual([...expected].sort());

    // The subscription survived: live messages flow without subscribing again.
    await pub.publish(`${base}/c`, "live", { qos: 1 });
    await back.inbox.waitForTopic(`${base}/c`);
    await back.end(version === 5 ? { properties: { sessionExpiryInterval: 0 } } : undefined);
  });

  it("resuming through the other route continues the same session", async () => {
    const base = topicBase("cross");
    const clientId = uid("cross");
    const sub = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    await sub.end();
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "queued", { qos: 1 });

    const back = await connect(broker().url, { version, route: other(route), clientId, ...persistent(version) });
    expect(back.connack?.sessionPresent).toBe(true);
    expect((await back.inbox.waitFor(1))[0]!.payload.toString()).toBe("queued");
    // Let the PUBACK leave before dropping, or the broker rightly sends "queued" again.
    await waitUntil(() => back.sent.some((p) => p.cmd === "puback"), "PUBACK sent");
    await sleep(SETTLE_MS);
    await back.drop();

    // And back again on the first route, after an ungraceful close.
    await pub.publish(`${base}/t`, "queued again", { qos: 1 });
    const third = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    expect(third.connack?.sessionPresent).toBe(true);
    expect((await third.inbox.waitFor(1))[0]!.payload.toString()).toBe("queued again");
    await third.end(version === 5 ? { properties: { sessionExpiryInterval: 0 } } : undefined);
  });

  it("clean start discards the session: sessionPresent 0, no queued messages, no subscriptions [MQTT-3.1.2-4]", async () => {
    const base = topicBase("discard");
    const clientId = uid("discard");
    const sub = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    await sub.end();
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "queued", { qos: 1 });

    const fresh = await connect(broker().url, { version, route, clientId, clean: true });
    expect(fresh.connack?.sessionPresent).toBe(false);
    await pub.publish(`${base}/t`, "live", { qos: 1 });
    await fresh.inbox.settle(QUIET_MS);
    expect(fresh.inbox.length, fresh.inbox.describe()).toBe(0);
    await fresh.end();

    // 3.1.1 clean session / 5.0 expiry 0: nothing is kept after this connection either.
    const again = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    expect(again.connack?.sessionPresent).toBe(false);
    await again.end(version === 5 ? { properties: { sessionExpiryInterval: 0 } } : undefined);
  });

  it("an unacknowledged QoS 1 message is sent again with DUP on reconnect [MQTT-4.4.0-1]", async () => {
    const base = topicBase("redeliver");
    const clientId = uid("redeliver");
    const url = mqttUrl(broker().url, route, clientId);
    const props = version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
    const raw = await rawSession(url, { version, clientId, clean: false, ...props });
    raw.send({ type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: `${base}/t`, qos: 2 }] });
    await raw.waitForType("suback");
    const pub = await connect(broker().url, { version });
    await pub.publish(`${base}/t`, "ack me", { qos: 1 });
    await pub.publish(`${base}/t`, "rec me", { qos: 2 });
    const first = await raw.waitForPublish((p) => p.qos === 1, 5_000, "QoS 1 PUBLISH");
    const second = await raw.waitForPublish((p) => p.qos === 2, 5_000, "QoS 2 PUBLISH");
    expect(first.dup).toBe(false);
    // QoS 1 is left unacknowledged; QoS 2 gets PUBREC, then the connection drops.
    raw.send({ type: "pubrec", packetId: second.packetId! });
    await sleep(300);
    raw.terminate();
    await raw.closed;

    const raw2 = await rawSession(url, { version, clientId, clean: false, ...props });
    const connack = raw2.packets.find((p) => p.type === "connack");
    expect(connack?.type === "connack" && connack.sessionPresent).toBe(true);
    const again = await raw2.waitForPublish(() => true, 5_000, "redelivered PUBLISH");
    expect(again.packetId).toBe(first.packetId);
    expect(again.dup, "DUP set on redelivery [MQTT-3.3.1-1]").toBe(true);
    expect(Buffer.from(again.payload).toString()).toBe("ack me");
    // The QoS 2 message already acknowledged with PUBREC continues with PUBREL, not PUBLISH.
    const pubrel = await raw2.waitForType("pubrel");
    expect(pubrel.packetId).toBe(second.packetId);
    expect(raw2.packets.filter((p) => p.type === "publish").length).toBe(1);
    raw2.send({ type: "puback", packetId: again.packetId! });
    raw2.send({ type: "pubcomp", packetId: pubrel.packetId });
    await sleep(300);
    raw2.send({ type: "disconnect", ...(version === 5 && { properties: { sessionExpiryInterval: 0 } }) });
    await raw2.waitClosed();
  });
});

describe("5.0 session expiry", () => {
  it.each(ROUTES)("expiry 2 s: after 3 s offline the session is gone and nothing was queued (%s)", async (route) => {
    const base = topicBase("expire");
    const clientId = uid("expire");
    const sub = await connect(broker().url, { version: 5, route, clientId, ...persistent(5, 2) });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    await sub.end();
    await sleep(3_000);
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/t`, "after expiry", { qos: 1 });
    const back = await connect(broker().url, { version: 5, route, clientId, ...persistent(5, 2) });
    expect(back.connack?.sessionPresent).toBe(false);
    await back.inbox.settle(QUIET_MS);
    expect(back.inbox.length, back.inbox.describe()).toBe(0);
  });

  it("expiry 2 s: a reconnect within it resumes the session", async () => {
    const base = topicBase("expire-in-time");
    const clientId = uid("expire-ok");
    const sub = await connect(broker().url, { version: 5, clientId, ...persistent(5, 2) });
    await sub.subscribe(`${base}/t`, { qos: 1 });
    await sub.end();
    const pub = await connect(broker().url, { version: 5 });
    await pub.publish(`${base}/t`, "in time", { qos: 1 });
    await sleep(500);
    const back = await connect(broker().url, { version: 5, clientId, ...persistent(5, 2) });
    expect(back.connack?.sessionPresent).toBe(true);
    await back.inbox.waitFor(1);
  });

  it("Session Expiry 0 (the default) ends the session with the connection, even with Clean Start 0", async () => {
    const clientId = uid("expiry0");
    const a = await connect(broker().url, { version: 5, clientId, clean: false });
    await a.subscribe(`${topicBase("e0")}/t`, { qos: 1 });
    await a.end();
    const b = await connect(broker().url, { version: 5, clientId, clean: false });
    expect(b.connack?.sessionPresent, "[MQTT-3.1.2-5]").toBe(false);
  });

  it("DISCONNECT can shorten the Session Expiry Interval to 0, ending the session", async () => {
    const clientId = uid("expiry-disc");
    const a = await connect(broker().url, { version: 5, clientId, ...persistent(5, 300) });
    await a.end({ properties: { sessionExpiryInterval: 0 } });
    const b = await connect(broker().url, { version: 5, clientId, ...persistent(5, 300) });
    expect(b.connack?.sessionPresent).toBe(false);
  });

  it("DISCONNECT changing Session Expiry from 0 to non-zero is a Protocol Error [MQTT-3.14.2-2]", async () => {
    const clientId = uid("expiry-bad");
    const raw = await rawSession(mqttUrl(broker().url, "relay", clientId), { version: 5, clientId });
    raw.send({ type: "disconnect", properties: { sessionExpiryInterval: 60 } });
    await raw.waitClosed();
    const d = raw.packets.find((p) => p.type === "disconnect");
    if (d && d.type === "disconnect") expect(d.reasonCode).toBe(0x82);
    // No session was kept.
    const b = await connect(broker().url, { version: 5, clientId, clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(b.connack?.sessionPresent).toBe(false);
  });
});
