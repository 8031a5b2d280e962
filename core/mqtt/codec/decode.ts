/** decodePacket: one whole packet, fixed header included, to a Packet or a ProtocolViolation. */
import { type Packet, PacketType, type ProtocolVersion, ReasonCode } from "../packets";
import { decodeAck } from "./ack";
import { decodeAuth } from "./auth";
import { decodeConnack } from "./connack";
import { decodeConnect } from "./connect";
import { decodeDisconnect } from "./disconnect";
import { type DecodeResult, malformed, protocolError, toViolation, violation } from "./errors";
import { decodePing } from "./ping";
import { MAX_PACKET_SIZE, Reader } from "./primitives";
import { decodePublish } from "./publish";
import { decodeSuback } from "./suback";
import { decodeSubscribe } from "./subscribe";
import { decodeUnsuback } from "./unsuback";
import { decodeUnsubscribe } from "./unsubscribe";

export interface DecodeOptions {
  /** Version negotiated by CONNECT; undefined before CONNECT (then only CONNECT decodes; other packet types are a Protocol Error). CONNECT itself carries its own version. */
  protocolVersion?: ProtocolVersion;
  /** Reject larger packets with 0x95. Default 268_435_455 + 5. */
  maximumPacketSize?: number;
}

/**
 * Fixed header flags per packet type (5.0 table 2-2, 3.1.1 table 2.2): reserved bits MUST
 * be as listed [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-1] (3.1.1). PUBLISH (-1) carries DUP/QoS/RETAIN.
 */
const FLAGS: readonly number[] = [0, 0, 0, -1, 0, 0, 0b0010, 0, 0b0010, 0, 0b0010, 0, 0, 0, 0, 0];

/** Decode exactly one whole packet (fixed header included). Trailing bytes after the packet's remaining length are Malformed. */
export function decodePacket(frame: Uint8Array, options?: DecodeOptions): DecodeResult {
  try {
    return { ok: true, packet: decodeFrame(frame, options ?? {}) };
  } catch (e) {
    return { ok: false, error: toViolation(e) };
  }
}

function decodeFrame(frame: Uint8Array, options: DecodeOptions): Packet {
  const max = options.maximumPacketSize ?? MAX_PACKET_SIZE;
  if (frame.length > max) {
    violation(ReasonCode.PacketTooLarge, `Packet of ${frame.length} bytes exceeds Maximum Packet Size ${max}`);
  }
  if (frame.length < 2) malformed("Packet shorter than a fixed header");
  const first = frame[0]!;
  const type = first >> 4;
  const flags = first & 0x0f;
  const r = new Reader(frame, 1);
  const remaining = r.vbi();
  const headerLength = r.pos;
  // A Remaining Length in more bytes than needed ends in 0x00; 5.0 forbids it [MQTT-1.5.5-1].
  const nonMinimal = headerLength > 2 && frame[headerLength - 1] === 0;
  if (remaining !== frame.length - headerLength) {
    malformed(`Remaining Length ${remaining} does not match the ${frame.length - headerLength} bytes present`);
  }
  if (type === 0) malformed("Packet type 0 is reserved");
  if (type !== PacketType.PUBLISH && flags !== FLAGS[type]) {
    // Includes PUBREL [MQTT-3.6.1-1], SUBSCRIBE [MQTT-3.8.1-1], UNSUBSCRIBE [MQTT-3.10.1-1].
    malformed(`Reserved fixed header flags of packet type ${type} are not ${FLAGS[type]} [MQTT-2.1.3-1]`);
  }

  if (type === PacketType.CONNECT) {
    const packet = decodeConnect(r);
    if (nonMinimal && packet.protocolVersion === 5) minimalLength();
    return finish(r, packet);
  }
  const version = options.protocolVersion;
  // The first packet from a Client MUST be CONNECT [MQTT-3.1.0-1].
  if (version === undefined) protocolError(`Packet type ${type} before CONNECT [MQTT-3.1.0-1]`);
  if (version === 5 && nonMinimal) minimalLength();
  r.strictVbi = version === 5;
  return finish(r, decodeBody(r, type, flags, version));
}

function minimalLength(): never {
  return malformed("Remaining Length not in its minimum number of bytes [MQTT-1.5.5-1]");
}

function finish(r: Reader, packet: Packet): Packet {
  if (r.remaining() !== 0) malformed(`${r.remaining()} unexpected bytes at the end of ${packet.type.toUpperCase()}`);
  return packet;
}

function decodeBody(r: Reader, type: number, flags: number, version: ProtocolVersion): Packet {
  switch (type) {
    case PacketType.CONNACK:
      return decodeConnack(r, version);
    case PacketType.PUBLISH:
      return decodePublish(r, flags, version);
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      return decodeAck(r, type, version);
    case PacketType.SUBSCRIBE:
      return decodeSubscribe(r, version);
    case PacketType.SUBACK:
      return decodeSuback(r, version);
    case PacketType.UNSUBSCRIBE:
      return decodeUnsubscribe(r, version);
    case PacketType.UNSUBACK:
      return decodeUnsuback(r, version);
    case PacketType.PINGREQ:
    case PacketType.PINGRESP:
      return decodePing(type);
    case PacketType.DISCONNECT:
      return decodeDisconnect(r, version);
    default:
      // AUTH (15) is reserved, hence forbidden, before 5.0 (3.1.1 table 2.1).
      if (version < 5) malformed("Packet type 15 is reserved in MQTT 3.1.1");
      return decodeAuth(r);
  }
}
