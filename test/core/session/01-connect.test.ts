// CONNECT and CONNACK: MQTT 3.1.1 section 3.1/3.2, MQTT 5.0 section 3.1/3.2.
import { describe, expect, it } from "vitest";
import { decodePacket } from "../../../core/mqtt/codec/index.js";
import { ReasonCode, type ConnectPacket, type ProtocolVersion } from "../../../core/mqtt/packets.js";
import { admitConnect, refuseMalformedConnect } from "../../../core/session/admit.js";
import { Harness, bytes, connectPacket, kinds, one, pick, sub } from "./harness.js";

describe("01 connect: CONNACK", () => {
  it("3.1.1: CONNACK return code 0, session present 0, presence online", () => {
    const h = new Harness();
    const { effects, connack } = h.connack(4, { username: "alice" });
    expect(connack).toStrictEqual({ type: "connack", sessionPresent: false, reasonCode: 0 });
    expect(kinds(effects)).toEqual(["send:connack", "presence"]);
    expect(pick(effects, "presence")[0]!.event).toMatchObject({
      clientId: "c1",
      online: true,
      at: h.now,
      protocolVersion: 4,
      username: "alice",
    });
    expect(h.session.connected).toBe(true);
    expect(h.session.protocolVersion).toBe(4);
  });

  it("3.1.1: a CONNACK carries no properties", () => {
    const h = new Harness();
    const { effects } = h.connack(4);
    expect(pick(effects, "send")[0]!.bytes).toEqual(new Uint8Array([0x20, 2, 0, 0]));
  });

  it("3.1.1: session present 1 after reconnect with clean session 0 [MQTT-3.2.2-2]", () => {
    const h = new Harness();
    expect(h.connack(4, { clean: false }).connack.sessionPresent).toBe(false);
    h.packet({ type: "disconnect" });
    expect(h.session.connected).toBe(false);
    expect(h.connack(4, { clean: false }).connack.sessionPresent).toBe(true);
  });

  it("3.1.1: a clean session ends with its connection; the next CONNACK has session present 0", () => {
    const h = new Harness();
    h.connack(4, { clean: true });
    const effects = h.packet({ type: "disconnect" });
    expect(kinds(effects)).toEqual(["close", "presence", "ended"]);
    expect(h.session.record).toBeUndefined();
    expect(h.connack(4, { clean: false }).connack.sessionPresent).toBe(false);
  });

  it("5.0: session present 1 after reconnect with Clean Start 0 and Session Expiry > 0", () => {
    const h = new Harness();
    expect(h.connectPersistent(5, {}, 60).some((e) => e.kind === "send")).toBe(true);
    h.packet({ type: "disconnect" });
    const { connack } = h.connack(5, { clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(connack.sessionPresent).toBe(true);
  });

  it("5.0: Session Expiry 0 (the default) ends the session at disconnect [MQTT-3.1.2-5]", () => {
    const h = new Harness();
    h.connack(5, { clean: false });
    h.packet({ type: "disconnect" });
    expect(h.connack(5, { clean: false }).connack.sessionPresent).toBe(false);
  });

  it("clean start discards an existing session: unsubscribe for its filters, session present 0 [MQTT-3.1.2-4]", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.subscribe(1, sub("a/+", 1), sub("b", 0));
    h.packet({ type: "disconnect" });
    const { effects, connack } = h.connack(5, { clean: true });
    expect(connack.sessionPresent).toBe(false);
    const unsubscribe = pick(effects, "unsubscribe");
    expect(unsubscribe).toHaveLength(1);
    expect([...unsubscribe[0]!.filters].sort()).toEqual(["a/+", "b"]);
    expect(pick(effects, "ended")).toHaveLength(1);
    expect(kinds(effects).indexOf("unsubscribe")).toBeLessThan(kinds(effects).indexOf("send:connack"));
    expect(h.store.subscriptions()).toEqual([]);
  });

  it("3.1.1 clean session 1 discards a persistent session", () => {
    const h = new Harness();
    h.connectPersistent(4);
    h.subscribe(1, sub("x/#", 2));
    h.packet({ type: "disconnect" });
    const { effects, connack } = h.connack(4, { clean: true });
    expect(connack.sessionPresent).toBe(false);
    expect(pick(effects, "unsubscribe")[0]!.filters).toEqual(["x/#"]);
  });

  it("a CONNECT while connected takes the session over: the old connection is lost first", () => {
    const h = new Harness();
    h.connectPersistent(5);
    const effects = h.connect(5, { clean: false, properties: { sessionExpiryInterval: 3600 } });
    expect(kinds(effects)).toEqual(["presence", "send:connack", "presence"]);
    expect(pick(effects, "presence")[0]!.event).toMatchObject({ online: false, reason: "taken-over", code: ReasonCode.SessionTakenOver });
    expect(one(effects, 5, "connack").sessionPresent).toBe(true);
  });

  it("an expired session is not resumed", () => {
    const h = new Harness();
    h.connectPersistent(5, {}, 10);
    h.subscribe(1, sub("t", 1));
    h.packet({ type: "disconnect" });
    h.advance(10_000);
    const { effects, connack } = h.connack(5, { clean: false, properties: { sessionExpiryInterval: 10 } });
    expect(connack.sessionPresent).toBe(false);
    expect(pick(effects, "unsubscribe")[0]!.filters).toEqual(["t"]);
  });
});

describe("01 connect: CONNACK 5.0 properties", () => {
  const limits = {
    receiveMaximum: 20,
    maximumPacketSize: 4096,
    topicAliasMaximum: 8,
    maxKeepAlive: 300,
    maxSessionExpiry: 3600,
  };

  it("announces Receive Maximum, Maximum Packet Size, Topic Alias Maximum and the features available", () => {
    const h = new Harness(limits);
    const { connack } = h.connack(5);
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties).toStrictEqual({
      receiveMaximum: 20,
      maximumPacketSize: 4096,
      topicAliasMaximum: 8,
      retainAvailable: 1,
      wildcardSubscriptionAvailable: 1,
      subscriptionIdentifierAvailable: 1,
      sharedSubscriptionAvailable: 1,
    });
  });

  it("Assigned Client Identifier when the server assigned it [MQTT-3.2.2-16]", () => {
    const h = new Harness(limits);
    const { connack } = h.connack(5, { clientId: "auto-123" }, true);
    expect(connack.properties?.assignedClientIdentifier).toBe("auto-123");
    expect(h.session.record?.clientId).toBe("auto-123");
  });

  it("no Assigned Client Identifier when the client chose its own", () => {
    const h = new Harness(limits);
    expect(h.connack(5, { clientId: "mine" }).connack.properties?.assignedClientIdentifier).toBeUndefined();
  });

  it("Server Keep Alive when the requested keep alive exceeds the maximum [MQTT-3.2.2-21]", () => {
    const h = new Harness(limits);
    const { connack } = h.connack(5, { keepAlive: 1000 });
    expect(connack.properties?.serverKeepAlive).toBe(300);
    expect(h.session.record?.connection?.keepAlive).toBe(300);
  });

  it("Server Keep Alive when keep alive 0 asks for none", () => {
    const h = new Harness(limits);
    expect(h.connack(5, { keepAlive: 0 }).connack.properties?.serverKeepAlive).toBe(300);
  });

  it("no Server Keep Alive when the keep alive is within the maximum", () => {
    const h = new Harness(limits);
    const { connack } = h.connack(5, { keepAlive: 300 });
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
    expect(h.session.record?.connection?.keepAlive).toBe(300);
  });

  it("Session Expiry Interval in CONNACK when the server grants less than asked", () => {
    const h = new Harness(limits);
    const { connack } = h.connack(5, { clean: false, properties: { sessionExpiryInterval: 0xffffffff } });
    expect(connack.properties?.sessionExpiryInterval).toBe(3600);
    expect(h.session.record?.expiryInterval).toBe(3600);
  });

  it("keeps the client's Receive Maximum, Maximum Packet Size and Topic Alias Maximum", () => {
    const h = new Harness(limits);
    h.connack(5, { properties: { receiveMaximum: 3, maximumPacketSize: 500, topicAliasMaximum: 4 } });
    expect(h.session.record?.connection).toMatchObject({ receiveMaximum: 3, maximumPacketSize: 500, topicAliasMaximum: 4 });
  });

  it("3.1.1: a long keep alive is kept as is (no way to tell the client)", () => {
    const h = new Harness(limits);
    h.connack(4, { keepAlive: 1000 });
    expect(h.session.record?.connection?.keepAlive).toBe(1000);
  });
});

