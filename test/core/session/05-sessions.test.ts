// Persistent sessions, offline queue, redelivery and session expiry:
// MQTT 3.1.1 sections 3.1.2.4 and 4.4, MQTT 5.0 sections 3.1.2.11, 4.1 and 4.4.
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../core/mqtt/packets.js";
import { Harness, ack, delivery, kinds, pick, sub, text } from "./harness.js";

const payloads = (ps: { payload: Uint8Array }[]) => ps.map((p) => text(p.payload));

describe("05 sessions: offline queue", () => {
  for (const v of [4, 5] as const) {
    it(`v${v}: QoS 1/2 messages queued offline are delivered on reconnect, session present 1`, () => {
      const h = new Harness();
      h.connectPersistent(v);
      h.subscribe(1, sub("a/#", 2));
      h.packet({ type: "disconnect" });
      expect(h.deliver(delivery("a/1", "one", 1), delivery("a/2", "two", 2), delivery("a/3", "zero", 0))).toEqual([]);
      expect(h.store.outboundCount()).toBe(2); // QoS 0 is not kept offline
      const effects = h.connectPersistent(v);
      expect(h.one(effects, "connack").sessionPresent).toBe(true);
      const pubs = h.sentOf(effects, "publish");
      expect(payloads(pubs)).toEqual(["one", "two"]);
      expect(pubs.map((p) => [p.qos, p.dup])).toEqual([
        [1, false],
        [2, false],
      ]);
      // CONNACK first, then the queue.
      expect(kinds(effects)[0]).toBe("send:connack");
    });
  }

  it("in-flight messages are resent with DUP=1 on reconnect; released QoS 2 as PUBREL [MQTT-4.4.0-1]", () => {
    const h = new Harness();
    h.connectPersistent(5);
    const first = h.sentOf(h.deliver(delivery("a", "q1", 1), delivery("a", "q2", 2), delivery("a", "q2b", 2)), "publish");
    expect(first.map((p) => p.packetId)).toEqual([1, 2, 3]);
    h.packet(ack("pubrec", 3)); // third is released
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.advance(1000));
    h.deliver(delivery("a", "later", 1)); // queued while offline
    const effects = h.connectPersistent(5);
    const sent = h.sent(effects).slice(1);
    expect(sent.map((p) => p.type)).toEqual(["publish", "publish", "pubrel", "publish"]);
    const [p1, p2, rel, p4] = sent as [any, any, any, any];
    expect([p1.packetId, p1.dup, text(p1.payload)]).toEqual([1, true, "q1"]);
    expect([p2.packetId, p2.dup, p2.qos]).toEqual([2, true, 2]);
    expect(rel).toStrictEqual({ type: "pubrel", packetId: 3 });
    expect([p4.dup, text(p4.payload)]).toEqual([false, "later"]);
    expect(p4.packetId).not.toBeOneOf([1, 2, 3]);
  });

  it("3.1.1: in-flight resend after reconnect, then the acks complete the flows", () => {
    const h = new Harness();
    h.connectPersistent(4);
    const p = h.one(h.deliver(delivery("a", "x", 2)), "publish");
    h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
    const again = h.one(h.connectPersistent(4), "publish");
    expect([again.packetId, again.dup]).toEqual([p.packetId, true]);
    h.packet(ack("pubrec", p.packetId!));
    h.packet(ack("pubcomp", p.packetId!));
    h.session.flushWrites();
    expect(h.store.outboundCount()).toBe(0);
  });

  it("packet identifiers keep counting across connections", () => {
    const h = new Harness();
    h.connectPersistent(4);
    h.deliver(delivery("a", "1"), delivery("a", "2"));
    h.packet(ack("puback", 1));
    h.packet(ack("puback", 2));
    h.packet({ type: "disconnect" });
    h.rehydrate();
    h.connectPersistent(4);
    expect(h.one(h.deliver(delivery("a", "3")), "publish").packetId).toBe(3);
  });

  it("QoS 0 is not queued offline", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.packet({ type: "disconnect" });
    h.deliver(delivery("a", "x", 0));
    expect(h.store.outboundCount()).toBe(0);
    expect(h.sentOf(h.connectPersistent(5), "publish")).toEqual([]);
  });

  it("the queue is bounded by maxQueuedMessages: the oldest queued is dropped", () => {
    const h = new Harness({ maxQueuedMessages: 3 });
    h.connectPersistent(5);
    h.packet({ type: "disconnect" });
    h.deliver(...["1", "2", "3", "4", "5"].map((s) => delivery("a", s)));
    expect(h.store.outboundCount()).toBe(3);
    expect(payloads(h.sentOf(h.connectPersistent(5), "publish"))).toEqual(["3", "4", "5"]);
  });

  it("the queue bound never drops a message in flight", () => {
    const h = new Harness({ maxQueuedMessages: 1 });
    h.connectPersistent(5, { properties: { receiveMaximum: 1 } });
    h.deliver(delivery("a", "1"));
    h.deliver(delivery("a", "2"), delivery("a", "3"));
    expect(h.store.outbound(10).map((e) => [e.state, text(e.delivery.message.payload)])).toEqual([
      ["sent", "1"],
      ["queued", "3"],
    ]);
  });

  it("a session that expires while disconnected has its stored messages dropped", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 10);
    h.packet({ type: "disconnect" });
    h.deliver(delivery("a", "x"));
    h.advance(11_000);
    h.session.alarm(h.now);
    expect(h.store.outboundCount()).toBe(0);
  });
});

