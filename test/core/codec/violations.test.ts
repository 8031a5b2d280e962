// Every strictness rule the decoder enforces for a server, each mapped to its reason code.
// Names carry the spec rule identifier: 5.0 numbering unless marked (3.1.1).
// 0x81 Malformed Packet, 0x82 Protocol Error, 0x84 Unsupported Protocol Version,
// 0x90 Topic Name invalid, 0x94 Topic Alias invalid, 0x95 Packet too large,
// 0x99 Payload format invalid.
import { describe, expect, it } from "vitest";
import { decodePacket, splitFrames, validateTopicFilter, validateTopicName } from "../../../core/mqtt/codec/index.js";
import type { ProtocolVersion } from "../../../core/mqtt/packets.js";
import { decodeAs, hex, str } from "./vectors.js";

/** Fixed header byte + Remaining Length (computed) + body. */
function frame(first: number, body: number[]): number[] {
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 128;
    len.push(b);
  } while (n > 0);
  return [first, ...len, ...body];
}

const MQTT = [0, 4, 77, 81, 84, 84]; // protocol name "MQTT"

/** A CONNECT: "MQTT", the level, the flags, keep alive 60, (5.0) the properties, then the payload. */
function connect(level: number, flags: number, payload: number[], properties: number[] = []): number[] {
  const props = level === 5 ? [properties.length, ...properties] : [];
  return frame(0x10, [...MQTT, level, flags, 0, 60, ...props, ...payload]);
}

/** A 5.0 PUBLISH QoS 0 to "t" with the given properties and payload. */
function publish5(properties: number[], payload: number[] = [], first = 0x30): number[] {
  return frame(first, [0, 1, 116, properties.length, ...properties, ...payload]);
}

interface Violation {
  rule: string;
  what: string;
  version: ProtocolVersion;
  bytes: number[];
  /** The reason code; a list where the spec leaves the choice open (explained at the row). */
  code: number | number[];
  maximumPacketSize?: number;
  /** Decode as the first packet on a connection (protocolVersion undefined). */
  beforeConnect?: boolean;
}

function check(v: Violation): void {
  const bytes = new Uint8Array(v.bytes);
  const r = v.beforeConnect
    ? decodePacket(bytes, v.maximumPacketSize === undefined ? {} : { maximumPacketSize: v.maximumPacketSize })
    : decodeAs(bytes, v.version, v.maximumPacketSize);
  if (r.ok) throw new Error(`accepted ${hex(bytes)} as ${JSON.stringify(r.packet)}`);
  const allowed = (Array.isArray(v.code) ? v.code : [v.code]).map(codeName);
  expect(allowed, r.error.message).toContain(codeName(r.error.reasonCode));
  expect(typeof r.error.message).toBe("string");
  expect(r.error.message.length).toBeGreaterThan(0);
}

function codeName(code: number | number[]): string {
  return (Array.isArray(code) ? code : [code]).map((c) => `0x${c.toString(16)}`).join(" or ");
}

function table(title: string, rows: Violation[]): void {
  describe(title, () => {
    for (const v of rows) {
      it(`${v.rule} v${v.version}: ${v.what} (${codeName(v.code)})`, () => check(v));
    }
  });
}

const BOTH: ProtocolVersion[] = [4, 5];

// ---------------------------------------------------------------------------------------
// Fixed header: reserved flag bits [MQTT-2.1.3-1] (5.0) / [MQTT-2.2.2-1] (3.1.1).
// Each type is given a body that would be valid with the right flags.
const v4Connect = connect(4, 2, [0, 1, 97]);
const reservedFlags: { type: string; first: number; body: (v: ProtocolVersion) => number[]; rule?: string }[] = [
  { type: "CONNECT", first: 0x11, body: () => v4Connect.slice(2) },
  { type: "CONNACK", first: 0x21, body: (v) => (v === 5 ? [0, 0, 0] : [0, 0]) },
  { type: "PUBACK", first: 0x41, body: () => [0, 1] },
  { type: "PUBREC", first: 0x52, body: () => [0, 1] },
  { type: "PUBREL", first: 0x60, body: () => [0, 1], rule: "[MQTT-3.6.1-1]" },
  { type: "PUBREL", first: 0x63, body: () => [0, 1], rule: "[MQTT-3.6.1-1]" },
  { type: "PUBCOMP", first: 0x78, body: () => [0, 1] },
  { type: "SUBSCRIBE", first: 0x80, body: (v) => [0, 1, ...(v === 5 ? [0] : []), 0, 1, 97, 0], rule: "[MQTT-3.8.1-1]" },
  { type: "SUBSCRIBE", first: 0x8a, body: (v) => [0, 1, ...(v === 5 ? [0] : []), 0, 1, 97, 0], rule: "[MQTT-3.8.1-1]" },
  { type: "SUBACK", first: 0x92, body: (v) => [0, 1, ...(v === 5 ? [0] : []), 0] },
  { type: "UNSUBSCRIBE", first: 0xa0, body: (v) => [0, 1, ...(v === 5 ? [0] : []), 0, 1, 97], rule: "[MQTT-3.10.1-1]" },
  { type: "UNSUBACK", first: 0xb4, body: (v) => [0, 1, ...(v === 5 ? [0, 0] : [])] },
  { type: "PINGREQ", first: 0xc1, body: () => [] },
  { type: "PINGRESP", first: 0xd8, body: () => [] },
  { type: "DISCONNECT", first: 0xe2, body: () => [] },
];

