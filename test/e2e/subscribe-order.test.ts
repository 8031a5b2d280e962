// Subscribe, then publish at once (issue 15): a subscription takes effect for every message
// that reaches the broker after its SUBSCRIBE did, as on a one-threaded broker, even when the
// PUBLISH reaches the topic's shard before the subscription does. Exactly once: no message
// missed, none twice (docs/architecture.md, "Subscribe, then publish: the ordering window").
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import { ROUTES, closeAll, connect, sleep, topicBase, type Conn, type Route } from "./clients";
import { pahoAvailable, PYTHON } from "./python";

const ROUNDS = 20;
/** Quiet period to let a duplicate (or a message that must not come) arrive. */
const QUIET_MS = 600;
const SCRIPT = fileURLToPath(new URL("./paho/subscribe_order.py", import.meta.url));

const broker = useBroker({ vars: { MAX_PUBLISH_RATE: "0" } });
afterEach(closeAll);

/**
 * B subscribes and A publishes in the same step, as two devices would at once: neither waits
 * for anything. Records in `written` the order in which MQTT.js wrote the two packets.
 */
function subscribeAndPublish(b: Conn, a: Conn, topic: string, qos: 0 | 1, written: string[]): Promise<unknown> {
  const subscribed = b.subscribe(topic, { qos });
  const published = a.publish(topic, topic.split("/").at(-1)!, { qos });
  return Promise.all([subscribed, published]).then(() => written);
}

/** Remembers, in `written`, each SUBSCRIBE B writes ("B") and each PUBLISH A writes ("A"). */
function recordWrites(b: Conn, a: Conn): string[] {
  const written: string[] = [];
  b.client.on("packetsend", (p) => p.cmd === "subscribe" && written.push("B"));
  a.client.on("packetsend", (p) => p.cmd === "publish" && written.push("A"));
  return written;
}

/** Every topic received exactly once: the counts per topic that are not 1. */
function notOnce(received: { topic: string }[], topics: string[]): Record<string, number> {
  const counts = new Map(topics.map((t) => [t, 0]));
  for (const m of received) counts.set(m.topic, (counts.get(m.topic) ?? 0) + 1);
  return Object.fromEntries([...counts].filter(([, n]) => n !== 1));
}

describe.each(ROUTES.flatMap((route) => ([0, 1] as const).map((qos) => [route, qos] as const)))(
  "MQTT.js, %s route, QoS %i: B subscribes, A publishes without waiting for the SUBACK",
  (route: Route, qos) => {
    it(`B gets every one of ${ROUNDS} messages exactly once`, async () => {
      const base = topicBase(`order-${route}-${qos}`);
      const a = await connect(broker().url, { version: 5, route, label: "A" });
      const b = await connect(broker().url, { version: 5, route, label: "B" });
      const written = recordWrites(b, a);
      const topics: string[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const topic = `${base}/${i}`;
        topics.push(topic);
        await subscribeAndPublish(b, a, topic, qos, written);
      }
      // The premise: in every round B's SUBSCRIBE was written before A's PUBLISH.
      expect(written.join("")).toBe("BA".repeat(ROUNDS));
      await b.inbox.waitFor(ROUNDS).catch(() => undefined); // counted below
      await b.inbox.settle(QUIET_MS);
      expect(notOnce(b.inbox.messages, topics), b.inbox.describe()).toEqual({});
      expect(b.inbox.messages.every((m) => m.qos === qos && !m.retain)).toBe(true);
    });
  },
);

