// Will messages: published on an ungraceful close, not on DISCONNECT, 5.0 reason 0x04,
// Will Delay Interval, retained Wills and Will properties, against a real broker.
import { afterEach, describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import { VERSION_ROUTES, ROUTES, closeAll, connect, sleep, topicBase, uid, type Route, type Version } from "./clients";

const broker = useBroker();
afterEach(closeAll);

const QUIET_MS = 800;

async function watcher(version: Version, filter: string) {
  const w = await connect(broker().url, { version, label: "will watcher" });
  await w.subscribe(filter, { qos: 2 });
  return w;
}

describe.each(VERSION_ROUTES)("Will (v%i, %s)", (version, route) => {
  it("is published when the connection closes without DISCONNECT [MQTT-3.1.2-8]", async () => {
    const topic = `${topicBase("will")}/dead`;
    const w = await watcher(version, topic);
    const c = await connect(broker().url, {
      version,
      route,
      will: { topic, payload: Buffer.from("unexpectedly gone"), qos: 1, retain: false },
    });
    await c.drop();
    const [m] = await w.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("unexpectedly gone");
    expect(m!.qos).toBe(1);
    expect(m!.retain).toBe(false);
    await w.inbox.settle(300);
    expect(w.inbox.length, "published once").toBe(1);
  });

  it("is not published after a normal DISCONNECT [MQTT-3.1.2-10]", async () => {
    const topic = `${topicBase("will-clean")}/t`;
    const w = await watcher(version, topic);
    const c = await connect(broker().url, { version, route, will: { topic, payload: Buffer.from("no"), qos: 1, retain: false } });
    await c.end();
    await w.inbox.settle(QUIET_MS);
    expect(w.inbox.length).toBe(0);
  });

  it("with the RETAIN flag is stored as a retained message", async () => {
    const topic = `${topicBase("will-ret")}/t`;
    const c = await connect(broker().url, { version, route, will: { topic, payload: Buffer.from("last words"), qos: 1, retain: true } });
    const w = await watcher(version, topic);
    await c.drop();
    await w.inbox.waitFor(1);
    // A later subscriber gets it as a retained message.
    const late = await connect(broker().url, { version });
    await late.subscribe(topic, { qos: 1 });
    const [m] = await late.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("last words");
    expect(m!.retain).toBe(true);
  });
});

describe("5.0 Will", () => {
  it.each(ROUTES)("DISCONNECT with reason 0x04 publishes the Will (%s) [MQTT-3.14.4-3]", async (route) => {
    const topic = `${topicBase("will-04")}/t`;
    const w = await watcher(5, topic);
    const c = await connect(broker().url, { version: 5, route, will: { topic, payload: Buffer.from("asked for"), qos: 0, retain: false } });
    await c.end({ reasonCode: 0x04 });
    const [m] = await w.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("asked for");
  });

  it.each(ROUTES)("Will Delay Interval 2 s: published no earlier than 2 s after the close (%s)", async (route: Route) => {
    const topic = `${topicBase("will-delay")}/t`;
    const w = await watcher(5, topic);
    const c = await connect(broker().url, {
      version: 5,
      route,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic, payload: Buffer.from("delayed"), qos: 1, retain: false, properties: { willDelayInterval: 2 } },
    });
    const dropped = Date.now();
    await c.drop();
    const [m] = await w.inbox.waitFor(1, 6_000);
    const after = m!.at - dropped;
    expect(after, "Will Delay Interval respected [MQTT-3.1.3-9]").toBeGreaterThanOrEqual(1_800);
    expect(m!.payload.toString()).toBe("delayed");
  });

  it.each(ROUTES)("a reconnect (Clean Start 0) within the Will Delay cancels the Will (%s) [MQTT-3.1.3-9]", async (route) => {
    const topic = `${topicBase("will-cancel")}/t`;
    const w = await watcher(5, topic);
    const clientId = uid("will-cancel");
    const opts = {
      version: 5 as const,
      route,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    };
    const c = await connect(broker().url, {
      ...opts,
      will: { topic, payload: Buffer.from("should not"), qos: 1, retain: false, properties: { willDelayInterval: 2 } },
    });
    await c.drop();
    await sleep(500);
    const back = await connect(broker().url, opts);
    expect(back.connack?.sessionPresent).toBe(true);
    await w.inbox.settle(2_500);
    expect(w.inbox.length, w.inbox.describe()).toBe(0);
    // The new connection has no Will: a clean end publishes nothing either.
    await back.end({ properties: { sessionExpiryInterval: 0 } });
  });

  it("a reconnect with Clean Start 1 within the Will Delay ends the old session, and its Will is published", async () => {
    const topic = `${topicBase("will-clean-start")}/t`;
    const w = await watcher(5, topic);
    const clientId = uid("will-cs");
    const c = await connect(broker().url, {
      version: 5,
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic, payload: Buffer.from("session ended"), qos: 1, retain: false, properties: { willDelayInterval: 30 } },
    });
    await c.drop();
    await sleep(300);
    const back = await connect(broker().url, { version: 5, clientId, clean: true });
    expect(back.connack?.sessionPresent).toBe(false);
    // 5.0 3.1.3.2.2: the Will is sent when the Will Delay elapses or the session ends, whichever first.
    await w.inbox.waitFor(1);
  });

  it("a Will Delay longer than the Session Expiry: the Will goes when the session expires", async () => {
    const topic = `${topicBase("will-expiry")}/t`;
    const w = await watcher(5, topic);
    const c = await connect(broker().url, {
      version: 5,
      route: "fast",
      clean: false,
      properties: { sessionExpiryInterval: 1 },
      will: { topic, payload: Buffer.from("expired"), qos: 1, retain: false, properties: { willDelayInterval: 60 } },
    });
    const dropped = Date.now();
    await c.drop();
    const [m] = await w.inbox.waitFor(1, 6_000);
    expect(m!.at - dropped).toBeGreaterThanOrEqual(800);
  });

  it("Will properties are carried to subscribers", async () => {
    const topic = `${topicBase("will-props")}/t`;
    const w = await watcher(5, topic);
    const correlationData = Buffer.from([9, 8, 7, 0, 255]);
    const c = await connect(broker().url, {
      version: 5,
      will: {
        topic,
        payload: Buffer.from('{"state":"offline"}'),
        qos: 1,
        retain: false,
        properties: {
          payloadFormatIndicator: true,
          contentType: "application/json",
          responseTopic: `${topic}/reply`,
          correlationData,
          userProperties: { device: "d1", tag: ["a", "b"] },
          messageExpiryInterval: 120,
        },
      },
    });
    await c.drop();
    const [m] = await w.inbox.waitFor(1);
    const p = m!.properties;
    expect(p.payloadFormatIndicator).toBe(true);
    expect(p.contentType).toBe("application/json");
    expect(p.responseTopic).toBe(`${topic}/reply`);
    expect(Buffer.from(p.correlationData!).equals(correlationData)).toBe(true);
    expect(p.userProperties).toEqual({ device: "d1", tag: ["a", "b"] });
    expect(p.messageExpiryInterval).toBeGreaterThan(0);
    expect(p.messageExpiryInterval).toBeLessThanOrEqual(120);
  });

  it.each(ROUTES)("a session taken over publishes the old connection's Will (delay 0) (%s) [MQTT-3.1.4-3]", async (route) => {
    const topic = `${topicBase("will-takeover")}/t`;
    const w = await watcher(5, topic);
    const clientId = uid("will-to");
    const first = await connect(broker().url, {
      version: 5,
      route,
      clientId,
      will: { topic, payload: Buffer.from("taken over"), qos: 1, retain: false },
    });
    await connect(broker().url, { version: 5, route, clientId });
    await first.waitClosed();
    const [m] = await w.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("taken over");
  });
});
