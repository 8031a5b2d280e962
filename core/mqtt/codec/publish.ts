/** PUBLISH (5.0 section 3.3, 3.1.1 section 3.3). */
import { PacketType, type ProtocolVersion, type PublishPacket, type QoS, ReasonCode } from "../packets";
import { malformed, protocolError, violation } from "./errors";
import { type Reader, readPacketId, requirePacketId, stringSize, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";
import { validateTopicName } from "./topic-syntax";
import { isWellFormedUtf8 } from "./utf8";

const KIND = 1 << PacketType.PUBLISH;
const DUP = 0x08;
const RETAIN = 0x01;

export function decodePublish(r: Reader, flags: number, version: ProtocolVersion): PublishPacket {
  const qos = (flags >> 1) & 3;
  if (qos === 3) malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]");
  const dup = (flags & DUP) !== 0;
  if (dup && qos === 0) malformed("PUBLISH with DUP set at QoS 0 [MQTT-3.3.1-2]");
  const topic = r.string(); // [MQTT-3.3.2-1]
  const packetId = qos > 0 ? readPacketId(r, "PUBLISH") : undefined;
  const properties = version === 5 ? decodeProperties(r, KIND) : undefined;
  // Subscription Identifiers are decoded even though a client MUST NOT send them
  // [MQTT-3.3.4-6]: the session layer, which knows the direction, refuses them.

  if (topic.length === 0 && version === 5) {
    // An empty Topic Name needs a Topic Alias (3.3.2.3.4); resolving it is the session's job.
    if (properties?.topicAlias === undefined) {
      protocolError("PUBLISH with an empty Topic Name and no Topic Alias (3.3.2.1)");
    }
  } else {
    const error = validateTopicName(topic);
    if (error !== undefined) {
      const rule = topic.length === 0 ? "[MQTT-4.7.3-1]" : "[MQTT-3.3.2-2]";
      violation(error, `PUBLISH Topic Name "${topic}" is invalid ${rule}`);
    }
  }

  const payload = r.rest();
  // The receiver MAY check a payload declared UTF-8 and refuse it with 0x99 (3.3.2.3.2).
  if (properties?.payloadFormatIndicator === 1 && !isWellFormedUtf8(payload)) {
    violation(ReasonCode.PayloadFormatInvalid, "PUBLISH payload is not UTF-8 as its Payload Format Indicator says");
  }

  const packet: PublishPacket = { type: "publish", topic, payload, qos: qos as QoS, retain: (flags & RETAIN) !== 0, dup };
  if (packetId !== undefined) packet.packetId = packetId;
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodePublish(p: PublishPacket, version: ProtocolVersion): Uint8Array {
  if (p.qos !== 0 && p.qos !== 1 && p.qos !== 2) throw new RangeError(`PUBLISH QoS ${String(p.qos)}`);
  // A Packet Identifier only for QoS > 0 [MQTT-2.2.1-2]; DUP only for QoS > 0 [MQTT-3.3.1-2].
  const packetId = p.qos > 0 ? requirePacketId(p.packetId, "PUBLISH") : undefined;
  const propsLen = version === 5 ? propertiesLength(p.properties, KIND) : 0;
  let size = stringSize(p.topic) + (packetId !== undefined ? 2 : 0) + p.payload.length;
  if (version === 5) size += propertiesSize(propsLen);

  const first = (PacketType.PUBLISH << 4) | (p.dup && p.qos > 0 ? DUP : 0) | (p.qos << 1) | (p.retain ? RETAIN : 0);
  const w = new Writer(first, size);
  w.string(p.topic);
  if (packetId !== undefined) w.u16(packetId);
  if (version === 5) writeProperties(w, p.properties, propsLen);
  w.bytes(p.payload);
  return w.done();
}
