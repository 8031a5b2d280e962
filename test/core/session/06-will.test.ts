// The Will Message: MQTT 3.1.1 section 3.1.2.5, MQTT 5.0 sections 3.1.2.5 and 3.1.3.2 (Will Delay).
import { describe, expect, it } from "vitest";
import { ReasonCode, type Will } from "../../../core/mqtt/packets.js";
import { Harness, bytes, kinds, pick } from "./harness.js";

const will = (extra: Partial<Will> = {}): Will => ({ topic: "clients/c1/status", payload: bytes("gone"), qos: 1, retain: true, ...extra });

describe("06 will", () => {
  for (const v of [4, 5] as const) {
    it(`v${v}: routed on an ungraceful loss, as a message from the client`, () => {
      const h = new Harness();
      h.connect(v, { will: will() });
      const effects = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
      const routes = pick(effects, "route");
      expect(routes).toHaveLength(1);
      expect(routes[0]!.ticket).toBeUndefined();
      expect(routes[0]!.message).toStrictEqual({
        topic: "clients/c1/status",
        payload: bytes("gone"),
        qos: 1,
        retain: true,
        origin: "c1",
      });
      expect(pick(effects, "presence")[0]!.event.willFired).toBe(true);
    });

    it(`v${v}: not routed after a normal DISCONNECT [MQTT-3.1.2-10]`, () => {
      const h = new Harness();
      h.connectPersistent(v, { will: will() });
      const effects = h.packet({ type: "disconnect" });
      expect(pick(effects, "route")).toEqual([]);
      expect(pick(effects, "presence")[0]!.event.willFired).toBe(false);
      expect(h.session.record?.will).toBeUndefined();
      // And not later either.
      expect(pick(h.session.connectionLost(0x80, h.now), "route")).toEqual([]);
    });
  }

  it("5.0: routed on DISCONNECT with reason 0x04", () => {
    const h = new Harness();
    h.connect(5, { will: will() });
    const effects = h.packet({ type: "disconnect", reasonCode: ReasonCode.DisconnectWithWill });
    expect(kinds(effects)).toEqual(["close", "route", "presence", "ended"]);
  });

  it("the Will is routed once", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will() });
    expect(pick(h.session.connectionLost(0x80, h.now), "route")).toHaveLength(1);
    expect(h.session.record?.will).toBeUndefined();
    expect(pick(h.session.alarm(h.now + 10_000_000), "route")).toEqual([]);
  });

  it("Will Delay: scheduled, then routed by alarm() after the delay", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will({ properties: { willDelayInterval: 30 } }) }, 3600);
    const lost = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    expect(pick(lost, "route")).toEqual([]);
    expect(pick(lost, "presence")[0]!.event.willFired).toBe(false);
    const willAt = h.now + 30_000;
    expect(h.session.record?.willAt).toBe(willAt);
    expect(h.session.nextDeadline()).toBe(willAt);
    expect(h.session.alarm(willAt - 1)).toEqual([]);
    const fired = h.session.alarm(willAt);
    expect(kinds(fired)).toEqual(["route"]);
    expect(pick(fired, "route")[0]!.message.topic).toBe("clients/c1/status");
    expect(h.session.record?.will).toBeUndefined();
    expect(h.session.record?.willAt).toBeUndefined();
    expect(h.session.nextDeadline()).toBe(h.session.record?.expiresAt);
    expect(h.session.alarm(willAt + 1)).toEqual([]);
  });

  it("Will Delay survives a new Session object", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will({ properties: { willDelayInterval: 30 } }) }, 3600);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    h.rehydrate();
    expect(pick(h.session.alarm(h.now + 30_000), "route")).toHaveLength(1);
  });

  it("a reconnect before the Will Delay elapses cancels the Will [MQTT-3.1.3-9]", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will({ properties: { willDelayInterval: 30 } }) }, 3600);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    h.advance(10_000);
    const effects = h.connectPersistent(5, {}, 3600);
    expect(pick(effects, "route")).toEqual([]);
    expect(h.session.record?.willAt).toBeUndefined();
    expect(h.session.record?.will).toBeUndefined();
    expect(h.session.nextDeadline()).toBeUndefined();
    h.advance(30_000);
    expect(pick(h.session.alarm(h.now), "route")).toEqual([]);
  });

  it("a reconnect with a new Will replaces the pending one", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will({ properties: { willDelayInterval: 30 } }) }, 3600);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    h.connectPersistent(5, { will: will({ topic: "new" }) }, 3600);
    const effects = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    expect(pick(effects, "route").map((r) => r.message.topic)).toEqual(["new"]);
  });

  it("the session ending before the Will Delay publishes the Will (5.0 3.1.3.2.2)", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will({ properties: { willDelayInterval: 300 } }) }, 60);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    // The delay is capped at the session expiry.
    expect(h.session.record?.willAt).toBe(h.now + 60_000);
    const effects = h.session.alarm(h.now + 60_000);
    expect(kinds(effects)).toEqual(["route", "ended"]);
  });

  it("a Will Delay with Session Expiry 0 publishes at once", () => {
    const h = new Harness();
    h.connect(5, { will: will({ properties: { willDelayInterval: 300 } }) });
    const effects = h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    expect(kinds(effects)).toEqual(["route", "presence", "ended"]);
  });

  it("Will properties are carried: content type, user properties, message expiry -> expiresAt", () => {
    const h = new Harness();
    h.connect(5, {
      will: will({
        properties: {
          contentType: "application/json",
          payloadFormatIndicator: 1,
          responseTopic: "reply/here",
          correlationData: bytes("corr"),
          userProperties: [["why", "lost"]],
          messageExpiryInterval: 120,
          willDelayInterval: 0,
        },
      }),
    });
    h.advance(5000);
    const route = pick(h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now), "route")[0]!;
    expect(route.message).toStrictEqual({
      topic: "clients/c1/status",
      payload: bytes("gone"),
      qos: 1,
      retain: true,
      origin: "c1",
      properties: {
        contentType: "application/json",
        payloadFormatIndicator: 1,
        responseTopic: "reply/here",
        correlationData: bytes("corr"),
        userProperties: [["why", "lost"]],
      },
      expiresAt: h.now + 120_000,
    });
  });

  it("a delayed Will's expiry counts from when it is published", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will({ properties: { willDelayInterval: 10, messageExpiryInterval: 60 } }) }, 3600);
    h.session.connectionLost(0x80, h.now);
    const at = h.now + 10_000;
    expect(pick(h.session.alarm(at), "route")[0]!.message.expiresAt).toBe(at + 60_000);
  });

  it("the Will payload keeps its bytes through the store", () => {
    const h = new Harness();
    const payload = new Uint8Array([0, 1, 2, 255, 254]);
    h.connectPersistent(5, { will: will({ payload, properties: { willDelayInterval: 5 } }) }, 3600);
    h.session.connectionLost(0x80, h.now);
    h.rehydrate();
    const route = pick(h.session.alarm(h.now + 5000), "route")[0]!;
    expect(route.message.payload).toBeInstanceOf(Uint8Array);
    expect([...route.message.payload]).toEqual([0, 1, 2, 255, 254]);
  });

  it("a protocol error triggers the Will", () => {
    const h = new Harness();
    h.connect(5, { will: will() });
    const effects = h.session.protocolError(ReasonCode.MalformedPacket, "bad", h.now);
    expect(kinds(effects)).toEqual(["send:disconnect", "close", "route", "presence", "ended"]);
    expect(h.one(effects, "disconnect").reasonCode).toBe(0x81);
  });

  it("a session taken over publishes the old connection's Will", () => {
    const h = new Harness();
    h.connectPersistent(5, { will: will() });
    const effects = h.connectPersistent(5);
    expect(pick(effects, "route")).toHaveLength(1);
    expect(pick(effects, "presence")[0]!.event).toMatchObject({ reason: "taken-over", code: ReasonCode.SessionTakenOver });
  });
});
