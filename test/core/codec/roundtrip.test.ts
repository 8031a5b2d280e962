// Roundtrip: every packet type, in MQTT 3.1.1 (level 4) and 5.0 (level 5), plus CONNECT at
// level 3, goes encode -> decode -> deep-equal, carrying every 5.0 property somewhere.
// Each packet is written in its decoded (canonical) form, so no normalisation is needed.
import { describe, expect, it } from "vitest";
import { decodePacket, encodePacket, PROPERTIES, splitFrames } from "../../../core/mqtt/codec/index.js";
import type { Packet, Properties, ProtocolVersion, UserProperty } from "../../../core/mqtt/packets.js";

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const users: UserProperty[] = [
  ["region", "eu"],
  ["region", "us"], // a name may repeat; order is preserved [MQTT-3.3.2-18]
  ["ключ", "値 🚀"],
];

const connectProps: Properties = {
  sessionExpiryInterval: 0xffffffff,
  receiveMaximum: 1,
  maximumPacketSize: 268_435_460,
  topicAliasMaximum: 65535,
  requestResponseInformation: 1,
  requestProblemInformation: 0,
  authenticationMethod: "SCRAM-SHA-256",
  authenticationData: bytes(0, 1, 254, 255),
  userProperties: users,
};

const willProps: Properties = {
  willDelayInterval: 3600,
  payloadFormatIndicator: 1,
  messageExpiryInterval: 0,
  contentType: "text/plain; charset=utf-8",
  responseTopic: "replies/c1",
  correlationData: bytes(9, 8, 7),
  userProperties: [["k", ""]],
};

const connackProps: Properties = {
  sessionExpiryInterval: 120,
  receiveMaximum: 65535,
  maximumQoS: 1,
  retainAvailable: 0,
  maximumPacketSize: 1,
  assignedClientIdentifier: "auto-6f1c",
  topicAliasMaximum: 10,
  reasonString: "welcome",
  userProperties: users,
  wildcardSubscriptionAvailable: 1,
  subscriptionIdentifierAvailable: 0,
  sharedSubscriptionAvailable: 1,
  serverKeepAlive: 0,
  responseInformation: "resp/",
  serverReference: "other.example:1883",
  authenticationMethod: "SCRAM-SHA-256",
  authenticationData: bytes(),
};

const publishProps: Properties = {
  payloadFormatIndicator: 0,
  messageExpiryInterval: 0xffffffff,
  topicAlias: 65535,
  responseTopic: "r/🚀",
  correlationData: new Uint8Array(300).fill(7),
  userProperties: users,
  // Several, one per matching subscription, at the edges of the Variable Byte Integer.
  subscriptionIdentifiers: [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455],
  contentType: "application/octet-stream",
};

const reasonProps: Properties = { reasonString: "because", userProperties: users };

interface Case {
  name: string;
  version: ProtocolVersion;
  packet: Packet;
}

