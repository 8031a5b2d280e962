import { describe, expect, it } from "vitest";
import {
  compareUtf8 as compareUtf8Core,
  segmentAfter,
  base64UrlDecode,
  base64UrlEncode,
  decodeCursor,
  encodeCursor,
  olderThanCutoff,
  retainedScan,
  retainedShards,
  selectRow,
  shardOfTopic,
  topicMatches,
  type ScanSegment,
} from "../../../core/topics";
import { Xorshift32 } from "./prng";

/** SQLite's BINARY collation: memcmp of the UTF-8 encodings. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function inSegment(seg: ScanSegment, topic: string): boolean {
  if (seg.exact) return topic === seg.low;
  return compareUtf8(seg.low, topic) <= 0 && (seg.high === undefined || compareUtf8(topic, seg.high) < 0);
}

/** What a page walk over a sorted index returns: each segment in turn, each sorted. */
function walk(segments: ScanSegment[], stored: string[]): string[] {
  const sorted = [...stored].sort(compareUtf8);
  return segments.flatMap((seg) => sorted.filter((t) => inSegment(seg, t)));
}

describe("retainedShards", () => {
  it("an exact topic touches its own shard only; a wildcard filter every shard", () => {
    expect(retainedShards("a/b", 8)).toEqual([shardOfTopic("a/b", 8)]);
    expect(retainedShards("a/+", 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(retainedShards("#", 3)).toEqual([0, 1, 2]);
  });

  it("does not strip $share/: the filter is taken literally", () => {
    expect(retainedShards("$share/g/a", 8)).toEqual([shardOfTopic("$share/g/a", 8)]);
  });
});

describe("retainedScan", () => {
  const topics = ["a", "a/b", "a/b/c", "a/bc", "a/b/c/d", "$SYS/x", "b/b", "a/\u00e9", "a/b/\u{1F600}", "a/b\uFFFF", "/x", "a/"];

  it.each(["#", "+", "a/#", "a/+", "a/b/#", "a/+/c", "+/b", "a/b", "$SYS/#", "a/b/c/d", "#/x"])(
    "%s: the walk yields exactly the candidates, ascending in UTF-8 byte order, each once",
    (filter) => {
      const walked = walk(retainedScan(filter), topics);
      for (const t of topics) if (topicMatches(filter, t)) expect(walked, `${filter} must reach ${t}`).toContain(t);
      expect(new Set(walked).size).toBe(walked.length);
      const sorted = [...walked].sort(compareUtf8);
      expect(walked).toEqual(sorted);
    },
  );

  it("#: every topic but the $ ones, in order", () => {
    expect(walk(retainedScan("#"), topics)).toEqual(topics.filter((t) => !t.startsWith("$")).sort(compareUtf8));
  });

  it("random filters over random topics: no match is missed, order ascending", () => {
    const rng = new Xorshift32(7);
    const alphabet = ["a", "b", "$", "\u00e9", "\u{1F600}", ""];
    const level = () => alphabet[rng.next() % alphabet.length]!;
    const name = () => Array.from({ length: 1 + (rng.next() % 3) }, level).join("/");
    const stored = Array.from({ length: 60 }, name);
    for (let i = 0; i < 300; i++) {
      const levels = Array.from({ length: 1 + (rng.next() % 3) }, () => (rng.next() % 3 === 0 ? "+" : level()));
      if (rng.next() % 2 === 0) levels.push("#");
      const filter = levels.join("/");
      const walked = walk(retainedScan(filter), stored);
      for (const t of stored) if (topicMatches(filter, t)) expect(walked).toContain(t);
      expect(walked).toEqual([...walked].sort(compareUtf8));
    }
  });
});

describe("compareUtf8", () => {
  it("is UTF-8 byte order (code point order), not UTF-16 order", () => {
    const words = ["", "a", "ab", "b", "$", "%", "\uFFFF", "\u{10000}", "\u{1F600}", "\uE000", "\uD7FF", "a\u{10000}", "a\uFFFF", "\u00e9"];
    for (const x of words) for (const y of words) expect(Math.sign(compareUtf8Core(x, y)), `${x} vs ${y}`).toBe(Math.sign(compareUtf8(x, y)));
  });
});

describe("segmentAfter: a page resumes after its cursor with one lower bound", () => {
  const stored = ["a", "a/b", "a/b/c", "a/bc", "a/\u00e9", "a/\u{1F600}", "a/\uFFFF", "b", "$x", "a/b/\u{1F600}"];

  function walkAfter(filter: string, after: string | undefined): string[] {
    const sorted = [...stored].sort(compareUtf8);
    return retainedScan(filter).flatMap((seg) => {
      const start = segmentAfter(seg, after);
      if (!start) return [];
      return sorted.filter(
        (t) =>
          inSegment(seg, t) &&
          (start.inclusive ? compareUtf8(t, start.from) >= 0 : compareUtf8(t, start.from) > 0),
      );
    });
  }

  it.each(["#", "a/#", "a/+", "a/b/#", "a/b"])("%s: resuming after each walked topic yields exactly the rest", (filter) => {
    const all = walkAfter(filter, undefined);
    expect(all).toEqual(walk(retainedScan(filter), stored));
    for (let i = 0; i < all.length; i++) expect(walkAfter(filter, all[i])).toEqual(all.slice(i + 1));
  });
});

describe("age selection", () => {
  const matches = (t: string) => topicMatches("a/#", t);

  it("older than N seconds: stored at or before now - N s", () => {
    expect(olderThanCutoff(100_000, 60)).toBe(40_000);
    expect(olderThanCutoff(100_000, undefined)).toBeUndefined();
    const sel = { matches, cutoff: 40_000, now: 100_000 };
    expect(selectRow({ topic: "a/1", storedAt: 40_000, expiresAt: null }, sel)).toBe("take");
    expect(selectRow({ topic: "a/1", storedAt: 40_001, expiresAt: null }, sel)).toBe("skip");
  });

  it("without an age every matching row is taken; non-matching rows of a range are skipped", () => {
    const sel = { matches, cutoff: undefined, now: 100_000 };
    expect(selectRow({ topic: "a/1", storedAt: 99_999, expiresAt: null }, sel)).toBe("take");
    expect(selectRow({ topic: "b/1", storedAt: 1, expiresAt: null }, sel)).toBe("skip");
  });

  it("an expired message is expired whatever the filter or age [MQTT-3.3.2-5]", () => {
    const sel = { matches, cutoff: 0, now: 100_000 };
    expect(selectRow({ topic: "a/1", storedAt: 50_000, expiresAt: 100_000 }, sel)).toBe("expired");
    expect(selectRow({ topic: "b/1", storedAt: 50_000, expiresAt: 99_000 }, sel)).toBe("expired");
    expect(selectRow({ topic: "a/1", storedAt: 0, expiresAt: 100_001 }, sel)).toBe("take");
  });
});

describe("cursor", () => {
  it("round-trips shard and topic, including non-ASCII and slashes", () => {
    for (const after of [undefined, "", "a/b", "d\u00e9vices/\u{1F600}/x", "+weird/#"]) {
      const text = encodeCursor({ shard: 5, after }, "a/#", 8);
      expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(text, "a/#", 8)).toEqual({ shard: 5, after });
    }
  });

  it("is refused for another filter, another shard count, an out-of-range shard or garbage", () => {
    const text = encodeCursor({ shard: 7, after: "x" }, "a/#", 8);
    expect(decodeCursor(text, "b/#", 8)).toBeUndefined();
    expect(decodeCursor(text, "a/#", 4)).toBeUndefined();
    expect(decodeCursor("not a cursor!", "a/#", 8)).toBeUndefined();
    expect(decodeCursor("", "a/#", 8)).toBeUndefined();
    expect(decodeCursor(base64UrlEncode(new TextEncoder().encode('{"v":1,"s":-1,"f":0}')), "a/#", 8)).toBeUndefined();
    expect(decodeCursor(base64UrlEncode(new TextEncoder().encode("[1,2]")), "a/#", 8)).toBeUndefined();
  });

  it("base64url agrees with Node's encoder and refuses non-canonical text", () => {
    const rng = new Xorshift32(3);
    for (let n = 0; n < 40; n++) {
      const bytes = new Uint8Array(Array.from({ length: n }, () => rng.next() & 0xff));
      const text = base64UrlEncode(bytes);
      expect(text).toBe(Buffer.from(bytes).toString("base64url"));
      expect(base64UrlDecode(text)).toEqual(bytes);
    }
    expect(base64UrlDecode("QR")).toBeUndefined(); // leftover bits set
    expect(base64UrlDecode("Q")).toBeUndefined(); // impossible length
    expect(base64UrlDecode("a+b/")).toBeUndefined(); // standard alphabet, not url
  });
});
