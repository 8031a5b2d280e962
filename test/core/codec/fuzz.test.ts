// Seeded fuzzing of decodePacket and splitFrames. The decoder must never throw; it returns
// either a packet that survives encode -> decode unchanged, or a ProtocolViolation with one of
// the reason codes a decoder may produce. Inputs are bounded (random strings <= 64 bytes,
// mutated packets <= ~1 KB) so the whole file stays fast; nothing here measures time.
import { describe, expect, it } from "vitest";
import { encodePacket, splitFrames } from "../../../core/mqtt/codec/index.js";
import type { Packet, ProtocolVersion } from "../../../core/mqtt/packets.js";
import { randomPacket } from "./corpus.js";
import { Prng } from "./prng.js";
import { decodeAs, expectPacket, hex, normalise } from "./vectors.js";

const ALLOWED = new Set([0x81, 0x82, 0x84, 0x90, 0x94, 0x95, 0x99]);
const VERSIONS: ProtocolVersion[] = [4, 5];

/** Counts of what happened, to check the fuzzer reaches both outcomes. */
interface Tally {
  ok: number;
  errors: Map<number, number>;
}

function versionOf(p: Packet, session: ProtocolVersion): ProtocolVersion {
  return p.type === "connect" ? p.protocolVersion : session;
}

/** Decodes `bytes` and checks the contract. Returns the decoded packet if any. */
function probe(bytes: Uint8Array, version: ProtocolVersion, tally: Tally): Packet | undefined {
  let r: ReturnType<typeof decodeAs>;
  try {
    r = decodeAs(bytes, version);
  } catch (e) {
    throw new Error(`decodePacket threw ${String(e)} on ${hex(bytes)} (v${version})`);
  }
  if (!r.ok) {
    if (!ALLOWED.has(r.error.reasonCode)) {
      throw new Error(`unexpected reason 0x${r.error.reasonCode.toString(16)} (${r.error.message}) on ${hex(bytes)} (v${version})`);
    }
    tally.errors.set(r.error.reasonCode, (tally.errors.get(r.error.reasonCode) ?? 0) + 1);
    return undefined;
  }
  tally.ok++;
  const v = versionOf(r.packet, version);
  let again: Uint8Array;
  try {
    again = encodePacket(r.packet, v);
  } catch (e) {
    throw new Error(`decoded ${hex(bytes)} (v${version}) to ${JSON.stringify(normalise(r.packet, v))} which does not encode: ${String(e)}`);
  }
  const r2 = decodeAs(again, v);
  if (!r2.ok) {
    throw new Error(`re-encoded ${hex(bytes)} as ${hex(again)} which does not decode: ${r2.error.message}`);
  }
  expectPacket(r2.packet, r.packet, v);
  return r.packet;
}

/** Mutations of a valid packet. */
function mutate(r: Prng, src: Uint8Array): Uint8Array {
  const b = Array.from(src);
  const kind = r.int(7);
  switch (kind) {
    case 0: {
      // 1 to 3 bit flips anywhere
      for (let i = r.range(1, 3); i > 0; i--) {
        const at = r.int(b.length);
        b[at] = b[at]! ^ (1 << r.int(8));
      }
      break;
    }
    case 1: // truncation
      b.length = r.int(b.length);
      break;
    case 2: {
      // insert 1 to 4 random bytes
      const at = r.int(b.length + 1);
      b.splice(at, 0, ...r.bytes(r.range(1, 4)));
      break;
    }
    case 3: // delete 1 to 4 bytes
      b.splice(r.int(b.length), r.range(1, 4));
      break;
    case 4: {
      // corrupt the Remaining Length field (and keep the rest)
      const at = 1 + r.int(Math.min(4, b.length - 1));
      b[at] = r.pick([0x00, 0x7f, 0x80, 0xff, b[at]! + 1, b[at]! - 1]) & 0xff;
      break;
    }
    case 5: {
      // replace one byte of the body with an interesting value, keeping the length right
      const at = r.int(b.length);
      b[at] = r.pick([0x00, 0x01, 0x02, 0x03, 0x0b, 0x23, 0x26, 0x7f, 0x80, 0xc0, 0xed, 0xff]);
      break;
    }
    default: {
      // change the fixed header's first byte (type and flags)
      b[0] = r.next() & 0xff;
      break;
    }
  }
  return new Uint8Array(b);
}

