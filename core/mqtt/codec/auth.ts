/** AUTH (5.0 section 3.15; the packet type is reserved in 3.1.1). */
import { type AuthPacket, PacketType, type ProtocolVersion } from "../packets";
import { protocolError } from "./errors";
import { type Reader, Writer } from "./primitives";
import { decodeProperties, propertiesLength, propertiesSize, writeProperties } from "./properties";

const KIND = 1 << PacketType.AUTH;

/** Called for 5.0 only; the dispatcher rejects packet type 15 in older versions. */
export function decodeAuth(r: Reader): AuthPacket {
  // Remaining Length 0: 0x00 Success and no properties (3.15.2.1).
  const packet: AuthPacket = { type: "auth", reasonCode: r.remaining() > 0 ? r.u8() : 0 };
  if (r.remaining() > 0) {
    const properties = decodeProperties(r, KIND);
    if (properties !== undefined) packet.properties = properties;
  }
  if (packet.properties?.authenticationData !== undefined && packet.properties.authenticationMethod === undefined) {
    protocolError("AUTH with Authentication Data but no Authentication Method (3.15.2.2)");
  }
  return packet;
}

export function encodeAuth(p: AuthPacket, version: ProtocolVersion): Uint8Array {
  if (version !== 5) throw new RangeError("AUTH exists only in MQTT 5.0");
  const reasonCode = p.reasonCode ?? 0;
  const propsLen = propertiesLength(p.properties, KIND);
  const size = reasonCode === 0 && propsLen === 0 ? 0 : 1 + propertiesSize(propsLen);
  const w = new Writer(PacketType.AUTH << 4, size);
  if (size > 0) {
    w.u8(reasonCode);
    writeProperties(w, p.properties, propsLen);
  }
  return w.done();
}