describe("fixed header", () => {
  for (const version of BOTH) {
    for (const f of reservedFlags) {
      const rule = f.rule ?? (version === 5 ? "[MQTT-2.1.3-1]" : "[MQTT-2.2.2-1]");
      const flags = (f.first & 15).toString(2).padStart(4, "0");
      it(`${rule} v${version}: ${f.type} with flags ${flags} is malformed (0x81)`, () =>
        check({ rule, what: "", version, bytes: frame(f.first, f.body(version)), code: 0x81 }));
    }
  }
  table("reserved types and AUTH", [
    { rule: "[MQTT-2.1.3-1]", what: "AUTH with flags 0001 is malformed", version: 5, bytes: frame(0xf1, []), code: 0x81 },
    { rule: "§2.2.1", what: "packet type 0 (reserved) is malformed", version: 4, bytes: [0x00, 0], code: 0x81 },
    { rule: "§2.2.1", what: "packet type 0 (reserved) is malformed", version: 5, bytes: [0x00, 0], code: 0x81 },
    { rule: "§2.2.1", what: "packet type 15 (reserved in 3.1.1: no AUTH) is malformed", version: 4, bytes: [0xf0, 0], code: 0x81 },
  ]);
  table("PUBLISH flags", [
    // [MQTT-3.3.1-4]: a PUBLISH with both QoS bits set is a Malformed Packet.
    ...BOTH.map((version) => ({ rule: "[MQTT-3.3.1-4]", what: "PUBLISH QoS 3", version, bytes: frame(0x36, [0, 1, 116, 0, 1, ...(version === 5 ? [0] : [])]), code: 0x81 })),
    // [MQTT-3.3.1-2]: the DUP flag MUST be 0 for all QoS 0 messages.
    ...BOTH.map((version) => ({ rule: "[MQTT-3.3.1-2]", what: "PUBLISH DUP with QoS 0", version, bytes: frame(0x38, [0, 1, 116, ...(version === 5 ? [0] : [])]), code: 0x81 })),
  ]);
});

// ---------------------------------------------------------------------------------------
describe("remaining length and framing", () => {
  table("decodePacket", [
    ...BOTH.flatMap((version) => [
      // Variable Byte Integer: at most four bytes (5.0 section 1.5.5; 3.1.1 section 2.2.3).
      { rule: "§1.5.5", what: "remaining length of 5 bytes", version, bytes: [0x30, 255, 255, 255, 255, 1], code: 0x81 },
      { rule: "§1.5.5", what: "remaining length of 4 bytes still continued", version, bytes: [0x30, 128, 128, 128, 128], code: 0x81 },
      { rule: "§2.1.4", what: "remaining length says 5, 4 bytes follow", version, bytes: [0x40, 5, 0, 1, 0, 0], code: 0x81 },
      { rule: "§2.1.4", what: "remaining length says 2, 3 bytes follow (trailing byte)", version, bytes: [0x40, 2, 0, 1, 0], code: 0x81 },
      { rule: "§2.1.4", what: "two packets in one frame (trailing packet)", version, bytes: [0xc0, 0, 0xc0, 0], code: 0x81 },
      { rule: "§2.1.4", what: "empty frame", version, bytes: [], code: 0x81 },
      { rule: "§2.1.4", what: "fixed header without remaining length", version, bytes: [0xc0], code: 0x81 },
      { rule: "§3.12.1", what: "PINGREQ with a trailing byte (remaining length 1)", version, bytes: frame(0xc0, [0]), code: 0x81 },
      { rule: "§3.13.1", what: "PINGRESP with a trailing byte", version, bytes: frame(0xd0, [0]), code: 0x81 },
      { rule: "§3.4.2", what: "PUBACK of 1 byte (packet id cut short)", version, bytes: frame(0x40, [0]), code: 0x81 },
      { rule: "[MQTT-3.3.2-1]", what: "PUBLISH topic length runs past the packet", version, bytes: frame(0x30, [0, 9, 116]), code: 0x81 },
      { rule: "§3.3.2", what: "PUBLISH QoS 1 without room for the packet id", version, bytes: frame(0x32, [0, 1, 116, 0]), code: 0x81 },
      { rule: "§3.8.3", what: "SUBSCRIBE filter without its options byte", version, bytes: frame(0x82, [0, 1, ...(version === 5 ? [0] : []), 0, 1, 97]), code: 0x81 },
    ]),
    // 3.1.1 packets have no properties: whatever follows the packet id is a trailing byte.
    { rule: "§3.4.2", what: "(3.1.1) PUBACK of remaining length 3", version: 4, bytes: frame(0x40, [0, 1, 0]), code: 0x81 },
    { rule: "§3.6.2", what: "(3.1.1) PUBREL of remaining length 4", version: 4, bytes: frame(0x62, [0, 1, 0, 0]), code: 0x81 },
    { rule: "§3.11.2", what: "(3.1.1) UNSUBACK with a payload", version: 4, bytes: frame(0xb0, [0, 1, 0]), code: 0x81 },
    { rule: "§3.14.1", what: "(3.1.1) DISCONNECT of remaining length 1", version: 4, bytes: frame(0xe0, [0]), code: 0x81 },
    { rule: "§3.2.2", what: "(3.1.1) CONNACK of remaining length 3", version: 4, bytes: frame(0x20, [0, 0, 0]), code: 0x81 },
    { rule: "§3.2.2.1", what: "CONNACK acknowledge flags bits 7-1 not 0", version: 4, bytes: frame(0x20, [2, 0]), code: 0x81 },
    { rule: "§3.2.2.1", what: "CONNACK acknowledge flags bits 7-1 not 0", version: 5, bytes: frame(0x20, [0x80, 0, 0]), code: 0x81 },
    // 5.0: a Variable Byte Integer MUST use the minimum number of bytes [MQTT-1.5.5-1].
    { rule: "[MQTT-1.5.5-1]", what: "remaining length 3 written in two bytes (83 00)", version: 5, bytes: [0x30, 0x83, 0x00, 0, 1, 116], code: 0x81 },
    { rule: "[MQTT-1.5.5-1]", what: "CONNECT remaining length written in two bytes", version: 5, bytes: [0x10, 0x8e, 0x00, ...connect(5, 2, [0, 1, 97]).slice(2)], code: 0x81 },
    { rule: "[MQTT-1.5.5-1]", what: "property length 0 written in two bytes (80 00)", version: 5, bytes: frame(0x30, [0, 1, 116, 0x80, 0x00]), code: 0x81 },
    { rule: "[MQTT-1.5.5-1]", what: "CONNECT property length 0 written in two bytes (80 00)", version: 5, bytes: frame(0x10, [...MQTT, 5, 2, 0, 60, 0x80, 0x00, 0, 1, 97]), code: 0x81 },
    { rule: "[MQTT-1.5.5-1]", what: "Subscription Identifier 1 written in two bytes (81 00)", version: 5, bytes: publish5([11, 0x81, 0x00]), code: 0x81 },
    { rule: "§3.4.2.1", what: "PUBACK of remaining length 1", version: 5, bytes: frame(0x40, [0]), code: 0x81 },
    { rule: "§3.4.2.2", what: "PUBACK property length runs past the packet", version: 5, bytes: frame(0x40, [0, 1, 0x87, 5, 31, 0]), code: 0x81 },
  ]);

  it("§1.5.5 splitFrames rejects a remaining length of 5 bytes (0x81)", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array([0x30, 255, 255, 255, 255, 1, 0]));
    expect(r.frames).toEqual([]);
    expect(r.error?.reasonCode).toBe(0x81);
  });
});

