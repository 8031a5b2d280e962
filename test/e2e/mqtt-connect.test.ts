// CONNECT / CONNACK, client identifiers, session takeover and keep alive, against a real broker.
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
  sleep,
  topicBase,
  uid,
  utf8,
  type Route,
  type Version,
} from "./clients";

const broker = useBroker();
afterEach(closeAll);

/** Options that make a session outlive its connection in either version. */
function persistent(version: Version) {
  return version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
}

describe.each(VERSION_ROUTES)("CONNACK (v%i, %s)", (version, route) => {
  it("sessionPresent is false for a new session and true when it is resumed", async () => {
    const clientId = uid("sp");
    const first = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    expect(first.connack?.sessionPresent).toBe(false);
    await first.end();

    const second = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    expect(second.connack?.sessionPresent, "resumed session [MQTT-3.2.2-3]").toBe(true);
    await second.end();

    // Clean start / clean session: the session is discarded, sessionPresent 0 [MQTT-3.2.2-2].
    const third = await connect(broker().url, { version, route, clientId, clean: true });
    expect(third.connack?.sessionPresent).toBe(false);
    await third.end();
  });

  it("a clean connection reports sessionPresent false even if used twice", async () => {
    const clientId = uid("clean");
    const a = await connect(broker().url, { version, route, clientId, clean: true });
    expect(a.connack?.sessionPresent).toBe(false);
    await a.end();
    const b = await connect(broker().url, { version, route, clientId, clean: true });
    expect(b.connack?.sessionPresent).toBe(false);
    await b.end();
  });
});

describe("client identifier", () => {
  it.each(["relay", "fast"] as const)("5.0 empty client id gets an Assigned Client Identifier (%s)", async (route) => {
    const hint = uid("hint");
    const c = await connect(broker().url, { version: 5, route, clientId: "", hint });
    const assigned = c.connack?.properties?.assignedClientIdentifier;
    expect(typeof assigned, "CONNACK Assigned Client Identifier [MQTT-3.2.2-16]").toBe("string");
    expect(assigned!.length).toBeGreaterThan(0);
    // On the fast path the identifier in the URL names the session object.
    if (route === "fast") expect(assigned).toBe(hint);

    // The assigned identifier really is the session's: pub/sub works through it.
    const topic = `${topicBase("assigned")}/x`;
    await c.subscribe(topic, { qos: 1 });
    await c.publish(topic, "hello", { qos: 1 });
    const got = await c.inbox.waitForTopic(topic);
    expect(got.payload.toString()).toBe("hello");
    await c.end();
  });

  it("two 5.0 clients with empty ids on /mqtt get different identifiers", async () => {
    const a = await connect(broker().url, { version: 5, clientId: "" });
    const b = await connect(broker().url, { version: 5, clientId: "" });
    const idA = a.connack?.properties?.assignedClientIdentifier;
    const idB = b.connack?.properties?.assignedClientIdentifier;
    expect(idA).toBeTruthy();
    expect(idB).toBeTruthy();
    expect(idA).not.toBe(idB);
    // Both stay connected (no takeover between them).
    await sleep(300);
    expect(a.closed).toBe(false);
    expect(b.closed).toBe(false);
  });

  it.each(["relay", "fast"] as const)("3.1.1 empty client id with clean session = 1 is accepted (%s)", async (route) => {
    const c = await connect(broker().url, { version: 4, route, clientId: "", clean: true });
    expect(c.connack?.returnCode ?? 0).toBe(0);
    expect(c.connack?.sessionPresent).toBe(false);
    await c.end();
  });

  it.each(["relay", "fast"] as const)(
    "3.1.1 empty client id with clean session = 0 is refused with return code 2 (%s) [MQTT-3.1.3-8]",
    async (route: Route) => {
      const url = mqttUrl(broker().url, route, uid("hint"));
      const raw = await rawConnect(url, connectPacket({ version: 4, clientId: "", clean: false }));
      const connack = await raw.waitForType("connack");
      expect(connack.reasonCode, "CONNACK return code 0x02 Identifier rejected").toBe(2);
      expect(connack.sessionPresent).toBe(false);
      await raw.waitClosed();

      // (MQTT.js refuses to send such a CONNECT itself: "Missing clientId for unclean clients".)
    },
  );

  it("fast path: a CONNECT whose client id differs from the URL is refused", async () => {
    for (const version of VERSIONS) {
      const url = mqttUrl(broker().url, "fast", uid("url-id"));
      const raw = await rawConnect(url, connectPacket({ version, clientId: uid("other-id") }));
      const connack = await raw.waitForType("connack");
      expect(connack.reasonCode).toBe(version === 5 ? 0x85 : 2);
      await raw.waitClosed();
    }
  });
});

