// The Worker relay's view of MQTT bytes (worker/relay.ts): it frames only the first packet,
// which must be CONNECT, and after that frames what the session sends only to take QoS 0
// out for a client that does not read. No Workers API here: tested in the Workers pool as a unit.
import { decodePacket, packetLength, splitFrames } from "../core/mqtt/codec";
import { concatBytes } from "../core/util/bytes";

const EMPTY = new Uint8Array(0);

/** The first packet's bytes are still arriving. */
export const MORE = { kind: "more" } as const;

/** What one WebSocket message before CONNECT gave. */
export type FirstPacketStep =
  | typeof MORE
  /** The CONNECT is whole: `frame` is it, `bytes` everything received so far (the CONNECT first). */
  | { kind: "connect"; frame: Uint8Array; bytes: Uint8Array }
  /** Not a CONNECT, not MQTT, or too large: close the connection with this reason. */
  | { kind: "refuse"; reason: string };

const CONNECT_HEADER = 0x10;

/**
 * Reads a connection's bytes until its first packet is whole. Only the fixed header is
 * parsed on the way, so a CONNECT sent in many small messages costs time linear in its size,
 * and at most one maximum-size packet is held (the caller bounds the time: CONNECT_TIMEOUT).
 * The packet itself is decoded by the caller (admitFirstPacket), as the objects do.
 */
export class FirstPacketReader {
  readonly #maximumPacketSize: number;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  /** The whole packet's size, once its fixed header has arrived. */
  #length: number | undefined;

  constructor(maximumPacketSize: number) {
    this.#maximumPacketSize = maximumPacketSize;
  }

  /** Bytes held so far. */
  get bytes(): number {
    return this.#bytes;
  }

  push(message: ArrayBuffer | string): FirstPacketStep {
    // MQTT over WebSocket uses binary messages only [MQTT-6.0.0-1].
    if (typeof message === "string") return refuse("CONNECT expected");
    if (message.byteLength === 0) return MORE;
    const chunk = new Uint8Array(message);
    // The first packet must be a CONNECT [MQTT-3.1.0-1]: refused on its first byte, without
    // waiting for a whole packet (what startsWithConnect does in the objects).
    if (this.#bytes === 0 && chunk[0] !== CONNECT_HEADER) return refuse("CONNECT expected");
    this.#chunks.push(chunk);
    this.#bytes += chunk.byteLength;
    if (this.#length === undefined) {
      const { length, error } = packetLength(join(this.#chunks, Math.min(5, this.#bytes)), this.#maximumPacketSize);
      if (error) return refuse(error.message);
      if (length === undefined) return MORE;
      this.#length = length;
    }
    if (this.#bytes < this.#length) return MORE;
    const bytes = join(this.#chunks, this.#bytes);
    this.#chunks = [];
    return { kind: "connect", frame: bytes.subarray(0, this.#length), bytes };
  }
}

function refuse(reason: string): FirstPacketStep {
  return { kind: "refuse", reason };
}

/** The first `n` bytes of the chunks, as one array (the chunk itself when it holds them). */
export function join(chunks: Uint8Array[], n: number): Uint8Array {
  const first = chunks[0];
  if (first && first.byteLength >= n) return first.byteLength === n ? first : first.subarray(0, n);
  const joined = new Uint8Array(n);
  let at = 0;
  for (const chunk of chunks) {
    if (at >= n) break;
    const part = chunk.subarray(0, n - at);
    joined.set(part, at);
    at += part.byteLength;
  }
  return joined;
}

/**
 * What of a message from the session still goes to a client that does not read: the message
 * less its QoS 0 PUBLISHes (`kept` undefined when nothing is left), and how many those were.
 * The session puts several packets in a message (PACKETS_PER_MESSAGE_BYTES), so the packets
 * are looked at one by one. A 5.0 PUBLISH naming its topic and a Topic Alias tells the client
 * the mapping [MQTT-3.3.2-12]; dropping it would leave the next ones unreadable, so it stays.
 * QoS 1/2 and every other packet always stay: the session's window and queue bound those.
 * Called only while the client is behind, so the decode is paid only then; a message that is
 * not whole packets (never sent by the session) goes as it is.
 */
export function withoutDroppable(message: ArrayBuffer | string, protocolVersion: number): { kept: ArrayBuffer | Uint8Array | string | undefined; dropped: number } {
  if (typeof message === "string" || message.byteLength < 2) return { kept: message, dropped: 0 };
  const { frames, rest, error } = splitFrames(EMPTY, new Uint8Array(message));
  if (error || rest.byteLength > 0) return { kept: message, dropped: 0 };
  const kept = frames.filter((frame) => !droppable(frame, protocolVersion));
  const dropped = frames.length - kept.length;
  if (dropped === 0) return { kept: message, dropped };
  return { kept: kept.length === 0 ? undefined : concatBytes(kept), dropped };
}

/** A QoS 0 PUBLISH that does not set up a Topic Alias. */
function droppable(frame: Uint8Array, protocolVersion: number): boolean {
  const header = frame[0]!;
  if (header >> 4 !== 3 || (header & 0x06) !== 0) return false; // PUBLISH, QoS 0
  if (protocolVersion !== 5) return true;
  const decoded = decodePacket(frame, { protocolVersion: 5 });
  if (!decoded.ok || decoded.packet.type !== "publish") return false;
  return decoded.packet.properties?.topicAlias === undefined || decoded.packet.topic === "";
}
