/** SUBSCRIBE (5.0 section 3.8, 3.1.1 section 3.8). Filter syntax is left to validateTopicFilter. */
import {
  PacketType,
  type ProtocolVersion,
  type QoS,
  type SubscribePacket,
  type SubscriptionRequest,
} from "../packets";
import { malformed, protocolError } from "./errors";
import { type Reader, readPacketId, requirePacketId, stringSize, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.SUBSCRIBE;
const NO_LOCAL = 0x04;
const RETAIN_AS_PUBLISHED = 0x08;

export function decodeSubscribe(r: Reader, version: ProtocolVersion): SubscribePacket {
  const packetId = readPacketId(r, "SUBSCRIBE");
  const properties = version === 5 ? decodeProperties(r, KIND) : undefined;
  const subscriptions: SubscriptionRequest[] = [];
  while (r.remaining() > 0) {
    const topicFilter = r.string(); // [MQTT-3.8.3-1]
    const options = r.u8();
    const qos = options & 3;
    if (version < 5) {
      // Reserved bits 7-2, or QoS 3: Malformed [MQTT-3-8.3-4] (3.1.1).
      if (qos === 3) malformed("SUBSCRIBE requests QoS 3 [MQTT-3-8.3-4]");
      if (options & 0xfc) malformed("SUBSCRIBE reserved bits are not 0 [MQTT-3-8.3-4]");
      subscriptions.push({ topicFilter, qos: qos as QoS });
      continue;
    }
    // Bits 7-6 of the Subscription Options are reserved [MQTT-3.8.3-5].
    if (options & 0xc0) malformed("SUBSCRIBE reserved option bits are not 0 [MQTT-3.8.3-5]");
    // 5.0: a Maximum QoS of 3 is a Protocol Error (3.8.3.1).
    if (qos === 3) protocolError("SUBSCRIBE Maximum QoS 3 (3.8.3.1)");
    const retainHandling = (options >> 4) & 3;
    if (retainHandling === 3) protocolError("SUBSCRIBE Retain Handling 3 (3.8.3.1)");
    const noLocal = (options & NO_LOCAL) !== 0;
    if (noLocal && topicFilter.startsWith("$share/")) {
      protocolError("No Local on a Shared Subscription [MQTT-3.8.3-4]");
    }
    subscriptions.push({
      topicFilter,
      qos: qos as QoS,
      noLocal,
      retainAsPublished: (options & RETAIN_AS_PUBLISHED) !== 0,
      retainHandling: retainHandling as 0 | 1 | 2,
    });
  }
  // At least one filter [MQTT-3.8.3-3] (3.1.1) [MQTT-3.8.3-2] (5.0).
  if (subscriptions.length === 0) protocolError("SUBSCRIBE without a Topic Filter [MQTT-3.8.3-3]");
  const packet: SubscribePacket = { type: "subscribe", packetId, subscriptions };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function optionsByte(s: SubscriptionRequest, version: ProtocolVersion): number {
  if (s.qos !== 0 && s.qos !== 1 && s.qos !== 2) throw new RangeError(`Requested QoS ${String(s.qos)}`);
  if (version < 5) return s.qos;
  const rh = s.retainHandling ?? 0;
  if (rh !== 0 && rh !== 1 && rh !== 2) throw new RangeError(`Retain Handling ${String(rh)}`);
  return s.qos | (s.noLocal ? NO_LOCAL : 0) | (s.retainAsPublished ? RETAIN_AS_PUBLISHED : 0) | (rh << 4);
}

export function encodeSubscribe(p: SubscribePacket, version: ProtocolVersion): Uint8Array {
  const packetId = requirePacketId(p.packetId, "SUBSCRIBE");
  if (p.subscriptions.length === 0) throw new RangeError("SUBSCRIBE needs at least one filter [MQTT-3.8.3-3]");
  const propsLen = version === 5 ? propertiesLength(p.properties, KIND) : 0;
  let size = 2 + (version === 5 ? propertiesSize(propsLen) : 0);
  for (const s of p.subscriptions) size += stringSize(s.topicFilter) + 1;
  // Fixed header flags 0010 [MQTT-3.8.1-1].
  const w = new Writer((PacketType.SUBSCRIBE << 4) | 0x02, size);
  w.u16(packetId);
  if (version === 5) writeProperties(w, p.properties, propsLen);
  for (const s of p.subscriptions) {
    w.string(s.topicFilter);
    w.u8(optionsByte(s, version));
  }
  return w.done();
}