const cases: Case[] = [
  // CONNECT
  {
    name: "CONNECT 3.1 (MQIsdp) with will, username, password",
    version: 3,
    packet: {
      type: "connect", protocolName: "MQIsdp", protocolVersion: 3, clean: true, keepAlive: 10, clientId: "legacy",
      will: { topic: "w", payload: bytes(1), qos: 2, retain: true }, username: "u", password: bytes(2),
    },
  },
  {
    name: "CONNECT 3.1.1 minimal",
    version: 4,
    packet: { type: "connect", protocolName: "MQTT", protocolVersion: 4, clean: false, keepAlive: 0, clientId: "" },
  },
  {
    name: "CONNECT 3.1.1 with will, username, password",
    version: 4,
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 4, clean: true, keepAlive: 65535, clientId: "c-\u00e9\u4e2d",
      will: { topic: "status/c1", payload: utf8("offline"), qos: 1, retain: false }, username: "user", password: bytes(0, 255),
    },
  },
  {
    name: "CONNECT 5.0 with every CONNECT and Will property",
    version: 5,
    packet: {
      type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: true, keepAlive: 30, clientId: "c1",
      will: { topic: "status/c1", payload: utf8("gone ✓"), qos: 2, retain: true, properties: willProps },
      username: "\ufeffbom-kept", password: bytes(1, 2, 3), properties: connectProps,
    },
  },
  {
    name: "CONNECT 5.0 with a password but no user name",
    version: 5,
    packet: { type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: false, keepAlive: 5, clientId: "p", password: bytes() },
  },
  // CONNACK
  { name: "CONNACK 3.1.1 accepted, session present", version: 4, packet: { type: "connack", sessionPresent: true, reasonCode: 0 } },
  { name: "CONNACK 3.1.1 refused, not authorized", version: 4, packet: { type: "connack", sessionPresent: false, reasonCode: 5 } },
  { name: "CONNACK 5.0 minimal", version: 5, packet: { type: "connack", sessionPresent: false, reasonCode: 0x87 } },
  {
    name: "CONNACK 5.0 with every CONNACK property",
    version: 5,
    packet: { type: "connack", sessionPresent: true, reasonCode: 0, properties: connackProps },
  },
  // PUBLISH
  {
    name: "PUBLISH 3.1.1 QoS 0, empty payload",
    version: 4,
    packet: { type: "publish", topic: "a/b", payload: bytes(), qos: 0, retain: false, dup: false },
  },
  {
    name: "PUBLISH 3.1.1 QoS 1 retain",
    version: 4,
    packet: { type: "publish", topic: "$SYS/x", payload: bytes(0), qos: 1, retain: true, dup: false, packetId: 1 },
  },
  {
    name: "PUBLISH 3.1.1 QoS 2 dup, 3-byte remaining length",
    version: 4,
    packet: { type: "publish", topic: "big", payload: new Uint8Array(20_000).fill(0xab), qos: 2, retain: false, dup: true, packetId: 65535 },
  },
  {
    name: "PUBLISH 5.0 QoS 0 no properties",
    version: 5,
    packet: { type: "publish", topic: "t/🚀/\u00e9", payload: utf8("x"), qos: 0, retain: true, dup: false },
  },
  {
    name: "PUBLISH 5.0 QoS 1 with every PUBLISH property",
    version: 5,
    packet: { type: "publish", topic: "sensors/1", payload: bytes(1, 2, 3), qos: 1, retain: false, dup: true, packetId: 7, properties: publishProps },
  },
  {
    name: "PUBLISH 5.0 empty topic with Topic Alias, UTF-8 payload",
    version: 5,
    packet: {
      type: "publish", topic: "", payload: utf8("h\u00e9llo 🚀"), qos: 2, retain: false, dup: false, packetId: 2,
      properties: { topicAlias: 1, payloadFormatIndicator: 1 },
    },
  },
  // SUBSCRIBE / SUBACK
  {
    name: "SUBSCRIBE 3.1.1 three filters",
    version: 4,
    packet: {
      type: "subscribe", packetId: 10,
      subscriptions: [{ topicFilter: "a/+", qos: 0 }, { topicFilter: "#", qos: 1 }, { topicFilter: "$share/g/x", qos: 2 }],
    },
  },
  {
    name: "SUBSCRIBE 5.0 with options and every SUBSCRIBE property",
    version: 5,
    packet: {
      type: "subscribe", packetId: 11, properties: { subscriptionIdentifiers: [268_435_455], userProperties: users },
      subscriptions: [
        { topicFilter: "a/#", qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        { topicFilter: "$share/g/+/x", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 1 },
        { topicFilter: "b", qos: 0, noLocal: false, retainAsPublished: true, retainHandling: 0 },
      ],
    },
  },
  { name: "SUBACK 3.1.1", version: 4, packet: { type: "suback", packetId: 10, reasonCodes: [0, 1, 2, 0x80] } },
  {
    name: "SUBACK 5.0 with properties",
    version: 5,
    packet: { type: "suback", packetId: 11, reasonCodes: [2, 0x8f, 0x97, 0xa2], properties: reasonProps },
  },
  // UNSUBSCRIBE / UNSUBACK
  { name: "UNSUBSCRIBE 3.1.1", version: 4, packet: { type: "unsubscribe", packetId: 12, topicFilters: ["a/+", "#"] } },
  {
    name: "UNSUBSCRIBE 5.0 with user properties",
    version: 5,
    packet: { type: "unsubscribe", packetId: 13, topicFilters: ["x"], properties: { userProperties: users } },
  },
  { name: "UNSUBACK 3.1.1 (no payload)", version: 4, packet: { type: "unsuback", packetId: 12 } },
  { name: "UNSUBACK 5.0 minimal", version: 5, packet: { type: "unsuback", packetId: 13, reasonCodes: [0] } },
  {
    name: "UNSUBACK 5.0 with properties",
    version: 5,
    packet: { type: "unsuback", packetId: 14, reasonCodes: [0, 0x11, 0x87], properties: reasonProps },
  },
  // PINGREQ / PINGRESP
  { name: "PINGREQ 3.1.1", version: 4, packet: { type: "pingreq" } },
  { name: "PINGRESP 3.1.1", version: 4, packet: { type: "pingresp" } },
  { name: "PINGREQ 5.0", version: 5, packet: { type: "pingreq" } },
  { name: "PINGRESP 5.0", version: 5, packet: { type: "pingresp" } },
  // DISCONNECT
  { name: "DISCONNECT 3.1.1", version: 4, packet: { type: "disconnect" } },
  { name: "DISCONNECT 5.0 short form", version: 5, packet: { type: "disconnect", reasonCode: 0 } },
  { name: "DISCONNECT 5.0 reason only", version: 5, packet: { type: "disconnect", reasonCode: 0x04 } },
  {
    name: "DISCONNECT 5.0 with every DISCONNECT property",
    version: 5,
    packet: {
      type: "disconnect", reasonCode: 0x9c,
      properties: { sessionExpiryInterval: 0, serverReference: "b.example", reasonString: "moved", userProperties: users },
    },
  },
  // AUTH (5.0 only)
  { name: "AUTH 5.0 short form", version: 5, packet: { type: "auth", reasonCode: 0 } },
  {
    name: "AUTH 5.0 with every AUTH property",
    version: 5,
    packet: {
      type: "auth", reasonCode: 0x18,
      properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: bytes(1, 2), reasonString: "go on", userProperties: users },
    },
  },
];

