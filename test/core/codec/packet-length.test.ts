// packetLength: the whole size of a packet from its first bytes (fixed header, section 2.1;
// Remaining Length, a Variable Byte Integer, section 1.5.5), so that a long partial packet can
// be kept as the pieces it arrived in and joined once it is whole. Same rules as splitFrames.
import { describe, expect, it } from "vitest";
import { encodePacket, packetLength, splitFrames } from "../../../core/mqtt/codec/index.js";
import { Prng } from "./prng.js";

const bytes = (...b: number[]) => new Uint8Array(b);

describe("packetLength", () => {
  it.each([
    ["PINGREQ", bytes(0xc0, 0x00), 2],
    ["Remaining Length 127, one byte", bytes(0x30, 0x7f), 129],
    ["Remaining Length 128, two bytes", bytes(0x30, 0x80, 0x01), 131],
    ["Remaining Length 16,383, two bytes", bytes(0x30, 0xff, 0x7f), 16_386],
    ["Remaining Length 2,097,151, three bytes", bytes(0x30, 0xff, 0xff, 0x7f), 2_097_155],
    ["Remaining Length 268,435,455, four bytes (the largest)", bytes(0x30, 0xff, 0xff, 0xff, 0x7f), 268_435_460],
    ["bytes after the header do not matter", bytes(0x30, 0x02, 0x00, 0x01, 0xff), 4],
  ])("%s", (_name, head, length) => {
    expect(packetLength(head, Number.MAX_SAFE_INTEGER)).toEqual({ length });
  });

  it.each([
    ["nothing", bytes()],
    ["the first byte only", bytes(0x30)],
    ["a Remaining Length that continues", bytes(0x30, 0x80)],
    ["three continuation bytes", bytes(0x30, 0xff, 0xff, 0xff)],
  ])("%s: not known yet, no error", (_name, head) => {
    expect(packetLength(head)).toEqual({});
  });

  it("a fifth Remaining Length byte is a Malformed Packet (0x81)", () => {
    expect(packetLength(bytes(0x30, 0xff, 0xff, 0xff, 0xff, 0x01)).error?.reasonCode).toBe(0x81);
  });

  it("a packet announced larger than the maximum is refused as soon as its header is readable (0x95)", () => {
    expect(packetLength(bytes(0x30, 0x80, 0x08), 1024).error?.reasonCode).toBe(0x95); // 1,027 bytes
    expect(packetLength(bytes(0x30, 0xfd, 0x07), 1024)).toEqual({ length: 1024 });
  });

  it("agrees with splitFrames on encoded packets of every size class", () => {
    const prng = new Prng(7);
    for (const size of [0, 1, 100, 127, 128, 5_000, 16_383, 16_384, 70_000]) {
      const packet = encodePacket(
        { type: "publish", topic: "t", payload: prng.bytes(size), qos: 0, retain: false, dup: false },
        4,
      );
      const framed = splitFrames(new Uint8Array(0), packet);
      expect(framed.frames.map((f) => f.byteLength)).toEqual([packet.byteLength]);
      expect(packetLength(packet.subarray(0, 5))).toEqual({ length: packet.byteLength });
    }
  });
});
