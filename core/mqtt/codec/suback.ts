/** SUBACK (5.0 section 3.9, 3.1.1 section 3.9). */
import { PacketType, type ProtocolVersion, type SubackPacket } from "../packets";
import { malformed, protocolError } from "./errors";
import { type Reader, readPacketId, requirePacketId, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.SUBACK;

export function decodeSuback(r: Reader, version: ProtocolVersion): SubackPacket {
  const packetId = readPacketId(r, "SUBACK");
  const properties = version === 5 ? decodeProperties(r, KIND) : undefined;
  const reasonCodes: number[] = [];
  while (r.remaining() > 0) {
    const code = r.u8();
    // 3.1.1 return codes: 0x00, 0x01, 0x02, 0x80; others are reserved (3.9.3).
    if (version < 5 && code > 2 && code !== 0x80) malformed(`SUBACK return code ${code} is reserved`);
    // 5.0: 0x03..0x7F are not SUBACK reason codes (3.9.3); encodeSuback refuses them too.
    if (code > 2 && code < 0x80) malformed(`SUBACK reason code ${code} is not a SUBACK reason code (3.9.3)`);
    reasonCodes.push(code);
  }
  if (reasonCodes.length === 0) protocolError("SUBACK without a return code (3.9.3)");
  const packet: SubackPacket = { type: "suback", packetId, reasonCodes };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

export function encodeSuback(p: SubackPacket, version: ProtocolVersion): Uint8Array {
  const packetId = requirePacketId(p.packetId, "SUBACK");
  const propsLen = version === 5 ? propertiesLength(p.properties, KIND) : 0;
  const size = 2 + (version === 5 ? propertiesSize(propsLen) : 0) + p.reasonCodes.length;
  const w = new Writer(PacketType.SUBACK << 4, size);
  w.u16(packetId);
  if (version === 5) writeProperties(w, p.properties, propsLen);
  for (const code of p.reasonCodes) {
    if (!Number.isInteger(code) || code < 0 || code > 0xff || (code > 2 && code < 0x80)) {
      throw new RangeError(`SUBACK reason code ${code}`);
    }
    // 3.1.1 has a single failure code, 0x80 (3.9.3).
    w.u8(version < 5 && code >= 0x80 ? 0x80 : code);
  }
  return w.done();
}