describe.skipIf(!pahoAvailable).each(ROUTES.flatMap((route) => ([0, 1] as const).map((qos) => [route, qos] as const)))(
  "paho 1.6 (MQTT 3.1.1), %s route, QoS %i: B subscribes, A publishes without waiting for the SUBACK",
  (route: Route, qos) => {
    it(`B gets every one of ${ROUNDS} messages exactly once`, async () => {
      const { port } = broker();
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(PYTHON, [SCRIPT, "127.0.0.1", String(port), "4", String(qos), String(ROUNDS), route], { timeout: 90_000 }, (err, out, errOut) =>
          err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
        );
      });
      const { received } = JSON.parse(stdout) as { received: { topic: string; payload: string; qos: number }[] };
      const prefix = received[0]?.topic.split("/").slice(0, -1).join("/") ?? "none";
      const topics = Array.from({ length: ROUNDS }, (_, i) => `${prefix}/${i}`);
      expect(notOnce(received, topics), JSON.stringify(received)).toEqual({});
      expect(received.map((m) => m.payload)).toEqual(topics.map((_, i) => `m${i}`));
    });
  },
);

describe("what the replay must not do", () => {
  it.each(ROUTES)("%s: a message published before the SUBSCRIBE was sent is not delivered (it is not retained)", async (route) => {
    const base = topicBase("before");
    const a = await connect(broker().url, { version: 5, route });
    const b = await connect(broker().url, { version: 5, route });
    await a.publish(`${base}/x`, "too early", { qos: 1 }); // PUBACK: routed, no subscriber
    await sleep(300); // well past the replay's tolerance (100 ms, core/session/recent.ts)
    await b.subscribe(`${base}/x`, { qos: 1 });
    await a.publish(`${base}/x`, "after", { qos: 1 });
    await b.inbox.waitFor(1);
    await b.inbox.settle(QUIET_MS);
    expect(b.inbox.payloads()).toEqual(["after"]);
  });

  it.each(ROUTES)("%s: overlapping subscriptions sent before the PUBLISH deliver it once", async (route) => {
    const base = topicBase("overlap");
    const a = await connect(broker().url, { version: 5, route });
    const b = await connect(broker().url, { version: 5, route });
    // Two overlapping subscriptions and the PUBLISH, all at once.
    const both = Promise.all([b.subscribe(`${base}/+`, { qos: 1 }), b.subscribe(`${base}/#`, { qos: 0 })]);
    await Promise.all([both, a.publish(`${base}/x`, "once", { qos: 1 })]);
    // A third overlapping subscription, sent after the message was delivered: no replay either.
    await b.inbox.waitFor(1);
    await b.subscribe(`${base}/x`, { qos: 1 });
    await b.inbox.settle(QUIET_MS);
    expect(b.inbox.payloads()).toEqual(["once"]);
    expect(b.inbox.messages[0]!.qos).toBe(1); // the highest granted QoS of the overlapping ones
  });

  it.each(ROUTES)("%s: shared subscription: the first member of a new group gets the message published at once, one member only", async (route) => {
    const base = topicBase("shared");
    const a = await connect(broker().url, { version: 5, route });
    const w1 = await connect(broker().url, { version: 5, route, label: "W1" });
    const w2 = await connect(broker().url, { version: 5, route, label: "W2" });
    // W1 and W2 join the empty group at once, with A's PUBLISH: exactly one of them gets it.
    await Promise.all([
      w1.subscribe(`$share/g/${base}/x`, { qos: 1 }),
      w2.subscribe(`$share/g/${base}/x`, { qos: 1 }),
      a.publish(`${base}/x`, "one member", { qos: 1 }),
    ]);
    await sleep(QUIET_MS);
    expect([...w1.inbox.payloads(), ...w2.inbox.payloads()]).toEqual(["one member"]);
  });

  it("a retained message published just after the SUBSCRIBE arrives once, with the messages after it in order", async () => {
    const base = topicBase("retained");
    const a = await connect(broker().url, { version: 5, route: "fast" });
    const b = await connect(broker().url, { version: 5, route: "fast" });
    const granted = b.subscribe(`${base}/r`, { qos: 1 });
    const sends = [a.publish(`${base}/r`, "r1", { qos: 1, retain: true }), a.publish(`${base}/r`, "live", { qos: 1 })];
    await Promise.all([granted, ...sends]);
    await b.inbox.waitFor(2);
    await b.inbox.settle(QUIET_MS);
    expect(b.inbox.payloads()).toEqual(["r1", "live"]);
  });
});
