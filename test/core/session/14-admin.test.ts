// A session ended by an operator (the admin API): disconnect (the session stays, the Will is
// published: the server closed the connection [MQTT-3.1.2-8]) and decommission (the Will is
// discarded, the queue, in-flight state and subscriptions dropped). MQTT 5.0 sends DISCONNECT
// 0x98 Administrative action first (3.14.2.1); MQTT 3.1.1 has no DISCONNECT from the server.
import { describe, expect, it } from "vitest";
import { ReasonCode, type Will } from "../../../core/mqtt/packets.js";
import { Harness, ack, bytes, delivery, kinds, pick, sub } from "./harness.js";

const will = (extra: Partial<Will> = {}): Will => ({ topic: "devices/c1/status", payload: bytes("offline"), qos: 1, retain: true, ...extra });

/** A persistent session with a Will, two subscriptions, one QoS 1 message in flight and, once offline, more queued. */
function busySession(v: 4 | 5, willExtra: Partial<Will> = {}): Harness {
  const h = new Harness();
  h.connectPersistent(v, { will: will(willExtra) });
  h.subscribe(1, sub("a/#", 1), sub("b/+", 2));
  h.deliver(delivery("a/1", "in flight", 1)); // sent, not acknowledged
  return h;
}

describe("14 admin: disconnect keeps the session", () => {
  it("5.0: DISCONNECT 0x98 with a reason string, then close; the Will is published", () => {
    const h = busySession(5);
    const effects = h.session.admin.disconnect(h.now);
    expect(kinds(effects)).toEqual(["send:disconnect", "close", "route", "presence"]);
    const d = h.one(effects, "disconnect");
    expect(d.reasonCode).toBe(ReasonCode.AdministrativeAction);
    expect(d.properties?.reasonString).toBe("disconnected by an administrator");
    expect(pick(effects, "close")[0]!.reason).toBe(0x98);
    expect(pick(effects, "route")[0]!.message.topic).toBe("devices/c1/status");
    const presence = pick(effects, "presence")[0]!.event;
    expect(presence.online).toBe(false);
    expect(presence.willFired).toBe(true);
    expect(presence).toMatchObject({ reason: "admin-disconnect", code: ReasonCode.AdministrativeAction });
    // The session stays: subscriptions, the unacknowledged message, expiry counting from now.
    expect(h.session.connected).toBe(false);
    expect(h.store.subscriptions().map((s) => s.filter)).toEqual(["a/#", "b/+"]);
    expect(h.session.record?.expiresAt).toBe(h.now + 3600_000);
    h.deliver(delivery("b/x", "queued while away", 2));
    const back = h.connectPersistent(5);
    expect(h.one(back, "connack").sessionPresent).toBe(true);
    expect(h.sentOf(back, "publish").map((p) => [p.topic, p.dup])).toEqual([
      ["a/1", true],
      ["b/x", false],
    ]);
  });

  it("3.1.1: closed without a DISCONNECT; the Will is published, the session kept", () => {
    const h = busySession(4);
    const effects = h.session.admin.disconnect(h.now);
    expect(kinds(effects)).toEqual(["close", "route", "presence"]);
    expect(h.one(h.connectPersistent(4), "connack").sessionPresent).toBe(true);
  });

  it("a Will with a Will Delay is scheduled, not published at once (5.0 3.1.3.2.2)", () => {
    const h = busySession(5, { properties: { willDelayInterval: 30 } });
    const effects = h.session.admin.disconnect(h.now);
    expect(pick(effects, "route")).toEqual([]);
    expect(h.session.record?.willAt).toBe(h.now + 30_000);
  });

  it("a clean session (expiry 0) ends with the connection, as on any server close [MQTT-3.1.2-5]", () => {
    const h = new Harness();
    h.connect(5, { will: will() });
    h.subscribe(1, sub("a/#"));
    const effects = h.session.admin.disconnect(h.now);
    expect(kinds(effects)).toEqual(["send:disconnect", "close", "route", "presence", "unsubscribe", "ended"]);
    expect(h.session.record).toBeUndefined();
  });

  it("does nothing when no connection is attached", () => {
    const h = busySession(5);
    h.packet({ type: "disconnect" });
    expect(h.session.admin.disconnect(h.now)).toEqual([]);
    expect(new Harness().session.admin.disconnect(0)).toEqual([]);
  });
});