// ---------------------------------------------------------------------------------------
// Maximum Packet Size (5.0 section 3.1.2.11.4, 3.2.2.3.6): a packet larger than the receiver's
// maximum is refused with 0x95 Packet too large; the size counts the whole packet.
describe("maximum packet size", () => {
  const pub = frame(0x30, [0, 1, 116, ...new Array(20).fill(120)]); // 25 bytes in all (3.1.1)
  it("§3.2.2.3.6 v4: a packet exactly at the maximum decodes", () => {
    expect(decodeAs(new Uint8Array(pub), 4, pub.length).ok).toBe(true);
  });
  table("too large", [
    { rule: "§3.2.2.3.6", what: "a packet one byte above the maximum (size counts the fixed header)", version: 4, bytes: pub, code: 0x95, maximumPacketSize: pub.length - 1 },
    { rule: "§3.2.2.3.6", what: "a PUBLISH above the maximum", version: 5, bytes: publish5([], new Array(100).fill(0)), code: 0x95, maximumPacketSize: 64 },
    { rule: "§3.2.2.3.6", what: "a CONNECT above the maximum", version: 5, bytes: connect(5, 2, str("a".repeat(50))), code: 0x95, maximumPacketSize: 32, beforeConnect: true },
  ]);
  it("§3.2.2.3.6 splitFrames: a declared size above the maximum is refused with 0x95", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array(pub), pub.length - 1);
    expect(r.frames).toEqual([]);
    expect(r.error?.reasonCode).toBe(0x95);
  });
});

// ---------------------------------------------------------------------------------------
// UTF-8 Encoded Strings [MQTT-1.5.4-1] (3.1.1 [MQTT-1.5.3-1]): ill-formed UTF-8, including the
// encoding of a surrogate, is a Malformed Packet; U+0000 too [MQTT-1.5.4-2] (3.1.1 [MQTT-1.5.3-2]).
const badUtf8: { what: string; bytes: number[] }[] = [
  { what: "lone high surrogate U+D800 encoded as ED A0 80", bytes: [0xed, 0xa0, 0x80] },
  { what: "lone low surrogate U+DFFF encoded as ED BF BF", bytes: [0xed, 0xbf, 0xbf] },
  { what: "surrogate pair encoded as two 3-byte sequences (CESU-8)", bytes: [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80] },
  { what: "overlong NUL C0 80", bytes: [0xc0, 0x80] },
  { what: "overlong '/' E0 80 AF", bytes: [0xe0, 0x80, 0xaf] },
  { what: "invalid continuation E2 28 A1", bytes: [0xe2, 0x28, 0xa1] },
  { what: "stray continuation byte 80", bytes: [0x61, 0x80] },
  { what: "truncated sequence C3 at the end", bytes: [0x61, 0xc3] },
  { what: "code point above U+10FFFF (F4 90 80 80)", bytes: [0xf4, 0x90, 0x80, 0x80] },
  { what: "byte FF", bytes: [0xff] },
  { what: "U+0000 encoded as 00", bytes: [0x61, 0x00, 0x62] },
];