/** A random body with a correct fixed header, so the decoder gets past the framing. */
function randomFramed(r: Prng): Uint8Array {
  const body = r.bytes(r.range(0, 60));
  return new Uint8Array([r.next() & 0xff, body.length, ...body]);
}

describe("fuzz decodePacket", () => {
  for (const version of VERSIONS) {
    it(`v${version}: generated valid packets round-trip (2 000 packets)`, () => {
      const r = new Prng(1000 + version);
      const tally: Tally = { ok: 0, errors: new Map() };
      for (let i = 0; i < 2000; i++) {
        const p = randomPacket(r, version);
        const bytes = encodePacket(p, version);
        const got = probe(bytes, version, tally);
        if (!got) throw new Error(`valid packet ${JSON.stringify(normalise(p, version))} rejected: ${hex(bytes)} [${[...tally.errors.keys()]}]`);
        expectPacket(got, p, version);
      }
    });

    it(`v${version}: mutated valid packets (15 000 mutations) never throw`, () => {
      const r = new Prng(2000 + version);
      const tally: Tally = { ok: 0, errors: new Map() };
      for (let i = 0; i < 1500; i++) {
        const src = encodePacket(randomPacket(r, version), version);
        for (let j = 0; j < 10; j++) probe(mutate(r, src), version, tally);
      }
      // Both outcomes are reached: the fuzzer is neither rejecting everything nor nothing.
      expect(tally.ok).toBeGreaterThan(100);
      expect(tally.errors.get(0x81) ?? 0).toBeGreaterThan(1000);
    });

    it(`v${version}: random byte strings (10 000, up to 64 bytes) never throw`, () => {
      const r = new Prng(3000 + version);
      const tally: Tally = { ok: 0, errors: new Map() };
      for (let i = 0; i < 5000; i++) probe(r.bytes(r.range(0, 64)), version, tally);
      for (let i = 0; i < 5000; i++) probe(randomFramed(r), version, tally);
      expect(tally.ok).toBeGreaterThan(0);
    });
  }

  it("before CONNECT (protocolVersion undefined): random frames are CONNECT or rejected", async () => {
    const { decodePacket } = await import("../../../core/mqtt/codec/index.js");
    const r = new Prng(4000);
    for (let i = 0; i < 5000; i++) {
      const bytes = i % 2 === 0 ? randomFramed(r) : mutate(r, encodePacket(randomPacket(r, r.pick([3, 4, 5] as const), "connect"), 5));
      const res = decodePacket(bytes);
      if (res.ok) expect(res.packet.type).toBe("connect");
      else expect(ALLOWED.has(res.error.reasonCode), res.error.message).toBe(true);
    }
  });
});

describe("fuzz splitFrames", () => {
  it("random streams (3 000) never throw and lose or invent no bytes", () => {
    const r = new Prng(5000);
    for (let i = 0; i < 3000; i++) {
      // Half are streams of valid packets cut anywhere, half random bytes.
      const stream =
        i % 2 === 0
          ? new Uint8Array(Array.from({ length: r.range(1, 5) }, () => [...encodePacket(randomPacket(r, 5), 5)]).flat())
          : r.bytes(r.range(0, 200));
      const cuts = r.cuts(stream.length, r.range(0, 6));
      const max = r.bool(0.3) ? r.range(2, 300) : undefined;
      const seen: number[] = [];
      let rest: Uint8Array = new Uint8Array(0);
      let start = 0;
      let failed = false;
      for (const end of [...cuts, stream.length]) {
        const chunk = stream.subarray(start, end);
        const res = splitFrames(rest, chunk, max);
        expect(res.rest.length).toBeLessThanOrEqual(rest.length + chunk.length);
        for (const f of res.frames) {
          expect(f.length).toBeGreaterThanOrEqual(2);
          if (max !== undefined) expect(f.length).toBeLessThanOrEqual(max);
          seen.push(...f);
        }
        if (res.error) {
          expect([0x81, 0x95]).toContain(res.error.reasonCode);
          failed = true;
          break;
        }
        rest = res.rest;
        start = end;
      }
      // Frames are, in order, a prefix of the stream; without an error, frames + rest = stream.
      expect(hex(seen)).toBe(hex(stream.subarray(0, seen.length)));
      if (!failed) expect(seen.length + rest.length).toBe(stream.length);
    }
  });
});
