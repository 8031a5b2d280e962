/**
 * splitFrames: cuts a byte stream into whole packets using only the fixed header. Its state
 * is the plain `rest` bytes, so it survives Durable Object hibernation.
 */
import { ReasonCode } from "../packets";
import type { ProtocolViolation } from "./errors";
import { MAX_PACKET_SIZE } from "./primitives";

/** Framer: splits a byte stream into whole packets. Its state is plain bytes so it can be stored across Durable Object hibernation. */
export interface FrameResult {
  frames: Uint8Array[];
  rest: Uint8Array;
  error?: ProtocolViolation;
}

const EMPTY = new Uint8Array(0);

/**
 * `pending` is the `rest` of the previous call (or empty). Returns every whole packet in
 * pending+chunk and the remainder as a compact copy. Frames are subarrays of `chunk` (or of
 * a fresh buffer when `pending` was not empty): they stay valid as long as the caller does
 * not overwrite `chunk`.
 */
export function splitFrames(
  pending: Uint8Array,
  chunk: Uint8Array,
  maximumPacketSize: number = MAX_PACKET_SIZE,
): FrameResult {
  let buf = chunk;
  if (pending.length > 0) {
    buf = new Uint8Array(pending.length + chunk.length);
    buf.set(pending);
    buf.set(chunk, pending.length);
  }
  const frames: Uint8Array[] = [];
  const end = buf.length;
  let pos = 0;
  while (pos + 1 < end) {
    // Remaining Length: a Variable Byte Integer of at most four bytes (section 1.5.5).
    let i = pos + 1;
    let remaining = 0;
    let mul = 1;
    let complete = false;
    for (let n = 0; n < 4 && i < end; n++) {
      const b = buf[i++]!;
      remaining += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete) {
      if (i - pos - 1 < 4) break; // the length continues in bytes not yet received
      return failure(frames, ReasonCode.MalformedPacket, "Remaining Length longer than four bytes");
    }
    const total = i - pos + remaining;
    if (total > maximumPacketSize) {
      return failure(
        frames,
        ReasonCode.PacketTooLarge,
        `Packet of ${total} bytes exceeds Maximum Packet Size ${maximumPacketSize}`,
      );
    }
    if (pos + total > end) break;
    frames.push(buf.subarray(pos, pos + total));
    pos += total;
  }
  let rest: Uint8Array = EMPTY;
  if (pos < end) rest = pos === 0 && buf !== chunk ? buf : buf.slice(pos);
  return { frames, rest };
}

function failure(frames: Uint8Array[], reasonCode: number, message: string): FrameResult {
  return { frames, rest: EMPTY, error: { reasonCode, message } };
}

/**
 * The whole length (fixed header included) of the packet whose first bytes are `head`, read
 * from its Remaining Length (section 1.5.5), with the checks `splitFrames` makes. Neither
 * `length` nor `error` while the Remaining Length continues in bytes not received yet. Lets a
 * caller keep a long partial packet as the pieces it arrived in and join them once, when the
 * last one is there, instead of joining the remainder with every piece.
 */
export function packetLength(
  head: Uint8Array,
  maximumPacketSize: number = MAX_PACKET_SIZE,
): { length?: number; error?: ProtocolViolation } {
  let remaining = 0;
  let mul = 1;
  for (let i = 1; i < Math.min(head.length, 5); i++) {
    const b = head[i]!;
    remaining += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) !== 0) continue;
    const length = i + 1 + remaining;
    if (length > maximumPacketSize) {
      const message = `Packet of ${length} bytes exceeds Maximum Packet Size ${maximumPacketSize}`;
      return { error: { reasonCode: ReasonCode.PacketTooLarge, message } };
    }
    return { length };
  }
  if (head.length < 5) return {};
  return { error: { reasonCode: ReasonCode.MalformedPacket, message: "Remaining Length longer than four bytes" } };
}