describe("UTF-8 strings", () => {
  const rows: Violation[] = [];
  for (const s of badUtf8) {
    const field = [s.bytes.length >> 8, s.bytes.length & 255, ...s.bytes];
    const rule = s.bytes.includes(0) ? "[MQTT-1.5.4-2]" : "[MQTT-1.5.4-1]";
    for (const version of BOTH) {
      rows.push({ rule, what: `PUBLISH topic: ${s.what}`, version, bytes: frame(0x30, [...field, ...(version === 5 ? [0] : [])]), code: 0x81 });
      rows.push({ rule, what: `CONNECT client id: ${s.what}`, version, bytes: connect(version, 2, field), code: 0x81 });
      rows.push({ rule, what: `SUBSCRIBE filter: ${s.what}`, version, bytes: frame(0x82, [0, 1, ...(version === 5 ? [0] : []), ...field, 0]), code: 0x81 });
    }
    rows.push({ rule, what: `(3.1.1) UNSUBSCRIBE filter: ${s.what}`, version: 4, bytes: frame(0xa2, [0, 1, ...field]), code: 0x81 });
    rows.push({ rule, what: `CONNECT username: ${s.what}`, version: 5, bytes: connect(5, 0x82, [0, 1, 97, ...field]), code: 0x81 });
    rows.push({ rule, what: `CONNECT will topic: ${s.what}`, version: 4, bytes: connect(4, 0x06, [0, 1, 97, ...field, 0, 0]), code: 0x81 });
    rows.push({ rule, what: `user property name: ${s.what}`, version: 5, bytes: publish5([38, ...field, 0, 1, 118]), code: 0x81 });
    rows.push({ rule, what: `reason string: ${s.what}`, version: 5, bytes: frame(0x40, [0, 1, 0x80, field.length + 1, 31, ...field]), code: 0x81 });
  }
  table("ill-formed strings", rows);
});