// PUBACK, PUBREC, PUBREL, PUBCOMP: 3.1.1, 5.0 short form, 5.0 reason only, 5.0 with properties.
for (const type of ["puback", "pubrec", "pubrel", "pubcomp"] as const) {
  const T = type.toUpperCase();
  cases.push(
    { name: `${T} 3.1.1`, version: 4, packet: { type, packetId: 1 } },
    { name: `${T} 5.0 short form`, version: 5, packet: { type, packetId: 2, reasonCode: 0 } },
    { name: `${T} 5.0 reason only`, version: 5, packet: { type, packetId: 65535, reasonCode: type === "pubrel" || type === "pubcomp" ? 0x92 : 0x10 } },
    { name: `${T} 5.0 with properties`, version: 5, packet: { type, packetId: 3, reasonCode: 0x80, properties: reasonProps } },
  );
}

function decode(frame: Uint8Array, c: Case) {
  // CONNECT carries its own version; everything else needs the negotiated one.
  return decodePacket(frame, c.packet.type === "connect" ? {} : { protocolVersion: c.version });
}

describe("codec roundtrip: encode -> decode -> deep-equal", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const encoded = encodePacket(c.packet, c.version);
    const result = decode(encoded, c);
    if (!result.ok) throw new Error(`0x${result.error.reasonCode.toString(16)}: ${result.error.message}`);
    expect(result.packet).toStrictEqual(c.packet);
    // Encoding the decoded packet gives the same bytes: the encoding is canonical.
    expect(encodePacket(result.packet, c.version)).toStrictEqual(encoded);
  });

  it("covers every packet type in 3.1.1 and 5.0, and CONNECT at level 3", () => {
    const seen = new Set(cases.map((c) => `${c.packet.type}@${c.version}`));
    const types = ["connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "suback",
      "unsubscribe", "unsuback", "pingreq", "pingresp", "disconnect"];
    for (const t of types) for (const v of [4, 5]) expect(seen, `${t}@${v}`).toContain(`${t}@${v}`);
    expect(seen).toContain("auth@5");
    expect(seen).toContain("connect@3");
  });

  it("carries every property of the 5.0 property table", () => {
    const carried = new Set<string>();
    for (const c of cases) {
      const p = c.packet as { properties?: Properties; will?: { properties?: Properties } };
      for (const k of Object.keys(p.properties ?? {})) carried.add(k);
      for (const k of Object.keys(p.will?.properties ?? {})) carried.add(k);
    }
    for (const def of PROPERTIES) expect(carried, def.name).toContain(def.name);
  });

  it("drops 5.0-only fields when encoding for 3.1.1", () => {
    const v5: Packet = { type: "puback", packetId: 9, reasonCode: 0x10, properties: reasonProps };
    expect(encodePacket(v5, 4)).toStrictEqual(bytes(0x40, 2, 0, 9));
    const sub: Packet = {
      type: "subscribe", packetId: 1, properties: { userProperties: users },
      subscriptions: [{ topicFilter: "a", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 }],
    };
    const r = decodePacket(encodePacket(sub, 4), { protocolVersion: 4 });
    expect(r).toStrictEqual({ ok: true, packet: { type: "subscribe", packetId: 1, subscriptions: [{ topicFilter: "a", qos: 1 }] } });
  });

  it("streams every version's packets through splitFrames in 7-byte chunks", () => {
    for (const version of [4, 5] as const) {
      const mine = cases.filter((c) => c.version === version);
      const encoded = mine.map((c) => encodePacket(c.packet, version));
      const stream = new Uint8Array(encoded.reduce((n, e) => n + e.length, 0));
      encoded.reduce((at, e) => (stream.set(e, at), at + e.length), 0);
      const frames: Uint8Array[] = [];
      let rest: Uint8Array = new Uint8Array(0);
      for (let i = 0; i < stream.length; i += 7) {
        const r = splitFrames(rest, stream.subarray(i, i + 7));
        expect(r.error).toBeUndefined();
        frames.push(...r.frames);
        rest = r.rest;
      }
      expect(rest.length).toBe(0);
      expect(frames).toStrictEqual(encoded);
      frames.forEach((f, i) => {
        const r = decode(f, mine[i]!);
        expect(r.ok && r.packet).toStrictEqual(mine[i]!.packet);
      });
    }
  });
});
