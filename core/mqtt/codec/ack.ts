/** PUBACK, PUBREC, PUBREL, PUBCOMP (5.0 sections 3.4 to 3.7, 3.1.1 sections 3.4 to 3.7). */
import { type AckPacket, PacketType, type ProtocolVersion } from "../packets";
import { type Reader, readPacketId, requirePacketId, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

type AckType = AckPacket["type"];

const TYPES: Record<AckType, number> = {
  puback: PacketType.PUBACK,
  pubrec: PacketType.PUBREC,
  pubrel: PacketType.PUBREL,
  pubcomp: PacketType.PUBCOMP,
};
const NAMES: Record<number, AckType> = { 4: "puback", 5: "pubrec", 6: "pubrel", 7: "pubcomp" };

export function decodeAck(r: Reader, type: number, version: ProtocolVersion): AckPacket {
  const name = NAMES[type]!;
  const packet: AckPacket = { type: name, packetId: readPacketId(r, name.toUpperCase()) };
  if (version === 5) {
    // Remaining Length 2: reason 0x00 and no properties; 3: a reason code and no
    // properties (3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1).
    packet.reasonCode = r.remaining() > 0 ? r.u8() : 0;
    if (r.remaining() > 0) {
      const properties = decodeProperties(r, 1 << type);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  return packet;
}

export function encodeAck(p: AckPacket, version: ProtocolVersion): Uint8Array {
  const type = TYPES[p.type];
  const packetId = requirePacketId(p.packetId, p.type.toUpperCase());
  // PUBREL's fixed header flags are 0010 [MQTT-3.6.1-1].
  const first = (type << 4) | (type === PacketType.PUBREL ? 0x02 : 0);
  const reasonCode = p.reasonCode ?? 0;
  const propsLen = version === 5 ? propertiesLength(p.properties, 1 << type) : 0;
  let size = 2;
  if (version === 5 && (reasonCode !== 0 || propsLen > 0)) {
    size += 1 + (propsLen > 0 ? propertiesSize(propsLen) : 0);
  }
  const w = new Writer(first, size);
  w.u16(packetId);
  if (size > 2) w.u8(reasonCode);
  if (size > 3) writeProperties(w, p.properties, propsLen);
  return w.done();
}
