/** CONNACK (5.0 section 3.2, 3.1.1 section 3.2). */
import { type ConnackPacket, PacketType, type ProtocolVersion } from "../packets";
import { malformed } from "./errors";
import { type Reader, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.CONNACK;

export function decodeConnack(r: Reader, version: ProtocolVersion): ConnackPacket {
  const flags = r.u8();
  // Connect Acknowledge Flags bits 7-1 are reserved and MUST be 0 [MQTT-3.2.2-1].
  if (flags & 0xfe) malformed("CONNACK reserved flags are not 0 [MQTT-3.2.2-1]");
  const reasonCode = r.u8();
  // 3.1.1 return codes 6-255 are reserved (section 3.2.2.3).
  if (version < 5 && reasonCode > 5) malformed(`CONNACK return code ${reasonCode} is reserved`);
  const packet: ConnackPacket = { type: "connack", sessionPresent: (flags & 1) === 1, reasonCode };
  if (version === 5) {
    const properties = decodeProperties(r, KIND);
    if (properties !== undefined) packet.properties = properties;
  }
  return packet;
}

export function encodeConnack(p: ConnackPacket, version: ProtocolVersion): Uint8Array {
  if (version < 5 && (p.reasonCode < 0 || p.reasonCode > 5)) {
    throw new RangeError(`CONNACK return code ${p.reasonCode} does not exist in MQTT 3.1.1`);
  }
  const propsLen = version === 5 ? propertiesLength(p.properties, KIND) : 0;
  const size = 2 + (version === 5 ? propertiesSize(propsLen) : 0);
  const w = new Writer(PacketType.CONNACK << 4, size);
  w.u8(p.sessionPresent ? 1 : 0);
  w.u8(p.reasonCode);
  if (version === 5) writeProperties(w, p.properties, propsLen);
  return w.done();
}
