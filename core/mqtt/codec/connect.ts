/** CONNECT (5.0 section 3.1, 3.1.1 section 3.1, and MQTT 3.1 "MQIsdp" level 3). */
import {
  type ConnectPacket,
  PacketType,
  type ProtocolVersion,
  type QoS,
  ReasonCode,
  type Will,
  type WillProperties,
} from "../packets";
import { malformed, protocolError, violation } from "./errors";
import { binarySize, type Reader, stringSize, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, WILL, writeProperties } from "./properties";
import { validateTopicName } from "./topic-syntax";
import { isWellFormedUtf8 } from "./utf8";

const KIND = 1 << PacketType.CONNECT;

const RESERVED = 0x01;
const CLEAN = 0x02;
const WILL_FLAG = 0x04;
const WILL_RETAIN = 0x20;
const PASSWORD = 0x40;
const USERNAME = 0x80;

/** Protocol name for each level: "MQIsdp" for 3.1, "MQTT" for 3.1.1 and 5.0. */
export function protocolNameFor(version: ProtocolVersion): string {
  return version === 3 ? "MQIsdp" : "MQTT";
}

export function decodeConnect(r: Reader): ConnectPacket {
  const protocolName = r.string();
  const level = r.u8();
  // An unknown protocol name [MQTT-3.1.2-1] or level [MQTT-3.1.2-2] is reported as 0x84:
  // this is not an MQTT version the server speaks. The session layer answers CONNACK 0x01
  // (3.1.1) or 0x84 (5.0) and closes.
  if (protocolName !== "MQTT" && protocolName !== "MQIsdp") {
    violation(ReasonCode.UnsupportedProtocolVersion, `Unknown protocol name "${protocolName}" [MQTT-3.1.2-1]`);
  }
  if (protocolName === "MQTT" ? level !== 4 && level !== 5 : level !== 3) {
    violation(
      ReasonCode.UnsupportedProtocolVersion,
      `Unsupported protocol level ${level} for "${protocolName}" [MQTT-3.1.2-2]`,
    );
  }
  const version = level as ProtocolVersion;
  r.strictVbi = version === 5;

  const flags = r.u8();
  if (flags & RESERVED) malformed("CONNECT reserved flag is not 0 [MQTT-3.1.2-3]");
  const hasWill = (flags & WILL_FLAG) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & WILL_RETAIN) !== 0;
  if (!hasWill && willQos !== 0) {
    malformed("Will QoS without Will Flag [MQTT-3.1.2-11] (5.0) [MQTT-3.1.2-13] (3.1.1)");
  }
  if (!hasWill && willRetain) {
    malformed("Will Retain without Will Flag [MQTT-3.1.2-13] (5.0) [MQTT-3.1.2-15] (3.1.1)");
  }
  if (willQos === 3) malformed("Will QoS 3 [MQTT-3.1.2-12] (5.0) [MQTT-3.1.2-14] (3.1.1)");
  const hasUsername = (flags & USERNAME) !== 0;
  const hasPassword = (flags & PASSWORD) !== 0;
  // 5.0 allows a password without a user name; 3.1.1 does not [MQTT-3.1.2-22].
  if (version < 5 && hasPassword && !hasUsername) {
    malformed("Password Flag without User Name Flag [MQTT-3.1.2-22]");
  }

  const keepAlive = r.u16();
  const properties = version === 5 ? decodeProperties(r, KIND) : undefined;
  if (properties?.authenticationData !== undefined && properties.authenticationMethod === undefined) {
    protocolError("Authentication Data without Authentication Method (3.1.2.11.10)");
  }
  // Client Identifier: a UTF-8 Encoded String [MQTT-3.1.3-4]; its length and characters are
  // the session layer's to judge (0x85 / return code 0x02).
  const clientId = r.string();

  const packet: ConnectPacket = {
    type: "connect",
    protocolName,
    protocolVersion: version,
    clean: (flags & CLEAN) !== 0,
    keepAlive,
    clientId,
  };
  if (hasWill) packet.will = decodeWill(r, version, willQos as QoS, willRetain);
  if (hasUsername) packet.username = r.string();
  if (hasPassword) packet.password = r.binary();
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeWill(r: Reader, version: ProtocolVersion, qos: QoS, retain: boolean): Will {
  // Will Properties, Will Topic and Will Payload are present with the Will Flag [MQTT-3.1.2-9].
  const properties: WillProperties | undefined =
    version === 5 ? decodeProperties(r, WILL) : undefined;
  const topic = r.string();
  const topicError = validateTopicName(topic);
  if (topicError !== undefined) violation(topicError, `Will Topic "${topic}" is not a valid Topic Name`);
  const payload = r.binary();
  // The Server MAY check a payload declared as UTF-8 and refuse it with 0x99 (3.1.3.2.3).
  if (properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(payload)) {
    violation(ReasonCode.PayloadFormatInvalid, "Will Payload is not UTF-8 as its Payload Format Indicator says");
  }
  const will: Will = { topic, payload, qos, retain };
  if (properties !== undefined) will.properties = properties;
  return will;
}

export function encodeConnect(p: ConnectPacket, version: ProtocolVersion): Uint8Array {
  const v5 = version === 5;
  const name = protocolNameFor(version);
  const will = p.will;
  if (!v5 && p.password !== undefined && p.username === undefined) {
    throw new RangeError("MQTT 3.1.1 needs a user name to send a password [MQTT-3.1.2-22]");
  }
  let size = 2 + name.length + 1 + 1 + 2 + stringSize(p.clientId);
  const propsLen = v5 ? propertiesLength(p.properties, KIND) : 0;
  if (v5) size += propertiesSize(propsLen);
  let willPropsLen = 0;
  if (will !== undefined) {
    if (v5) {
      willPropsLen = propertiesLength(will.properties, WILL);
      size += propertiesSize(willPropsLen);
    }
    size += stringSize(will.topic) + binarySize(will.payload);
  }
  if (p.username !== undefined) size += stringSize(p.username);
  if (p.password !== undefined) size += binarySize(p.password);

  let flags = p.clean ? CLEAN : 0;
  if (will !== undefined) flags |= WILL_FLAG | (will.qos << 3) | (will.retain ? WILL_RETAIN : 0);
  if (p.username !== undefined) flags |= USERNAME;
  if (p.password !== undefined) flags |= PASSWORD;

  const w = new Writer(PacketType.CONNECT << 4, size);
  w.string(name);
  w.u8(version);
  w.u8(flags);
  w.u16(p.keepAlive);
  if (v5) writeProperties(w, p.properties, propsLen);
  w.string(p.clientId);
  if (will !== undefined) {
    if (v5) writeProperties(w, will.properties, willPropsLen);
    w.string(will.topic);
    w.binary(will.payload);
  }
  if (p.username !== undefined) w.string(p.username);
  if (p.password !== undefined) w.binary(p.password);
  return w.done();
}
