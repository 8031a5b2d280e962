/** UNSUBSCRIBE (5.0 section 3.10, 3.1.1 section 3.10). Filter syntax is left to validateTopicFilter. */
import { PacketType, type ProtocolVersion, type UnsubscribePacket } from "../packets";
import { protocolError } from "./errors";
import { type Reader, readPacketId, requirePacketId, stringSize, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.UNSUBSCRIBE;

export function decodeUnsubscribe(r: Reader, version: ProtocolVersion): UnsubscribePacket {
  const packetId = readPacketId(r, "UNSUBSCRIBE");
  const properties = version === 5 ? decodeProperties(r, KIND) : undefined;
  const topicFilters: string[] = [];
  while (r.remaining() > 0) topicFilters.push(r.string()); // [MQTT-3.10.3-1]
  if (topicFilters.length === 0) protocolError("UNSUBSCRIBE without a Topic Filter [MQTT-3.10.3-2]");
  const packet: UnsubscribePacket = { type: "unsubscribe", packetId, topicFilters };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodeUnsubscribe(p: UnsubscribePacket, version: ProtocolVersion): Uint8Array {
  const packetId = requirePacketId(p.packetId, "UNSUBSCRIBE");
  if (p.topicFilters.length === 0) throw new RangeError("UNSUBSCRIBE needs at least one filter [MQTT-3.10.3-2]");
  const propsLen = version === 5 ? propertiesLength(p.properties, KIND) : 0;
  let size = 2 + (version === 5 ? propertiesSize(propsLen) : 0);
  for (const f of p.topicFilters) size += stringSize(f);
  // Fixed header flags 0010 [MQTT-3.10.1-1].
  const w = new Writer((PacketType.UNSUBSCRIBE << 4) | 0x02, size);
  w.u16(packetId);
  if (version === 5) writeProperties(w, p.properties, propsLen);
  for (const f of p.topicFilters) w.string(f);
  return w.done();
}
