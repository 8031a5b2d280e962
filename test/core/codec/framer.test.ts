// splitFrames: a WebSocket message may carry part of a packet or several packets [MQTT-6.0.0-2]
// (5.0 section 6.0). The framer cuts a byte stream into whole packets using only the fixed
// header; its only state is `rest`, plain bytes the Durable Object stores across hibernation.
import { describe, expect, it } from "vitest";
import { encodePacket, splitFrames } from "../../../core/mqtt/codec/index.js";
import type { Packet } from "../../../core/mqtt/packets.js";
import { Prng } from "./prng.js";
import { expectPacket, hex, mustDecode } from "./vectors.js";
import { concatBytes } from "../../../core/util/bytes.js";

function fill(n: number, seed: number): Uint8Array {
  return new Prng(seed).bytes(n);
}

/** `rest` must be compact: its own buffer, not a view into a larger one (it is persisted). */
function expectCompact(rest: Uint8Array): void {
  expect(rest.byteOffset).toBe(0);
  expect(rest.buffer.byteLength).toBe(rest.byteLength);
}

/**
 * Feeds the chunks one by one, carrying `rest` as plain bytes the way a hibernating Durable
 * Object would (a fresh copy of its contents, as after storage or serializeAttachment).
 */
function run(chunks: Uint8Array[], maximumPacketSize?: number) {
  const frames: Uint8Array[] = [];
  let stored: Uint8Array = new Uint8Array(0);
  let maxRest = 0;
  for (const chunk of chunks) {
    const r = splitFrames(stored, chunk, maximumPacketSize);
    frames.push(...r.frames);
    if (r.error) return { frames, error: r.error, rest: r.rest, maxRest };
    expectCompact(r.rest);
    // Whatever is not returned as frames is kept: nothing lost, nothing invented.
    expect(r.rest.length).toBeLessThanOrEqual(stored.length + chunk.length);
    maxRest = Math.max(maxRest, r.rest.length);
    stored = r.rest.slice(); // a fresh copy: nothing may alias the framer's buffers
  }
  return { frames, error: undefined, rest: stored, maxRest };
}

function cut(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (const c of [...cuts, stream.length]) {
    out.push(stream.subarray(start, c));
    start = c;
  }
  return out;
}

const payload200 = fill(200, 1);
const small: [Packet, 4 | 5][] = [
  [{ type: "connect", protocolName: "MQTT", protocolVersion: 5, clean: true, keepAlive: 30, clientId: "framer", properties: { sessionExpiryInterval: 60 } }, 5],
  [{ type: "publish", topic: "a/b", payload: new Uint8Array([1, 2, 3]), qos: 1, retain: false, dup: false, packetId: 7, properties: { userProperties: [["k", "v"]] } }, 5],
  [{ type: "pingreq" }, 5],
  [{ type: "subscribe", packetId: 8, subscriptions: [{ topicFilter: "x/#", qos: 2, noLocal: true }] }, 5],
  [{ type: "puback", packetId: 7 }, 5],
  // 200-byte payload: a 2-byte Remaining Length.
  [{ type: "publish", topic: "big/200", payload: payload200, qos: 0, retain: true, dup: false }, 5],
  [{ type: "pubrel", packetId: 9, reasonCode: 0x92 }, 5],
  [{ type: "unsubscribe", packetId: 10, topicFilters: ["x/#"] }, 5],
  [{ type: "disconnect" }, 5],
];
const smallFrames = small.map(([p, v]) => encodePacket(p, v));
const smallStream = concatBytes(smallFrames);

function expectSmall(frames: Uint8Array[]): void {
  expect(frames.map(hex)).toEqual(smallFrames.map(hex));
  frames.forEach((f, i) => expectPacket(mustDecode(f, small[i]![1]), small[i]![0], small[i]![1]));
}