describe("14 admin: end (decommission)", () => {
  for (const v of [4, 5] as const) {
    it(`v${v}: connected: ${v === 5 ? "DISCONNECT 0x98, " : ""}close, no Will, everything dropped, unsubscribed`, () => {
      const h = busySession(v);
      const { effects, result } = h.session.admin.end(h.now);
      expect(kinds(effects)).toEqual([...(v === 5 ? ["send:disconnect"] : []), "close", "unsubscribe", "ended"]);
      if (v === 5) expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.AdministrativeAction);
      expect(pick(effects, "route"), "the Will is discarded").toEqual([]);
      expect(pick(effects, "presence"), "the registry records the decommission itself").toEqual([]);
      expect(pick(effects, "unsubscribe")[0]).toStrictEqual({ kind: "unsubscribe", clientId: "c1", filters: ["a/#", "b/+"] });
      expect(result).toStrictEqual({ existed: true, wasConnected: true, subscriptions: 2, messagesDropped: 1, willDiscarded: true });
      expect(h.session.record).toBeUndefined();
      expect(h.store.outboundCount()).toBe(0);
      expect(h.store.subscriptions()).toEqual([]);
      // A reconnect finds no session, and nothing arrives for the old subscriptions.
      expect(h.session.deliver([delivery("a/2", "late", 1)], h.now).live).toBe(false);
      expect(h.one(h.connectPersistent(v), "connack").sessionPresent).toBe(false);
    });
  }

  it("offline with a queue and a Will waiting for its delay: the Will is not published, the queue dropped", () => {
    const h = busySession(5, { properties: { willDelayInterval: 600 } });
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    expect(h.session.record?.willAt).toBeDefined();
    h.deliver(delivery("a/2", "queued", 1), delivery("b/c", "queued", 2));
    const { effects, result } = h.session.admin.end(h.advance(1000));
    expect(kinds(effects)).toEqual(["unsubscribe", "ended"]);
    expect(result).toStrictEqual({ existed: true, wasConnected: false, subscriptions: 2, messagesDropped: 3, willDiscarded: true });
    expect(h.session.nextDeadline()).toBeUndefined();
    expect(h.session.alarm(h.advance(600_000))).toEqual([]);
  });

  it("inbound QoS 2 state goes too: a retransmitted PUBLISH after a reconnect is routed as new", () => {
    const h = new Harness();
    h.connectPersistent(5);
    const routed = pick(h.packet({ type: "publish", topic: "x", payload: bytes("1"), qos: 2, retain: false, dup: false, packetId: 7 }), "route");
    h.packet(ack("pubrec", 99)); // unrelated noise
    expect(h.store.inboundQos2Count()).toBe(1);
    h.session.routed(routed[0]!.ticket!, 1);
    h.session.admin.end(h.now);
    expect(h.store.inboundQos2Count()).toBe(0);
  });

  it("a clean session (expiry 0) connected: ended once", () => {
    const h = new Harness();
    h.connect(4, { will: will() });
    h.subscribe(1, sub("a"));
    const { effects } = h.session.admin.end(h.now);
    expect(kinds(effects)).toEqual(["close", "unsubscribe", "ended"]);
  });

  it("no session: nothing to do", () => {
    const h = new Harness();
    const { effects, result } = h.session.admin.end(h.now);
    expect(effects).toEqual([]);
    expect(result.existed).toBe(false);
  });
});

describe("14 admin: describe", () => {
  it("subscriptions with options, in-flight and queued counts and bytes, expiry", () => {
    const h = busySession(5);
    h.subscribe(2, sub("c", 0, { noLocal: true, retainHandling: 2, retainAsPublished: true }));
    const online = h.session.admin.describe()!;
    expect(online).toMatchObject({
      clientId: "c1",
      connected: true,
      protocolVersion: 5,
      expiryInterval: 3600,
      connectedAt: h.now,
      keepAlive: 60,
      willPending: true,
      outboundInFlight: 1,
      outboundInFlightBytes: "a/1".length + "in flight".length,
      queued: 0,
      queuedBytes: 0,
      inboundAwaitingRelease: 0,
    });
    expect(online.expiresAt).toBeUndefined();
    expect(online.subscriptions.map((s) => [s.filter, s.qos])).toEqual([
      ["a/#", 1],
      ["b/+", 2],
      ["c", 0],
    ]);
    expect(online.subscriptions[2]).toMatchObject({ noLocal: true, retainHandling: 2, retainAsPublished: true });

    h.packet({ type: "disconnect" });
    h.deliver(delivery("b/q", "12345", 1), delivery("b/q", "67890", 1));
    const offline = h.session.admin.describe()!;
    expect(offline).toMatchObject({ connected: false, expiresAt: h.now + 3600_000, queued: 2, queuedBytes: 2 * ("b/q".length + 5), willPending: false });
    expect(offline.connectedAt).toBeUndefined();
  });

  it("no session: undefined, and nothing is stored by looking", () => {
    const h = new Harness();
    expect(h.session.admin.describe()).toBeUndefined();
    expect(h.store.load()).toBeUndefined();
    expect(h.store.outboundCount()).toBe(0);
  });
});