describe("01 connect: refusals", () => {
  it("5.0 enhanced authentication: CONNACK 0x8C and close, no session created [MQTT-4.12.0-1]", () => {
    const h = new Harness();
    const effects = h.connect(5, { properties: { authenticationMethod: "SCRAM-SHA-1" } });
    expect(kinds(effects)).toEqual(["send:connack", "close"]);
    const connack = one(effects, 5, "connack");
    expect(connack.reasonCode).toBe(ReasonCode.BadAuthenticationMethod);
    expect(connack.sessionPresent).toBe(false);
    expect(pick(effects, "close")[0]!.reason).toBe(0x8c);
    expect(h.session.record).toBeUndefined();
  });

  it("5.0 invalid Will topic: CONNACK 0x90 and close", () => {
    const h = new Harness();
    const effects = h.connect(5, { will: { topic: "a/#", payload: bytes("x"), qos: 0, retain: false } });
    expect(kinds(effects)).toEqual(["send:connack", "close"]);
    expect(one(effects, 5, "connack").reasonCode).toBe(ReasonCode.TopicNameInvalid);
    expect(h.session.record).toBeUndefined();
  });

  it("3.1.1 invalid Will topic: a refusing CONNACK (return code, not 0) and close", () => {
    const h = new Harness();
    const effects = h.connect(4, { will: { topic: "a/+", payload: bytes("x"), qos: 0, retain: false } });
    expect(kinds(effects)).toEqual(["send:connack", "close"]);
    const rc = one(effects, 4, "connack").reasonCode;
    expect(rc).toBeGreaterThan(0);
    expect(rc).toBeLessThanOrEqual(5);
  });

  it("Will topic over the configured topic limits is refused", () => {
    const h = new Harness({ maxTopicLevels: 2 });
    const effects = h.connect(5, { will: { topic: "a/b/c", payload: bytes("x"), qos: 0, retain: false } });
    expect(one(effects, 5, "connack").reasonCode).toBe(ReasonCode.TopicNameInvalid);
  });

  it("a refusal leaves an existing session untouched", () => {
    const h = new Harness();
    h.connectPersistent(5);
    h.subscribe(1, sub("t", 1));
    h.packet({ type: "disconnect" });
    h.connect(5, { clean: true, properties: { authenticationMethod: "x" } });
    expect(h.store.subscriptions().map((s) => s.filter)).toEqual(["t"]);
    expect(h.connack(5, { clean: false, properties: { sessionExpiryInterval: 3600 } }).connack.sessionPresent).toBe(true);
  });
});

