/**
 * Decode failures. Decoders throw a private DecodeError deep inside; decodePacket catches
 * it (and anything else) at the top and returns a ProtocolViolation. Nothing else escapes.
 */
import { type Packet, ReasonCode } from "../packets";

export interface ProtocolViolation {
  reasonCode: number;
  message: string;
}

export type DecodeResult =
  | { ok: true; packet: Packet }
  | { ok: false; error: ProtocolViolation };

export class DecodeError extends Error {
  constructor(
    readonly reasonCode: number,
    message: string,
  ) {
    super(message);
    this.name = "DecodeError";
  }
}

/** 0x81: the packet cannot be parsed according to the specification (section 4.13). */
export function malformed(message: string): never {
  throw new DecodeError(ReasonCode.MalformedPacket, message);
}

/** 0x82: the packet parses but breaks a protocol rule. */
export function protocolError(message: string): never {
  throw new DecodeError(ReasonCode.ProtocolError, message);
}

export function violation(reasonCode: number, message: string): never {
  throw new DecodeError(reasonCode, message);
}

/** Turns whatever was thrown into a ProtocolViolation; unknown errors count as Malformed. */
export function toViolation(e: unknown): ProtocolViolation {
  if (e instanceof DecodeError) return { reasonCode: e.reasonCode, message: e.message };
  // A RangeError or TypeError from a typed array or the UTF-8 decoder means the bytes
  // did not fit the structure: a Malformed Packet.
  const detail = e instanceof Error ? e.message : String(e);
  return { reasonCode: ReasonCode.MalformedPacket, message: `Malformed Packet: ${detail}` };
}
