/** encodePacket: one switch sending each packet type to its own encoder. */
import type { Packet, ProtocolVersion } from "../packets";
import { encodeAck } from "./ack";
import { encodeAuth } from "./auth";
import { encodeConnack } from "./connack";
import { encodeConnect } from "./connect";
import { encodeDisconnect } from "./disconnect";
import { encodePingreq, encodePingresp } from "./ping";
import { encodePublish } from "./publish";
import { encodeSuback } from "./suback";
import { encodeSubscribe } from "./subscribe";
import { encodeUnsuback } from "./unsuback";
import { encodeUnsubscribe } from "./unsubscribe";

/** Encode one packet for the given version (fields not in that version are left out). Throws only on programmer error (e.g. a string longer than 65535 bytes, packetId 0 where required). */
export function encodePacket(packet: Packet, version: ProtocolVersion): Uint8Array {
  switch (packet.type) {
    case "connect":
      return encodeConnect(packet, version);
    case "connack":
      return encodeConnack(packet, version);
    case "publish":
      return encodePublish(packet, version);
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return encodeAck(packet, version);
    case "subscribe":
      return encodeSubscribe(packet, version);
    case "suback":
      return encodeSuback(packet, version);
    case "unsubscribe":
      return encodeUnsubscribe(packet, version);
    case "unsuback":
      return encodeUnsuback(packet, version);
    case "pingreq":
      return encodePingreq();
    case "pingresp":
      return encodePingresp();
    case "disconnect":
      return encodeDisconnect(packet, version);
    case "auth":
      return encodeAuth(packet, version);
    default:
      throw new TypeError(`Unknown packet type ${(packet as { type: unknown }).type}`);
  }
}