describe("01 connect: admitConnect", () => {
  const newId = () => "generated-1";
  const c = (v: ProtocolVersion, clientId: string, clean: boolean): ConnectPacket =>
    connectPacket(v, { clientId, clean });
  const connackOf = (reply: Uint8Array | undefined, v: ProtocolVersion) => {
    const r = decodePacket(reply!, { protocolVersion: v });
    if (!r.ok || r.packet.type !== "connack") throw new Error("not a CONNACK");
    return r.packet;
  };

  it("a client identifier is taken as is", () => {
    expect(admitConnect(c(4, "dev-1", true), newId)).toEqual({ ok: true, clientId: "dev-1", assigned: false });
  });

  it("3.1.1 empty client identifier with clean session 0: CONNACK return code 2 [MQTT-3.1.3-8]", () => {
    const a = admitConnect(c(4, "", false), newId);
    expect(a.ok).toBe(false);
    if (a.ok) return;
    expect(a.reason).toBe(ReasonCode.ClientIdentifierNotValid);
    expect(connackOf(a.reply, 4)).toStrictEqual({ type: "connack", sessionPresent: false, reasonCode: 2 });
    expect([...a.reply!]).toEqual([0x20, 2, 0, 2]);
  });

  it("3.1.1 empty client identifier with clean session 1: one is assigned [MQTT-3.1.3-6]", () => {
    expect(admitConnect(c(4, "", true), newId)).toEqual({ ok: true, clientId: "generated-1", assigned: true });
  });

  it("5.0 empty client identifier: one is assigned, whatever Clean Start", () => {
    expect(admitConnect(c(5, "", true), newId)).toEqual({ ok: true, clientId: "generated-1", assigned: true });
    expect(admitConnect(c(5, "", false), newId)).toEqual({ ok: true, clientId: "generated-1", assigned: true });
  });

  it("3.1 (level 3) requires a client identifier", () => {
    const a = admitConnect(c(3, "", true), newId);
    expect(a.ok).toBe(false);
  });

  it("an empty client identifier takes the URL hint", () => {
    expect(admitConnect(c(5, "", true), newId, "hinted")).toEqual({ ok: true, clientId: "hinted", assigned: true });
  });

  it("a hint that matches the client identifier is accepted", () => {
    expect(admitConnect(c(5, "dev-1", true), newId, "dev-1")).toEqual({ ok: true, clientId: "dev-1", assigned: false });
  });

  it("a hint that does not match the client identifier is refused (0x85 / return code 2)", () => {
    const a5 = admitConnect(c(5, "dev-1", true), newId, "dev-2");
    expect(a5.ok).toBe(false);
    if (a5.ok) return;
    expect(a5.reason).toBe(0x85);
    expect(connackOf(a5.reply, 5).reasonCode).toBe(0x85);
    // The Reason String says why [MQTT-3.1.2-29]; 3.1.1 has no properties.
    expect(connackOf(a5.reply, 5).properties?.reasonString).toMatch(/"dev-1".*differs.*URL.*"dev-2"/);
    // ...unless it would make the CONNACK larger than the client's Maximum Packet Size [MQTT-3.2.2-19].
    const small = connectPacket(5, { clientId: "dev-1", clean: true });
    const tiny = admitConnect({ ...small, properties: { ...small.properties, maximumPacketSize: 20 } }, newId, "dev-2");
    if (tiny.ok) throw new Error("admitted");
    expect(connackOf(tiny.reply, 5)).toStrictEqual({ type: "connack", sessionPresent: false, reasonCode: 0x85 });
    const a4 = admitConnect(c(4, "dev-1", true), newId, "dev-2");
    if (a4.ok) throw new Error("admitted");
    expect(connackOf(a4.reply, 4).reasonCode).toBe(2);
  });
});