// ---------------------------------------------------------------------------------------
describe("CONNECT", () => {
  const cid = [0, 1, 97]; // client id "a"
  const rows: Violation[] = [
    ...BOTH.flatMap((version): Violation[] => [
      { rule: "[MQTT-3.1.2-3]", what: "reserved connect flag bit 0 set", version, bytes: connect(version, 0x03, cid), code: 0x81 },
      // 5.0 [MQTT-3.1.2-11] / 3.1.1 [MQTT-3.1.2-13]: Will QoS 0 when the Will Flag is 0.
      { rule: version === 5 ? "[MQTT-3.1.2-11]" : "[MQTT-3.1.2-13]", what: "Will QoS 1 without the Will Flag", version, bytes: connect(version, 0x0a, cid), code: 0x81 },
      // 5.0 [MQTT-3.1.2-12] / 3.1.1 [MQTT-3.1.2-14]: Will QoS MUST NOT be 3.
      { rule: version === 5 ? "[MQTT-3.1.2-12]" : "[MQTT-3.1.2-14]", what: "Will QoS 3", version, bytes: connect(version, 0x1e, [...cid, ...(version === 5 ? [0] : []), 0, 1, 119, 0, 0]), code: 0x81 },
      // 5.0 [MQTT-3.1.2-13] / 3.1.1 [MQTT-3.1.2-15]: Will Retain 0 when the Will Flag is 0.
      { rule: version === 5 ? "[MQTT-3.1.2-13]" : "[MQTT-3.1.2-15]", what: "Will Retain without the Will Flag", version, bytes: connect(version, 0x22, cid), code: 0x81 },
      { rule: "[MQTT-3.1.2-9]", what: "Will Flag set but the packet ends before the Will Topic", version, bytes: connect(version, 0x06, cid), code: 0x81 },
      { rule: "[MQTT-3.1.2-17]", what: "User Name Flag set but no user name", version, bytes: connect(version, 0x82, cid), code: 0x81 },
      { rule: "[MQTT-3.1.2-19]", what: "Password Flag set but no password", version, bytes: connect(version, 0xc2, [...cid, 0, 1, 117]), code: 0x81 },
      { rule: "[MQTT-3.1.3-1]", what: "a trailing byte after the payload", version, bytes: connect(version, 0x02, [...cid, 0]), code: 0x81 },
      { rule: "[MQTT-3.1.3-3]", what: "client id length runs past the packet", version, bytes: connect(version, 0x02, [0, 5, 97]), code: 0x81 },
      // [MQTT-3.1.2-1]: the Server MAY answer a wrong protocol name with CONNACK 0x84 and MUST
      // NOT process the CONNECT further; 0x82 Protocol Error is an equally valid refusal.
      { rule: "[MQTT-3.1.2-1]", what: 'unknown protocol name "MQTX"', version, bytes: frame(0x10, [0, 4, 77, 81, 84, 88, version, 2, 0, 60, ...(version === 5 ? [0] : []), ...cid]), code: [0x84, 0x82] },
      { rule: "[MQTT-3.1.2-1]", what: 'lower-case protocol name "mqtt"', version, bytes: frame(0x10, [0, 4, 109, 113, 116, 116, version, 2, 0, 60, ...(version === 5 ? [0] : []), ...cid]), code: [0x84, 0x82] },
    ]),
    { rule: "[MQTT-3.1.2-22]", what: "(3.1.1) Password Flag without User Name Flag", version: 4, bytes: connect(4, 0x42, [...cid, 0, 1, 112]), code: 0x81 },
    { rule: "[MQTT-3.1.2-2]", what: "unsupported protocol level 6", version: 5, bytes: frame(0x10, [...MQTT, 6, 2, 0, 60, 0, ...cid]), code: 0x84 },
    { rule: "[MQTT-3.1.2-2]", what: "unsupported protocol level 2", version: 4, bytes: frame(0x10, [...MQTT, 2, 2, 0, 60, ...cid]), code: 0x84 },
    { rule: "[MQTT-3.1.2-2]", what: "protocol level 0", version: 4, bytes: frame(0x10, [...MQTT, 0, 2, 0, 60, ...cid]), code: 0x84 },
    { rule: "[MQTT-3.1.2-2]", what: 'level 3 under the name "MQTT"', version: 4, bytes: frame(0x10, [...MQTT, 3, 2, 0, 60, ...cid]), code: 0x84 },
    { rule: "[MQTT-3.1.2-2]", what: 'level 4 under the name "MQIsdp"', version: 4, bytes: frame(0x10, [0, 6, 77, 81, 73, 115, 100, 112, 4, 2, 0, 60, ...cid]), code: 0x84 },
    { rule: "[MQTT-3.1.2-2]", what: "bridge bit (level 0x84, a Mosquitto extension) is not a supported level", version: 4, bytes: frame(0x10, [...MQTT, 0x84, 2, 0, 60, ...cid]), code: 0x84 },
    // 5.0 CONNECT properties (section 3.1.2.11).
    { rule: "§3.1.2.11.3", what: "Receive Maximum 0", version: 5, bytes: connect(5, 2, cid, [33, 0, 0]), code: 0x82 },
    { rule: "§3.1.2.11.4", what: "Maximum Packet Size 0", version: 5, bytes: connect(5, 2, cid, [39, 0, 0, 0, 0]), code: 0x82 },
    { rule: "§3.1.2.11.6", what: "Request Response Information 2", version: 5, bytes: connect(5, 2, cid, [25, 2]), code: 0x82 },
    { rule: "§3.1.2.11.7", what: "Request Problem Information 2", version: 5, bytes: connect(5, 2, cid, [23, 2]), code: 0x82 },
    { rule: "§3.1.2.11.2", what: "Session Expiry Interval twice", version: 5, bytes: connect(5, 2, cid, [17, 0, 0, 0, 1, 17, 0, 0, 0, 2]), code: 0x82 },
    { rule: "§3.1.2.11.9", what: "Authentication Method twice", version: 5, bytes: connect(5, 2, cid, [21, 0, 1, 109, 21, 0, 1, 109]), code: 0x82 },
    { rule: "§3.1.2.11.10", what: "Authentication Data without Authentication Method", version: 5, bytes: connect(5, 2, cid, [22, 0, 1, 1]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Topic Alias (a PUBLISH property) in CONNECT", version: 5, bytes: connect(5, 2, cid, [35, 0, 1]), code: 0x82 },
    { rule: "§3.1.3.2", what: "Session Expiry Interval in the Will Properties", version: 5, bytes: connect(5, 0x06, [...cid, 5, 17, 0, 0, 0, 1, 0, 1, 119, 0, 0]), code: 0x82 },
    { rule: "§3.1.3.2.2", what: "Will Delay Interval twice", version: 5, bytes: connect(5, 0x06, [...cid, 10, 24, 0, 0, 0, 1, 24, 0, 0, 0, 1, 0, 1, 119, 0, 0]), code: 0x82 },
    { rule: "§3.1.3.2.3", what: "Will payload not UTF-8 though the Payload Format Indicator says so", version: 5, bytes: connect(5, 0x06, [...cid, 2, 1, 1, 0, 1, 119, 0, 2, 0xc3, 0x28]), code: 0x99 },
    { rule: "§2.2.2.2", what: "unknown property identifier 0x05 in CONNECT", version: 5, bytes: connect(5, 2, cid, [5, 0]), code: 0x81 },
  ];
  table("CONNECT", rows.map((v) => ({ ...v, beforeConnect: true })));

  it("[MQTT-3.1.2-22] v5: a password without a user name is allowed in 5.0", () => {
    expect(decodeAs(new Uint8Array(connect(5, 0x42, [...cid, 0, 1, 112])), 5).ok).toBe(true);
  });
  it("§3.1.2.11.8 v5: User Property repeated in CONNECT is allowed", () => {
    const r = decodeAs(new Uint8Array(connect(5, 2, cid, [38, 0, 1, 97, 0, 1, 98, 38, 0, 1, 97, 0, 1, 98])), 5);
    expect(r.ok && r.packet.type === "connect" && r.packet.properties?.userProperties).toEqual([["a", "b"], ["a", "b"]]);
  });
});

// ---------------------------------------------------------------------------------------
describe("before CONNECT", () => {
  table("a non-CONNECT first packet is a Protocol Error", [
    ...BOTH.map((version) => ({ rule: "[MQTT-3.1.0-1]", what: "PUBLISH before CONNECT", version, bytes: frame(0x30, [0, 1, 116]), code: 0x82, beforeConnect: true })),
    { rule: "[MQTT-3.1.0-1]", what: "PINGREQ before CONNECT", version: 4, bytes: [0xc0, 0], code: 0x82, beforeConnect: true },
    { rule: "[MQTT-3.1.0-1]", what: "SUBSCRIBE before CONNECT", version: 4, bytes: frame(0x82, [0, 1, 0, 1, 97, 0]), code: 0x82, beforeConnect: true },
    { rule: "[MQTT-3.1.0-1]", what: "DISCONNECT before CONNECT", version: 5, bytes: [0xe0, 0], code: 0x82, beforeConnect: true },
  ]);
});

// ---------------------------------------------------------------------------------------
describe("PUBLISH", () => {
  table("PUBLISH", [
    ...BOTH.flatMap((version) => {
      const props = version === 5 ? [0] : [];
      return [
        // 5.0 [MQTT-2.2.1-3] / 3.1.1 [MQTT-2.3.1-1]: a non-zero Packet Identifier when QoS > 0.
        { rule: version === 5 ? "[MQTT-2.2.1-3]" : "[MQTT-2.3.1-1]", what: "QoS 1 with packet id 0", version, bytes: frame(0x32, [0, 1, 116, 0, 0, ...props]), code: 0x82 },
        { rule: version === 5 ? "[MQTT-2.2.1-3]" : "[MQTT-2.3.1-1]", what: "QoS 2 with packet id 0", version, bytes: frame(0x34, [0, 1, 116, 0, 0, ...props]), code: 0x82 },
        { rule: "[MQTT-3.3.2-2]", what: 'wildcard "+" in the topic name', version, bytes: frame(0x30, [0, 3, 97, 47, 43, ...props]), code: 0x90 },
        { rule: "[MQTT-3.3.2-2]", what: 'wildcard "#" in the topic name', version, bytes: frame(0x30, [0, 1, 35, ...props]), code: 0x90 },
        { rule: "[MQTT-3.3.2-2]", what: 'wildcard inside a level ("a+b")', version, bytes: frame(0x30, [0, 3, 97, 43, 98, ...props]), code: 0x90 },
      ];
    }),
    { rule: "[MQTT-4.7.3-1]", what: "(3.1.1) empty topic name", version: 4, bytes: frame(0x30, [0, 0, 120]), code: 0x90 },
    { rule: "§3.3.2.3.4", what: "empty topic name without a Topic Alias", version: 5, bytes: frame(0x30, [0, 0, 0, 120]), code: 0x82 },
    { rule: "[MQTT-3.3.2-8]", what: "Topic Alias 0", version: 5, bytes: publish5([35, 0, 0]), code: 0x94 },
    { rule: "§3.3.2.3.4", what: "Topic Alias twice", version: 5, bytes: publish5([35, 0, 1, 35, 0, 2]), code: 0x82 },
    { rule: "§3.3.2.3.2", what: "Payload Format Indicator 2", version: 5, bytes: publish5([1, 2]), code: 0x82 },
    { rule: "§3.3.2.3.2", what: "Payload Format Indicator twice", version: 5, bytes: publish5([1, 0, 1, 0]), code: 0x82 },
    { rule: "§3.3.2.3.3", what: "Message Expiry Interval twice", version: 5, bytes: publish5([2, 0, 0, 0, 1, 2, 0, 0, 0, 1]), code: 0x82 },
    { rule: "§3.3.2.3.5", what: "Response Topic twice", version: 5, bytes: publish5([8, 0, 1, 114, 8, 0, 1, 114]), code: 0x82 },
    { rule: "§3.3.2.3.6", what: "Correlation Data twice", version: 5, bytes: publish5([9, 0, 0, 9, 0, 0]), code: 0x82 },
    { rule: "§3.3.2.3.9", what: "Content Type twice", version: 5, bytes: publish5([3, 0, 1, 116, 3, 0, 1, 116]), code: 0x82 },
    { rule: "§3.3.2.3.8", what: "Subscription Identifier 0", version: 5, bytes: publish5([11, 0]), code: 0x82 },
    { rule: "§3.3.2.3.2", what: "payload not UTF-8 though the Payload Format Indicator says so", version: 5, bytes: publish5([1, 1], [0xed, 0xa0, 0x80]), code: 0x99 },
    { rule: "§2.2.2.2", what: "Session Expiry Interval (a CONNECT property) in PUBLISH", version: 5, bytes: publish5([17, 0, 0, 0, 1]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Reason String (not a PUBLISH property) in PUBLISH", version: 5, bytes: publish5([31, 0, 1, 120]), code: 0x82 },
    { rule: "§2.2.2.2", what: "unknown property identifier 0x04", version: 5, bytes: publish5([4, 0]), code: 0x81 },
    { rule: "§2.2.2.2", what: "unknown property identifier 0x7F", version: 5, bytes: publish5([127, 0]), code: 0x81 },
    { rule: "§2.2.2.2", what: "a property value cut short by the property length", version: 5, bytes: frame(0x30, [0, 1, 116, 3, 2, 0, 0, 0, 0]), code: 0x81 },
    { rule: "§2.2.2.1", what: "property length runs past the packet", version: 5, bytes: frame(0x30, [0, 1, 116, 9, 1, 0]), code: 0x81 },
    { rule: "§1.5.5", what: "Subscription Identifier varint of 5 bytes", version: 5, bytes: publish5([11, 255, 255, 255, 255, 1]), code: 0x81 },
  ]);

  it("§3.3.2.3.8 v5: a Subscription Identifier repeated in PUBLISH is allowed (server to client)", () => {
    const r = decodeAs(new Uint8Array(publish5([11, 1, 11, 2])), 5);
    expect(r.ok && r.packet.type === "publish" && r.packet.properties?.subscriptionIdentifiers).toEqual([1, 2]);
  });
  it("[MQTT-3.3.2-18] v5: User Property repeated in PUBLISH is allowed, order kept", () => {
    const r = decodeAs(new Uint8Array(publish5([38, 0, 1, 98, 0, 0, 38, 0, 1, 97, 0, 0, 38, 0, 1, 98, 0, 0])), 5);
    expect(r.ok && r.packet.type === "publish" && r.packet.properties?.userProperties).toEqual([["b", ""], ["a", ""], ["b", ""]]);
  });
  it("§3.3.2.3.2 v5: payload format 0 with non-UTF-8 bytes is fine", () => {
    expect(decodeAs(new Uint8Array(publish5([1, 0], [0xff, 0xfe])), 5).ok).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------
describe("acks", () => {
  table("PUBACK / PUBREC / PUBREL / PUBCOMP / DISCONNECT / AUTH properties", [
    { rule: "§2.2.2.2", what: "Topic Alias in PUBACK", version: 5, bytes: frame(0x40, [0, 1, 0, 3, 35, 0, 1]), code: 0x82 },
    { rule: "§3.4.2.2.2", what: "Reason String twice in PUBREC", version: 5, bytes: frame(0x50, [0, 1, 0, 8, 31, 0, 1, 120, 31, 0, 1, 120]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Server Reference in PUBCOMP", version: 5, bytes: frame(0x70, [0, 1, 0, 4, 28, 0, 1, 120]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Authentication Method in DISCONNECT", version: 5, bytes: frame(0xe0, [0, 4, 21, 0, 1, 109]), code: 0x82 },
    { rule: "§3.14.2.2.2", what: "Session Expiry Interval twice in DISCONNECT", version: 5, bytes: frame(0xe0, [0, 10, 17, 0, 0, 0, 1, 17, 0, 0, 0, 1]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Receive Maximum in AUTH", version: 5, bytes: frame(0xf0, [0x18, 3, 33, 0, 1]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Maximum QoS 2 in CONNACK", version: 5, bytes: frame(0x20, [0, 0, 2, 36, 2]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Retain Available 2 in CONNACK", version: 5, bytes: frame(0x20, [0, 0, 2, 37, 2]), code: 0x82 },
    { rule: "§3.2.2.3.3", what: "Receive Maximum 0 in CONNACK", version: 5, bytes: frame(0x20, [0, 0, 3, 33, 0, 0]), code: 0x82 },
    // SUBACK carries only the codes listed in 3.9.3 (3.1.1: 0x00, 0x01, 0x02, 0x80). The
    // encoder refuses 0x03..0x7F, so the decoder must not produce them either.
    { rule: "§3.9.3", what: "(3.1.1) SUBACK return code 0x03", version: 4, bytes: frame(0x90, [0, 1, 3]), code: 0x81 },
    { rule: "§3.9.3", what: "SUBACK reason code 0x03 (not a SUBACK reason code)", version: 5, bytes: frame(0x90, [0, 1, 0, 3]), code: [0x81, 0x82] },
    { rule: "§3.9.3", what: "SUBACK reason code 0x1F (not a SUBACK reason code)", version: 5, bytes: frame(0x90, [0, 1, 0, 0x1f]), code: [0x81, 0x82] },
  ]);
});

// ---------------------------------------------------------------------------------------
describe("SUBSCRIBE / UNSUBSCRIBE", () => {
  table("SUBSCRIBE", [
    ...BOTH.flatMap((version) => {
      const props = version === 5 ? [0] : [];
      return [
        { rule: version === 5 ? "[MQTT-2.2.1-3]" : "[MQTT-2.3.1-1]", what: "SUBSCRIBE with packet id 0", version, bytes: frame(0x82, [0, 0, ...props, 0, 1, 97, 0]), code: 0x82 },
        { rule: version === 5 ? "[MQTT-3.8.3-2]" : "[MQTT-3.8.3-3]", what: "SUBSCRIBE with no topic filter", version, bytes: frame(0x82, [0, 1, ...props]), code: 0x82 },
        { rule: version === 5 ? "[MQTT-2.2.1-3]" : "[MQTT-2.3.1-1]", what: "UNSUBSCRIBE with packet id 0", version, bytes: frame(0xa2, [0, 0, ...props, 0, 1, 97]), code: 0x82 },
        { rule: "[MQTT-3.10.3-2]", what: "UNSUBSCRIBE with no topic filter", version, bytes: frame(0xa2, [0, 1, ...props]), code: 0x82 },
        { rule: "§3.10.3", what: "UNSUBSCRIBE filter length runs past the packet", version, bytes: frame(0xa2, [0, 1, ...props, 0, 3, 97]), code: 0x81 },
      ];
    }),
    // Subscription options: 3.1.1 reserves bits 7-2 [MQTT-3-8.3-4]; 5.0 bits 7-6 [MQTT-3.8.3-5].
    { rule: "[MQTT-3-8.3-4]", what: "(3.1.1) options bit 2 (No Local in 5.0) set", version: 4, bytes: frame(0x82, [0, 1, 0, 1, 97, 4]), code: 0x81 },
    { rule: "[MQTT-3-8.3-4]", what: "(3.1.1) options bit 7 set", version: 4, bytes: frame(0x82, [0, 1, 0, 1, 97, 128]), code: 0x81 },
    { rule: "[MQTT-3-8.3-4]", what: "(3.1.1) requested QoS 3", version: 4, bytes: frame(0x82, [0, 1, 0, 1, 97, 3]), code: 0x81 },
    { rule: "[MQTT-3.8.3-5]", what: "options bit 6 set", version: 5, bytes: frame(0x82, [0, 1, 0, 0, 1, 97, 64]), code: 0x81 },
    { rule: "[MQTT-3.8.3-5]", what: "options bit 7 set", version: 5, bytes: frame(0x82, [0, 1, 0, 0, 1, 97, 128]), code: 0x81 },
    { rule: "§3.8.3.1", what: "requested QoS 3", version: 5, bytes: frame(0x82, [0, 1, 0, 0, 1, 97, 3]), code: 0x82 },
    { rule: "§3.8.3.1", what: "Retain Handling 3", version: 5, bytes: frame(0x82, [0, 1, 0, 0, 1, 97, 48]), code: 0x82 },
    { rule: "[MQTT-3.8.3-4]", what: "No Local on a shared subscription", version: 5, bytes: frame(0x82, [0, 1, 0, ...str("$share/g/a"), 4]), code: 0x82 },
    { rule: "§3.8.2.1.2", what: "Subscription Identifier 0", version: 5, bytes: frame(0x82, [0, 1, 2, 11, 0, 0, 1, 97, 0]), code: 0x82 },
    { rule: "§3.8.2.1.2", what: "Subscription Identifier twice", version: 5, bytes: frame(0x82, [0, 1, 4, 11, 1, 11, 2, 0, 1, 97, 0]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Topic Alias in SUBSCRIBE", version: 5, bytes: frame(0x82, [0, 1, 3, 35, 0, 1, 0, 1, 97, 0]), code: 0x82 },
    { rule: "§2.2.2.2", what: "Subscription Identifier in UNSUBSCRIBE", version: 5, bytes: frame(0xa2, [0, 1, 2, 11, 1, 0, 1, 97]), code: 0x82 },
  ]);

  it("[MQTT-3.8.3-1] v5: an invalid filter still decodes (answered per filter with SUBACK 0x8F)", () => {
    const r = decodeAs(new Uint8Array(frame(0x82, [0, 1, 0, 0, 2, 97, 35, 0])), 5);
    expect(r.ok && r.packet.type === "subscribe" && r.packet.subscriptions[0]?.topicFilter).toBe("a#");
  });
});

// ---------------------------------------------------------------------------------------
describe("validateTopicFilter", () => {
  const rows: [string, number | undefined][] = [
    ["sport/tennis/#", undefined],
    ["sport/tennis#", 0x8f], // [MQTT-4.7.1-1] "#" must occupy a whole level
    ["sport/#/ranking", 0x8f], // [MQTT-4.7.1-1] "#" must be last
    ["#", undefined],
    ["#/", 0x8f],
    ["+", undefined],
    ["+/+", undefined],
    ["+/tennis/#", undefined],
    ["sport/+/player1", undefined],
    ["sport+", 0x8f], // [MQTT-4.7.1-2] "+" must occupy a whole level
    ["+sport", 0x8f],
    ["sport/+a", 0x8f],
    ["/", undefined],
    ["//", undefined],
    ["/finance", undefined],
    ["$SYS/#", undefined],
    ["$share/g/a/#", undefined],
    ["$share/g/+", undefined],
    ["$share//a", 0x8f], // [MQTT-4.8.2-1] share name at least one character
    ["$share/g", 0x8f], // [MQTT-4.8.2-2] share name followed by "/" and a filter
    ["$share/g/", 0x8f],
    ["$share/g+/a", 0x8f], // [MQTT-4.8.2-2] no wildcards in the share name
    ["$share/g#/a", 0x8f],
    ["$share/g/a#", 0x8f],
    ["", 0x8f], // [MQTT-4.7.3-1] at least one character
    ["a\u0000b", 0x8f], // [MQTT-4.7.3-2] no U+0000
  ];
  it.each(rows)("§4.7 %j -> %s", (filter, code) => {
    expect(validateTopicFilter(filter)).toBe(code);
  });
});

describe("validateTopicName", () => {
  const rows: [string, number | undefined][] = [
    ["sport/tennis/player1", undefined],
    ["/", undefined],
    ["a", undefined],
    ["$SYS/broker/uptime", undefined],
    ["ü/€/𝄞", undefined],
    [" ", undefined],
    ["", 0x90], // [MQTT-4.7.3-1]
    ["a/+", 0x90], // [MQTT-3.3.2-2] [MQTT-4.7.0-1]
    ["+", 0x90],
    ["#", 0x90],
    ["a/#", 0x90],
    ["sport+", 0x90],
    ["a\u0000b", 0x90], // [MQTT-4.7.3-2]
  ];
  it.each(rows)("§4.7 %j -> %s", (name, code) => {
    expect(validateTopicName(name)).toBe(code);
  });
});