describe("05 sessions: expiry", () => {
  it("alarm at the expiry ends the session: unsubscribe and ended", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 60);
    h.subscribe(1, sub("a", 1), sub("b/#", 0));
    h.packet({ type: "disconnect" });
    const expiresAt = h.now + 60_000;
    expect(h.session.record?.expiresAt).toBe(expiresAt);
    expect(h.session.nextDeadline()).toBe(expiresAt);
    expect(h.session.alarm(expiresAt - 1)).toEqual([]);
    const effects = h.session.alarm(expiresAt);
    expect(kinds(effects)).toEqual(["unsubscribe", "ended"]);
    expect([...pick(effects, "unsubscribe")[0]!.filters].sort()).toEqual(["a", "b/#"]);
    expect(h.session.record).toBeUndefined();
    expect(h.store.load()).toBeUndefined();
    expect(h.session.nextDeadline()).toBeUndefined();
    expect(h.session.alarm(expiresAt + 1)).toEqual([]);
  });

  it("nextDeadline: none while connected, none for a session that never expires", () => {
    const h = new Harness({ maxSessionExpiry: 0xffffffff });
    expect(h.session.nextDeadline()).toBeUndefined();
    h.connectPersistent(5, {}, 0xffffffff);
    expect(h.session.nextDeadline()).toBeUndefined();
    h.packet({ type: "disconnect" });
    expect(h.session.record).toBeDefined();
    expect(h.session.nextDeadline()).toBeUndefined();
  });

  it("3.1.1 persistent sessions expire after the configured maximum", () => {
    const h = new Harness({ maxSessionExpiry: 100 });
    h.connectPersistent(4);
    h.packet({ type: "disconnect" });
    expect(h.session.nextDeadline()).toBe(h.now + 100_000);
  });

  it("expiry is counted from the disconnect and survives a new Session object", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 30);
    h.advance(5000);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    h.rehydrate();
    expect(h.session.nextDeadline()).toBe(h.now + 30_000);
    expect(kinds(h.session.alarm(h.now + 30_000))).toEqual(["ended"]);
  });

  it("5.0 DISCONNECT may change a non-zero Session Expiry Interval", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 60);
    h.packet({ type: "disconnect", properties: { sessionExpiryInterval: 5 } });
    expect(h.session.nextDeadline()).toBe(h.now + 5000);
  });

  it("5.0 DISCONNECT with Session Expiry 0 ends the session now", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 60);
    h.subscribe(1, sub("t"));
    const effects = h.packet({ type: "disconnect", properties: { sessionExpiryInterval: 0 } });
    expect(kinds(effects)).toEqual(["close", "presence", "unsubscribe", "ended"]);
  });

  it("5.0 DISCONNECT setting a non-zero expiry when CONNECT had 0: DISCONNECT 0x82 [MQTT-3.14.2-2]", () => {
    const h = new Harness();
    h.connect(5, { will: { topic: "w", payload: new Uint8Array(), qos: 0, retain: false } });
    const effects = h.packet({ type: "disconnect", properties: { sessionExpiryInterval: 60 } });
    expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ProtocolError);
    expect(kinds(effects)).toContain("close");
    // Treated as a protocol error: the Will is published.
    expect(pick(effects, "route")).toHaveLength(1);
    expect(h.session.record).toBeUndefined();
  });

  it("deliver() after the session ended returns live=false", () => {
    const h = new Harness();
    h.connect(5);
    h.packet({ type: "disconnect" });
    expect(h.session.deliver([delivery("a", "x")], h.now)).toEqual({ effects: [], live: false });
  });

  it("deliver() to a never-created session returns live=false", () => {
    const h = new Harness();
    expect(h.session.deliver([delivery("a", "x")], h.now).live).toBe(false);
  });

  it("presence offline carries the reason and whether the Will fired", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: { topic: "w", payload: new Uint8Array(), qos: 0, retain: false } });
    const connectedAt = h.now;
    h.now += 5_000;
    const effects = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    expect(pick(effects, "presence")[0]!.event).toEqual({
      clientId: "c1",
      online: false,
      at: h.now,
      connectedAt,
      reason: "keepalive-timeout",
      code: ReasonCode.KeepAliveTimeout,
      willFired: true,
      sessionExpiresAt: h.now + 3600_000,
    });
    expect(h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now)).toEqual([]); // once
  });

  it("packets after the connection is lost are ignored", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.session.connectionLost(0x80, h.now);
    expect(h.packet({ type: "pingreq" })).toEqual([]);
  });

  it("PINGREQ -> PINGRESP [MQTT-3.12.4-1]", () => {
    const h = new Harness();
    h.connect(4);
    expect(kinds(h.packet({ type: "pingreq" }))).toEqual(["send:pingresp"]);
  });
});
