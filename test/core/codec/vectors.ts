/**
 * Shared harness for the byte-annotated codec vectors (01-connect ... 12-ping-disconnect-auth).
 *
 * Like mqtt-packet's own suite, every vector is run four ways:
 *   1. decode the bytes                      -> the expected packet
 *   2. encode the packet                     -> exactly the bytes
 *   3. decode(encode(packet))                -> the packet again
 *   4. split the bytes at every position, feed the parts through splitFrames, decode the frame
 * A vector marked `decodeOnly` is a valid but non-canonical form (for example a 5.0 PUBACK
 * that spells out reason code 0x00): it is decoded and streamed, and its packet must encode to
 * some canonical form that decodes back to the same packet.
 */
import { describe, expect, it } from "vitest";
import { decodePacket, encodePacket, splitFrames } from "../../../core/mqtt/codec/index.js";
import type { DecodeResult } from "../../../core/mqtt/codec/index.js";
import type { Packet, ProtocolVersion } from "../../../core/mqtt/packets.js";

export interface Vector {
  name: string;
  version: ProtocolVersion;
  bytes: number[];
  packet: Packet;
  /** A valid, non-canonical encoding: decoded and streamed but not produced by encodePacket. */
  decodeOnly?: boolean;
}

/** Two-byte length prefix + UTF-8 bytes, for strings too long to spell out byte by byte. */
export function str(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [b.length >> 8, b.length & 0xff, ...b];
}

/** The UTF-8 bytes of a string, no length prefix. */
export function utf8(s: string): number[] {
  return [...new TextEncoder().encode(s)];
}

export const u8 = (...b: number[]): Uint8Array => new Uint8Array(b);

export function hex(b: Uint8Array | number[]): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

/** CONNECT is decoded before the version is known; every other packet with the session's. */
export function decodeAs(bytes: Uint8Array, version: ProtocolVersion, maximumPacketSize?: number): DecodeResult {
  const first = bytes[0] ?? 0;
  const protocolVersion = first >> 4 === 1 ? undefined : version;
  return decodePacket(bytes, maximumPacketSize === undefined ? { protocolVersion } : { protocolVersion, maximumPacketSize });
}

const ACK_LIKE = new Set(["puback", "pubrec", "pubrel", "pubcomp", "disconnect", "auth"]);

/**
 * A canonical, deep copy of a packet for comparison with toStrictEqual:
 * - byte fields (which must be Uint8Arrays: Buffers pass, number[] does not) become a tagged
 *   hex string;
 * - keys whose value is undefined are dropped;
 * - 5.0 only: empty `properties` (packet and Will) are dropped, as are values that the model
 *   defines as the default when absent (reason code 0x00 on acks, DISCONNECT and AUTH;
 *   subscription options false/false/0). For 3.1.1 and 3.1 nothing is dropped, so a decoded
 *   3.1.1 packet that carries `reasonCode` or `properties` fails the comparison.
 */
export function normalise(packet: unknown, version: ProtocolVersion): unknown {
  const copy = deepCopy(packet) as Record<string, unknown>;
  if (version !== 5) return copy;
  dropEmptyProperties(copy);
  if (copy.will && typeof copy.will === "object") dropEmptyProperties(copy.will as Record<string, unknown>);
  if (ACK_LIKE.has(copy.type as string) && copy.reasonCode === 0) delete copy.reasonCode;
  if (Array.isArray(copy.subscriptions)) {
    for (const s of copy.subscriptions as Record<string, unknown>[]) {
      if (s.noLocal === false) delete s.noLocal;
      if (s.retainAsPublished === false) delete s.retainAsPublished;
      if (s.retainHandling === 0) delete s.retainHandling;
    }
  }
  return copy;
}

function dropEmptyProperties(o: Record<string, unknown>): void {
  const p = o.properties;
  if (p && typeof p === "object" && Object.keys(p).length === 0) delete o.properties;
}

function deepCopy(v: unknown): unknown {
  // Bytes compare as a tagged hex string: exact, readable in a diff, and fast for megabytes
  // (vitest's deep equality walks a 2 MB typed array element by element for seconds).
  if (v instanceof Uint8Array) return `Uint8Array[${v.length}] ${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")}`;
  if (Array.isArray(v)) return v.map(deepCopy);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = deepCopy(x);
    return out;
  }
  return v;
}

export function expectPacket(actual: unknown, expected: unknown, version: ProtocolVersion): void {
  expect(normalise(actual, version)).toStrictEqual(normalise(expected, version));
}

/** Decodes and asserts success; returns the packet. */
export function mustDecode(bytes: Uint8Array, version: ProtocolVersion): Packet {
  const r = decodeAs(bytes, version);
  if (!r.ok) throw new Error(`decode failed (0x${r.error.reasonCode.toString(16)}: ${r.error.message}) for ${hex(bytes)}`);
  return r.packet;
}

/**
 * Feeds `stream` to splitFrames in chunks cut at `cuts` (sorted positions), carrying `rest`
 * between calls as the caller (the Durable Object) would. Returns every frame and the final state.
 */
export function feed(stream: Uint8Array, cuts: number[], maximumPacketSize?: number) {
  const frames: Uint8Array[] = [];
  let rest: Uint8Array = new Uint8Array(0);
  let start = 0;
  for (const end of [...cuts, stream.length]) {
    const r = splitFrames(rest, stream.subarray(start, end), maximumPacketSize);
    frames.push(...r.frames);
    if (r.error) return { frames, rest: r.rest, error: r.error };
    rest = r.rest;
    start = end;
  }
  return { frames, rest, error: undefined };
}

export function runVectors(title: string, vectors: Vector[]): void {
  describe(title, () => {
    for (const v of vectors) {
      describe(`v${v.version} ${v.name}`, () => {
        const bytes = new Uint8Array(v.bytes);

        it("decodes the bytes to the packet", () => {
          expectPacket(mustDecode(bytes, v.version), v.packet, v.version);
        });

        if (!v.decodeOnly) {
          it("encodes the packet to exactly the bytes", () => {
            expect(hex(encodePacket(v.packet, v.version))).toBe(hex(bytes));
          });
        }

        it("decodes what it encodes", () => {
          const encoded = encodePacket(v.packet, v.version);
          expectPacket(mustDecode(encoded, v.version), v.packet, v.version);
          if (v.decodeOnly) expect(encoded.length).toBeLessThanOrEqual(bytes.length);
        });

        it("decodes from a stream split at every byte position", () => {
          for (let cut = 0; cut <= bytes.length; cut++) {
            const r = feed(bytes, [cut]);
            expect(r.error).toBeUndefined();
            expect(r.frames.length).toBe(1);
            expect(r.rest.length).toBe(0);
            expect(hex(r.frames[0]!)).toBe(hex(bytes));
            expectPacket(mustDecode(r.frames[0]!, v.version), v.packet, v.version);
          }
          const byByte = feed(bytes, Array.from({ length: bytes.length }, (_, i) => i));
          expect(byByte.frames.map(hex)).toEqual([hex(bytes)]);
        });
      });
    }
  });
}