describe("splitFrames on a stream of small packets", () => {
  it("the stream has a packet with a 2-byte Remaining Length", () => {
    expect(smallFrames[5]![1]! & 0x80).toBe(0x80);
    expect(smallFrames[5]![2]! & 0x80).toBe(0);
  });

  it("whole stream in one chunk", () => {
    const r = run([smallStream]);
    expect(r.error).toBeUndefined();
    expect(r.rest.length).toBe(0);
    expectSmall(r.frames);
  });

  it("every two-way split", () => {
    for (let c = 0; c <= smallStream.length; c++) {
      const r = run(cut(smallStream, [c]));
      expect(r.error).toBeUndefined();
      expect(r.rest.length).toBe(0);
      expect(r.frames.map(hex)).toEqual(smallFrames.map(hex));
    }
    // Decoding once is enough for the content; the frames are byte-identical above.
    expectSmall(run(cut(smallStream, [smallStream.length >> 1])).frames);
  });

  it("one byte at a time", () => {
    const r = run(cut(smallStream, Array.from({ length: smallStream.length - 1 }, (_, i) => i + 1)));
    expect(r.error).toBeUndefined();
    expectSmall(r.frames);
    // Never holds more than one partial packet.
    expect(r.maxRest).toBeLessThan(Math.max(...smallFrames.map((f) => f.length)));
  });

  it("random multi-way splits, including empty chunks", () => {
    const prng = new Prng(42);
    for (let n = 0; n < 200; n++) {
      const cuts = prng.cuts(smallStream.length, prng.range(1, 40));
      if (prng.bool(0.3)) cuts.splice(prng.int(cuts.length + 1), 0, cuts[0] ?? 0); // an empty chunk
      cuts.sort((a, b) => a - b);
      const r = run(cut(smallStream, cuts));
      expect(r.error).toBeUndefined();
      expect(r.frames.map(hex)).toEqual(smallFrames.map(hex));
    }
  });

  it("an empty chunk with nothing pending yields nothing", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array(0));
    expect(r.frames).toEqual([]);
    expect(r.rest.length).toBe(0);
    expect(r.error).toBeUndefined();
  });

  it("a chunk that is a view into a larger buffer leaves a compact rest", () => {
    const big = new Uint8Array(4096);
    big.set(smallStream.subarray(0, 10), 1000);
    const r = splitFrames(new Uint8Array(0), big.subarray(1000, 1010));
    expect(r.frames).toEqual([]);
    expect(hex(r.rest)).toBe(hex(smallStream.subarray(0, 10)));
    expectCompact(r.rest);
  });

  it("a lone first byte is kept until the Remaining Length arrives", () => {
    const r1 = splitFrames(new Uint8Array(0), new Uint8Array([0xc0]));
    expect(r1.frames).toEqual([]);
    expect(hex(r1.rest)).toBe("c0");
    const r2 = splitFrames(r1.rest, new Uint8Array([0x00, 0xd0]));
    expect(r2.frames.map(hex)).toEqual(["c0 00"]);
    expect(hex(r2.rest)).toBe("d0");
  });
});

describe("splitFrames on large packets (3- and 4-byte Remaining Length)", () => {
  const p20k: Packet = { type: "publish", topic: "big/20000", payload: fill(20_000, 2), qos: 1, retain: false, dup: false, packetId: 1 };
  const p2m: Packet = { type: "publish", topic: "big/2100000", payload: fill(2_100_000, 3), qos: 2, retain: false, dup: false, packetId: 2 };
  const frames = [
    encodePacket({ type: "pingreq" }, 4),
    encodePacket(p20k, 4),
    encodePacket({ type: "puback", packetId: 1 }, 4),
    encodePacket(p2m, 4),
    encodePacket({ type: "pingresp" }, 4),
  ];
  const stream = concatBytes(frames);
  const lengths = frames.map((f) => f.length);

  function expectBig(got: Uint8Array[]): void {
    expect(got.map((f) => f.length)).toEqual(lengths);
    got.forEach((f, i) => expect(f[0]).toBe(frames[i]![0]));
    expectPacket(mustDecode(got[1]!, 4), p20k, 4);
    expectPacket(mustDecode(got[3]!, 4), p2m, 4);
  }

  it("Remaining Length takes 3 bytes for 20 000 and 4 bytes for 2 100 000", () => {
    expect([...frames[1]!.subarray(1, 4)].map((b) => b >= 0x80)).toEqual([true, true, false]);
    expect([...frames[3]!.subarray(1, 5)].map((b) => b >= 0x80)).toEqual([true, true, true, false]);
  });

  it("whole stream in one chunk", () => {
    const r = run([stream]);
    expect(r.error).toBeUndefined();
    expectBig(r.frames);
  });

  it("random multi-way splits", () => {
    const prng = new Prng(7);
    for (let n = 0; n < 6; n++) {
      const r = run(cut(stream, prng.cuts(stream.length, prng.range(2, 25))));
      expect(r.error).toBeUndefined();
      expect(r.frames.map((f) => f.length)).toEqual(lengths);
    }
  });

  it("in 64 KiB chunks, as WebSocket messages might arrive", () => {
    const cuts = [];
    for (let c = 65536; c < stream.length; c += 65536) cuts.push(c);
    const r = run(cut(stream, cuts));
    expect(r.error).toBeUndefined();
    expectBig(r.frames);
  });

  it("splits inside every fixed header, one byte at a time", () => {
    // Cut at every byte of each fixed header (and just after it), then feed the bodies whole.
    const cuts: number[] = [];
    let at = 0;
    for (const f of frames) {
      for (let i = 1; i <= 5 && i < f.length; i++) cuts.push(at + i);
      at += f.length;
    }
    const r = run(cut(stream, [...new Set(cuts)].filter((c) => c < stream.length).sort((a, b) => a - b)));
    expect(r.error).toBeUndefined();
    expectBig(r.frames);
  });
});