describe("01 connect: refuseMalformedConnect", () => {
  it("unsupported protocol version, 3.1.1 or unknown: CONNACK return code 1 [MQTT-3.1.2-2]", () => {
    for (const v of [4, undefined] as const) {
      const a = refuseMalformedConnect({ reasonCode: 0x84, message: "level 9" }, v);
      if (a.ok) throw new Error("admitted");
      expect(a.reason).toBe(0x84);
      expect([...a.reply!]).toEqual([0x20, 2, 0, 1]);
    }
  });

  it("unsupported protocol version, 5.0: CONNACK 0x84", () => {
    const a = refuseMalformedConnect({ reasonCode: 0x84, message: "x" }, 5);
    if (a.ok) throw new Error("admitted");
    const r = decodePacket(a.reply!, { protocolVersion: 5 });
    expect(r.ok && r.packet.type === "connack" && r.packet.reasonCode).toBe(0x84);
  });

  it("5.0 malformed CONNECT: CONNACK with the violation's reason code", () => {
    const a = refuseMalformedConnect({ reasonCode: 0x81, message: "bad" }, 5);
    if (a.ok) throw new Error("admitted");
    const r = decodePacket(a.reply!, { protocolVersion: 5 });
    expect(r.ok && r.packet.type === "connack" && r.packet.reasonCode).toBe(0x81);
  });

  it("3.1.1 malformed CONNECT: close without CONNACK [MQTT-4.8.0-1]", () => {
    const a = refuseMalformedConnect({ reasonCode: 0x81, message: "bad" }, 4);
    expect(a).toEqual({ ok: false, reason: 0x81 });
  });
});
