/** PINGREQ and PINGRESP (sections 3.12, 3.13): a fixed header and nothing else. */
import { PacketType, type PingreqPacket, type PingrespPacket } from "../packets";

/** The caller checked the fixed header; any body would be trailing bytes, hence Malformed. */
export function decodePing(type: number): PingreqPacket | PingrespPacket {
  return type === PacketType.PINGREQ ? { type: "pingreq" } : { type: "pingresp" };
}

export function encodePingreq(): Uint8Array {
  return new Uint8Array([PacketType.PINGREQ << 4, 0]);
}

export function encodePingresp(): Uint8Array {
  return new Uint8Array([PacketType.PINGRESP << 4, 0]);
}