describe("splitFrames errors", () => {
  it("§1.5.5: a Remaining Length of 5 bytes is malformed (0x81), in one chunk", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]));
    expect(r.error?.reasonCode).toBe(0x81);
    expect(r.frames).toEqual([]);
  });

  it("§1.5.5: a Remaining Length of 5 bytes is malformed (0x81) as soon as the 5th byte arrives, one byte at a time", () => {
    const bytes = [0x30, 0xff, 0xff, 0xff, 0xff];
    let rest: Uint8Array = new Uint8Array(0);
    for (let i = 0; i < bytes.length - 1; i++) {
      const r = splitFrames(rest, new Uint8Array([bytes[i]!]));
      expect(r.error).toBeUndefined();
      rest = r.rest;
    }
    const r = splitFrames(rest, new Uint8Array([bytes[4]!]));
    expect(r.error?.reasonCode).toBe(0x81);
  });

  it("§1.5.5: whole packets before the bad header are still returned", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array([0xc0, 0x00, 0xd0, 0x00, 0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(r.frames.map(hex)).toEqual(["c0 00", "d0 00"]);
    expect(r.error?.reasonCode).toBe(0x81);
  });

  it("0x95: a declared size above maximumPacketSize is refused as soon as the header is complete", () => {
    // PUBLISH declaring 16 383 bytes; maximum 1 000; no body sent at all.
    const r = splitFrames(new Uint8Array(0), new Uint8Array([0x30, 0xff, 0x7f]), 1000);
    expect(r.error?.reasonCode).toBe(0x95);
    expect(r.frames).toEqual([]);
  });

  it("0x95: the header split across chunks: refused at the chunk that completes it", () => {
    const r1 = splitFrames(new Uint8Array(0), new Uint8Array([0x30]), 1000);
    expect(r1.error).toBeUndefined();
    const r2 = splitFrames(r1.rest, new Uint8Array([0xff]), 1000);
    expect(r2.error).toBeUndefined();
    const r3 = splitFrames(r2.rest, new Uint8Array([0x7f]), 1000);
    expect(r3.error?.reasonCode).toBe(0x95);
  });

  it("0x95: a 4-byte Remaining Length near the 256 MB limit is refused before any body", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]), 1 << 20);
    expect(r.error?.reasonCode).toBe(0x95);
  });

  it("the size limit counts the whole packet: exactly the maximum passes, one more is refused", () => {
    const f = encodePacket({ type: "publish", topic: "t", payload: new Uint8Array(100), qos: 0, retain: false, dup: false }, 4);
    const ok = splitFrames(new Uint8Array(0), f, f.length);
    expect(ok.error).toBeUndefined();
    expect(ok.frames.map(hex)).toEqual([hex(f)]);
    const tooBig = splitFrames(new Uint8Array(0), f.subarray(0, 3), f.length - 1);
    expect(tooBig.error?.reasonCode).toBe(0x95);
  });

  it("packets before the oversized one are still returned", () => {
    const r = splitFrames(new Uint8Array(0), new Uint8Array([0xc0, 0x00, 0x30, 0xff, 0x7f, 1, 2]), 1000);
    expect(r.frames.map(hex)).toEqual(["c0 00"]);
    expect(r.error?.reasonCode).toBe(0x95);
  });
});
