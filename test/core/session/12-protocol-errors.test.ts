// Protocol errors after CONNECT: MQTT 3.1.1 section 4.8, MQTT 5.0 section 4.13.
// 5.0: DISCONNECT with a reason code, then close; 3.1.1: close. Either way the Will fires.
import { describe, expect, it } from "vitest";
import { ReasonCode, type Packet } from "../../../core/mqtt/packets.js";
import { Harness, bytes, kinds, pick } from "./harness.js";

const will = { topic: "lwt", payload: bytes("bye"), qos: 0 as const, retain: false };

const offenders: [string, Packet][] = [
  ["a second CONNECT [MQTT-3.1.0-2]", { type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: true, keepAlive: 60, clientId: "c1" }],
  ["AUTH without an authentication method", { type: "auth", reasonCode: 0x18 }],
  ["CONNACK", { type: "connack", sessionPresent: false, reasonCode: 0 }],
  ["SUBACK", { type: "suback", packetId: 1, reasonCodes: [0] }],
  ["UNSUBACK", { type: "unsuback", packetId: 1 }],
  ["PINGRESP", { type: "pingresp" }],
];

describe("12 protocol errors", () => {
  for (const [name, packet] of offenders) {
    it(`5.0 ${name}: DISCONNECT 0x82, close, Will`, () => {
      const h = new Harness();
      h.connect(5, { will });
      const effects = h.packet(packet);
      expect(kinds(effects)).toEqual(["send:disconnect", "close", "route", "presence", "ended"]);
      expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ProtocolError);
      expect(h.one(effects, "disconnect").properties?.reasonString).toBeTypeOf("string");
      expect(pick(effects, "close")[0]!.reason).toBe(0x82);
      expect(pick(effects, "route")[0]!.message.topic).toBe("lwt");
      expect(h.session.connected).toBe(false);
    });

    if (packet.type !== "auth") {
      it(`3.1.1 ${name}: close without DISCONNECT, Will`, () => {
        const h = new Harness();
        h.connect(4, { will });
        const effects = h.packet(packet.type === "connect" ? { ...packet, protocolVersion: 4 } : packet);
        expect(kinds(effects)).toEqual(["close", "route", "presence", "ended"]);
        expect(h.session.connected).toBe(false);
      });
    }
  }

  it("a persistent session survives a protocol error; its Will fires", () => {
    const h = new Harness();
    h.connectPersistent(5, { will });
    const effects = h.packet({ type: "pingresp" });
    expect(kinds(effects)).toEqual(["send:disconnect", "close", "route", "presence"]);
    expect(h.session.record?.connected).toBe(false);
    expect(h.connectPersistent(5).some((e) => e.kind === "send" && e.packet.type === "connack" && e.packet.sessionPresent)).toBe(
      true,
    );
  });

  it("protocolError() from the host (decode failure): 5.0 DISCONNECT with the given reason", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.session.protocolError(ReasonCode.PacketTooLarge, "too big", h.now);
    expect(h.one(effects, "disconnect")).toStrictEqual({
      type: "disconnect",
      reasonCode: 0x95,
      properties: { reasonString: "too big" },
    });
  });

  it("protocolError() when not connected: close only", () => {
    const h = new Harness();
    expect(h.session.protocolError(0x81, "x", h.now)).toEqual([{ kind: "close", reason: 0x81 }]);
  });

  it("3.1.1 invalid topic name on an inbound PUBLISH closes the connection", () => {
    const h = new Harness({ maxTopicLevels: 2 });
    h.connect(4);
    const effects = h.packet({ type: "publish", topic: "a/b/c", payload: bytes(""), qos: 0, retain: false, dup: false });
    expect(kinds(effects)).toContain("close");
    expect(pick(effects, "route")).toEqual([]);
  });

  it("5.0 invalid topic name on a QoS 1 PUBLISH: PUBACK 0x90, connection kept", () => {
    const h = new Harness({ maxTopicLevels: 2 });
    h.connect(5);
    const effects = h.packet({ type: "publish", topic: "a/b/c", payload: bytes(""), qos: 1, retain: false, dup: false, packetId: 3 });
    expect(h.one(effects, "puback")).toStrictEqual({ type: "puback", packetId: 3, reasonCode: ReasonCode.TopicNameInvalid });
    expect(h.session.connected).toBe(true);
  });

  it("5.0 empty topic without a topic alias: DISCONNECT 0x82", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet({ type: "publish", topic: "", payload: bytes(""), qos: 0, retain: false, dup: false });
    expect(h.one(effects, "disconnect").reasonCode).toBe(0x82);
  });
});
