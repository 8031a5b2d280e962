import { describe, expect, it } from "vitest";
import {
  fmix32,
  fnv1a32,
  hasWildcard,
  shardOfTopic,
  shardsForFilter,
  topicHash,
} from "../../../core/topics";
import { Xorshift32 } from "./prng";

describe("hash stability", () => {
  it("fnv1a32 matches the published FNV-1a 32-bit test vectors", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
  });

  it("fmix32 is murmur3's finaliser", () => {
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7);
  });

  // Shard assignment is persisted: these values must never change. (Cross-checked against
  // an independent FNV-1a over TextEncoder bytes followed by murmur3 fmix32.)
  it.each([
    ["devices/1/status", 8, 0x25a2bd26, 6],
    ["sport/tennis/player1", 16, 0x13f4f37c, 12],
    ["$SYS/broker/uptime", 4, 0xd7777d6d, 1],
    ["capteurs/température", 32, 0x8402b971, 17],
    ["emoji/😀", 64, 0xfc03f243, 3],
  ])("shardOfTopic(%j, %i) is pinned", (topic, n, hash, shard) => {
    expect(topicHash(topic)).toBe(hash);
    expect(shardOfTopic(topic, n)).toBe(shard);
  });

  it("hashes the UTF-8 bytes exactly as TextEncoder encodes them", () => {
    const rng = new Xorshift32(42);
    const enc = new TextEncoder();
    const reference = (s: string) => {
      let h = 0x811c9dc5;
      for (const b of enc.encode(s)) h = Math.imul(h ^ b, 0x01000193);
      return h >>> 0;
    };
    const samples = ["\ud800", "a\udc00b", "\udbff\udfff", "\uffff", "\u07ff\u0800"];
    for (let i = 0; i < 2000; i++) {
      const len = rng.int(12);
      let s = "";
      for (let j = 0; j < len; j++) {
        const r = rng.int(5);
        const c = r === 0 ? rng.int(0x80) : r === 1 ? rng.int(0x800) : r === 2 ? rng.int(0x10000) : 0xd800 + rng.int(0x800);
        s += String.fromCharCode(c);
      }
      samples.push(s);
    }
    for (const s of samples) expect(fnv1a32(s), JSON.stringify(s)).toBe(reference(s));
  });
});

describe("spread", () => {
  it("10,000 topics devices/<n>/status over 8 shards: each within ±20% of the mean", () => {
    const counts = new Array<number>(8).fill(0);
    for (let n = 0; n < 10_000; n++) counts[shardOfTopic(`devices/${n}/status`, 8)]!++;
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(1000);
      expect(c).toBeLessThanOrEqual(1500);
    }
  });

  it("topics differing only in high bits of a byte do not share a shard by construction", () => {
    // Plain FNV-1a % 8 puts all four on one shard; the finaliser must separate them.
    const shards = new Set(["x/a", "x/q", "x/A", "x/Q", "x/i", "x/y"].map((t) => shardOfTopic(t, 8)));
    expect(shards.size).toBeGreaterThan(1);
  });

  it("returns a shard in range for any count", () => {
    for (const n of [1, 2, 3, 7, 64, 1000]) {
      for (let i = 0; i < 100; i++) {
        const s = shardOfTopic(`t/${i}`, n);
        expect(Number.isInteger(s) && s >= 0 && s < n).toBe(true);
      }
    }
    expect(shardOfTopic("anything", 1)).toBe(0);
  });

  it("rejects a shard count that is not a positive integer", () => {
    for (const n of [0, -1, 1.5, Number.NaN, Infinity]) {
      expect(() => shardOfTopic("a", n)).toThrow(RangeError);
      expect(() => shardsForFilter("a", n)).toThrow(RangeError);
    }
  });
});

describe("shardsForFilter", () => {
  it("puts an exact filter on its topic's shard only", () => {
    for (const f of ["devices/1/status", "$SYS/broker", "/a", "a//b"]) {
      expect(shardsForFilter(f, 8)).toEqual([shardOfTopic(f, 8)]);
    }
  });

  it("strips $share/{group}/ before deciding", () => {
    expect(shardsForFilter("$share/g/devices/1/status", 8)).toEqual([shardOfTopic("devices/1/status", 8)]);
    expect(shardsForFilter("$share/g/devices/+/status", 4)).toEqual([0, 1, 2, 3]);
  });

  it("puts a wildcard filter on every shard", () => {
    for (const f of ["#", "+", "a/+/b", "a/#", "+/+", "$SYS/#"]) {
      expect(shardsForFilter(f, 5)).toEqual([0, 1, 2, 3, 4]);
    }
    expect(shardsForFilter("#", 1)).toEqual([0]);
  });

  it("hasWildcard", () => {
    expect(hasWildcard("a/b")).toBe(false);
    expect(hasWildcard("a/+")).toBe(true);
    expect(hasWildcard("#")).toBe(true);
    expect(hasWildcard("$share/g/a")).toBe(false);
    expect(hasWildcard("$share/g/a/#")).toBe(true);
  });
});