describe("session takeover [MQTT-3.1.4-3]", () => {
  const cases: Array<[Version, Route, Route]> = [];
  for (const v of VERSIONS) for (const [a, b] of [["relay", "relay"], ["fast", "fast"], ["relay", "fast"], ["fast", "relay"]] as const) cases.push([v, a, b]);

  it.each(cases)("v%i: a second connection (%s then %s) closes the first", async (version, routeA, routeB) => {
    const clientId = uid("takeover");
    const first = await connect(broker().url, { version, route: routeA, clientId });
    const second = await connect(broker().url, { version, route: routeB, clientId });
    expect(second.connack?.sessionPresent).toBe(false);

    await first.waitClosed();
    if (version === 5) {
      const disconnect = await first.waitForDisconnect(1_000);
      expect(disconnect.reasonCode, "DISCONNECT 0x8E Session taken over").toBe(0x8e);
    }

    // The new connection owns the session and works.
    const topic = `${topicBase("takeover")}/t`;
    await second.subscribe(topic, { qos: 1 });
    await second.publish(topic, "still here", { qos: 1 });
    expect((await second.inbox.waitForTopic(topic)).payload.toString()).toBe("still here");
    expect(second.closed).toBe(false);
    await second.end();
  });

  it.each(VERSIONS)("v%i: a taken-over persistent session is resumed by the new connection", async (version) => {
    const clientId = uid("takeover-p");
    const topic = `${topicBase("takeover-p")}/t`;
    const first = await connect(broker().url, { version, route: "relay", clientId, ...persistent(version) });
    await first.subscribe(topic, { qos: 1 });
    const second = await connect(broker().url, { version, route: "fast", clientId, ...persistent(version) });
    expect(second.connack?.sessionPresent, "session continues with the new connection").toBe(true);
    await first.waitClosed();
    const pub = await connect(broker().url, { version });
    await pub.publish(topic, "to the new one", { qos: 1 });
    expect((await second.inbox.waitForTopic(topic)).payload.toString()).toBe("to the new one");
    await sleep(300);
    expect(first.inbox.length).toBe(0);
    await second.end({ properties: version === 5 ? { sessionExpiryInterval: 0 } : undefined } as never);
    await pub.end();
  });
});

describe.each(VERSION_ROUTES)("takeover with Clean Start (v%i, %s)", (version, route) => {
  it("a clean connection taking over a connected persistent session gets CONNACK and a fresh session", async () => {
    const clientId = uid("takeover-clean");
    const topic = `${topicBase("takeover-clean")}/t`;
    const first = await connect(broker().url, { version, route, clientId, ...persistent(version) });
    await first.subscribe(topic, { qos: 1 });
    const second = await connect(broker().url, { version, route: route === "relay" ? "fast" : "relay", clientId, clean: true });
    expect(second.connack?.sessionPresent).toBe(false);
    await first.waitClosed();
    // The old subscription went with the old session.
    const pub = await connect(broker().url, { version });
    await pub.publish(topic, "x", { qos: 1 });
    await second.inbox.settle(600);
    expect(second.inbox.length).toBe(0);
    // The new session works.
    await second.subscribe(topic, { qos: 1 });
    await pub.publish(topic, "y", { qos: 1 });
    expect((await second.inbox.waitFor(1))[0]!.payload.toString()).toBe("y");
  });
});

describe.each(VERSION_ROUTES)("keep alive (v%i, %s)", (version, route) => {
  it("a silent client is disconnected after 1.5 x keep alive and its Will is published", async () => {
    const clientId = uid("ka");
    const willTopic = `${topicBase("ka-will")}/${clientId}`;
    const watcher = await connect(broker().url, { version });
    await watcher.subscribe(willTopic, { qos: 1 });

    const started = Date.now();
    const raw = await rawSession(mqttUrl(broker().url, route, clientId), {
      version,
      clientId,
      keepAlive: 1,
      will: { topic: willTopic, payload: utf8("gone silent"), qos: 1, retain: false },
    });
    // Send nothing more. 1.5 s is the deadline; the alarm may add some slack.
    const closed = await raw.waitClosed(6_000);
    const elapsed = Date.now() - started;
    // 1.5 s is the earliest allowed; a little tolerance for clocks (workerd's Date.now() is coarse).
    expect(elapsed, "closed too early: must wait 1.5 x keep alive [MQTT-3.1.2-24]").toBeGreaterThanOrEqual(1_200);
    expect(closed).toBeDefined();
    if (version === 5) {
      // Optional in 5.0, but if a DISCONNECT is sent it must say why.
      const d = raw.packets.find((p) => p.type === "disconnect");
      if (d && d.type === "disconnect") expect(d.reasonCode).toBe(0x8d);
    }
    const will = await watcher.inbox.waitForTopic(willTopic);
    expect(will.payload.toString()).toBe("gone silent");
    await watcher.end();
  });

  it("PINGREQ gets PINGRESP and keeps the connection alive past the keep alive deadline", async () => {
    const clientId = uid("ping");
    const raw = await rawSession(mqttUrl(broker().url, route, clientId), { version, clientId, keepAlive: 1 });
    const start = Date.now();
    let pings = 0;
    while (Date.now() - start < 3_200) {
      raw.send({ type: "pingreq" });
      pings++;
      await sleep(500);
    }
    const pingresps = raw.packets.filter((p) => p.type === "pingresp").length;
    expect(raw.closedInfo, `connection closed while pinging: ${raw.describe()}`).toBeUndefined();
    expect(pingresps, raw.describe()).toBeGreaterThanOrEqual(pings - 1);
    raw.send({ type: "disconnect" });
    await raw.waitClosed();
  });
});
