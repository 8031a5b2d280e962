/** DISCONNECT (5.0 section 3.14; 3.1.1 section 3.14: no variable header). */
import { type DisconnectPacket, PacketType, type ProtocolVersion } from "../packets";
import { type Reader, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.DISCONNECT;

export function decodeDisconnect(r: Reader, version: ProtocolVersion): DisconnectPacket {
  const packet: DisconnectPacket = { type: "disconnect" };
  if (version < 5) return packet; // any byte left is trailing, hence Malformed
  // Remaining Length 0: reason 0x00; below 2: no properties (3.14.2.1, 3.14.2.2).
  packet.reasonCode = r.remaining() > 0 ? r.u8() : 0;
  if (r.remaining() > 0) {
    const properties = decodeProperties(r, KIND);
    if (properties !== undefined) packet.properties = properties;
  }
  return packet;
}

export function encodeDisconnect(p: DisconnectPacket, version: ProtocolVersion): Uint8Array {
  const reasonCode = p.reasonCode ?? 0;
  const propsLen = version === 5 ? propertiesLength(p.properties, KIND) : 0;
  let size = 0;
  if (version === 5 && (reasonCode !== 0 || propsLen > 0)) {
    size = 1 + (propsLen > 0 ? propertiesSize(propsLen) : 0);
  }
  const w = new Writer(PacketType.DISCONNECT << 4, size);
  if (size > 0) w.u8(reasonCode);
  if (size > 1) writeProperties(w, p.properties, propsLen);
  return w.done();
}
