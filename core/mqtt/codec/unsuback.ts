/** UNSUBACK (5.0 section 3.11, 3.1.1 section 3.11: no payload in 3.1.1). */
import { PacketType, type ProtocolVersion, type UnsubackPacket } from "../packets";
import { protocolError } from "./errors";
import { type Reader, readPacketId, requirePacketId, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.UNSUBACK;

export function decodeUnsuback(r: Reader, version: ProtocolVersion): UnsubackPacket {
  const packet: UnsubackPacket = { type: "unsuback", packetId: readPacketId(r, "UNSUBACK") };
  if (version < 5) return packet;
  const properties = decodeProperties(r, KIND);
  const reasonCodes: number[] = [];
  while (r.remaining() > 0) reasonCodes.push(r.u8());
  if (reasonCodes.length === 0) protocolError("UNSUBACK without a reason code (3.11.3)");
  packet.reasonCodes = reasonCodes;
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodeUnsuback(p: UnsubackPacket, version: ProtocolVersion): Uint8Array {
  const packetId = requirePacketId(p.packetId, "UNSUBACK");
  const v5 = version === 5;
  const codes = p.reasonCodes ?? [];
  const propsLen = v5 ? propertiesLength(p.properties, KIND) : 0;
  const size = 2 + (v5 ? propertiesSize(propsLen) + codes.length : 0);
  const w = new Writer(PacketType.UNSUBACK << 4, size);
  w.u16(packetId);
  if (v5) {
    writeProperties(w, p.properties, propsLen);
    for (const code of codes) w.u8(code);
  }
  return w.done();
}
