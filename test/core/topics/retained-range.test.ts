import { describe, expect, it } from "vitest";
import { prefixUpperBound, retainedLookup, topicMatches, type RetainedLookup } from "../../../core/topics";
import { Xorshift32 } from "./prng";

const encoder = new TextEncoder();
const encoded = new Map<string, Uint8Array>();
function enc(s: string): Uint8Array {
  let bytes = encoded.get(s);
  if (!bytes) encoded.set(s, (bytes = encoder.encode(s)));
  return bytes;
}

/** SQLite's BINARY collation: memcmp of the UTF-8 encodings, shorter first on a tie. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(enc(a), enc(b));
}

function inRange(low: string, high: string | undefined, s: string): boolean {
  return compareUtf8(low, s) <= 0 && (high === undefined || compareUtf8(s, high) < 0);
}

/** Whether a retained row keyed `topic` is read by the lookup (what the shard's SQL selects). */
function covered(lookup: RetainedLookup, topic: string): boolean {
  return lookup.exact === topic || lookup.ranges.some((r) => inRange(r.low, r.high, topic));
}

function startsWithBytes(s: string, prefix: string): boolean {
  const a = enc(s);
  const p = enc(prefix);
  return p.length <= a.length && p.every((b, i) => a[i] === b);
}

describe("retainedLookup", () => {
  it.each<[string, RetainedLookup]>([
    // No wildcard: one exact lookup [MQTT-4.7.3-4].
    ["a/b", { exact: "a/b", ranges: [] }],
    ["/", { exact: "/", ranges: [] }],
    ["$SYS/uptime", { exact: "$SYS/uptime", ranges: [] }],
    // `+` after literal levels: the names starting with those levels.
    ["a/b/+/c", { exact: undefined, ranges: [{ low: "a/b/", high: "a/b0" }] }],
    ["a/+", { exact: undefined, ranges: [{ low: "a/", high: "a0" }] }],
    ["/+", { exact: undefined, ranges: [{ low: "/", high: "0" }] }],
    ["$SYS/+", { exact: undefined, ranges: [{ low: "$SYS/", high: "$SYS0" }] }],
    // `#` also matches the parent level [MQTT-4.7.1-2].
    ["a/b/#", { exact: "a/b", ranges: [{ low: "a/b/", high: "a/b0" }] }],
    ["/#", { exact: "", ranges: [{ low: "/", high: "0" }] }],
    ["é/#", { exact: "é", ranges: [{ low: "é/", high: "é0" }] }],
    // A leading wildcard: everything but the `$` names [MQTT-4.7.2-1].
    ["#", { exact: undefined, ranges: [{ low: "", high: "$" }, { low: "%", high: undefined }] }],
    ["+", { exact: undefined, ranges: [{ low: "", high: "$" }, { low: "%", high: undefined }] }],
    ["+/x/#", { exact: undefined, ranges: [{ low: "", high: "$" }, { low: "%", high: undefined }] }],
    // `#` not last matches nothing [MQTT-4.7.1-2].
    ["a/#/b", { exact: undefined, ranges: [] }],
    ["#/b", { exact: undefined, ranges: [] }],
    // Wildcard characters inside a level are not wildcards to topicMatches either.
    ["a+/b#", { exact: "a+/b#", ranges: [] }],
  ])("%j", (filter, expected) => {
    expect(retainedLookup(filter)).toEqual(expected);
  });
});

describe("prefixUpperBound", () => {
  it.each<[string, string | undefined]>([
    ["a/", "a0"],
    ["$", "%"],
    ["ab", "ac"],
    ["a\u007f", "a\u0080"],
    ["a\u07ff", "a\u0800"],
    ["a\ud7ff", "a\ue000"], // surrogates are not characters: U+D7FF is followed by U+E000
    ["a\uffff", "a\u{10000}"], // above U+FFFF in UTF-8, though below it in UTF-16
    ["a\u{1f600}", "a\u{1f601}"],
    ["a\u{10ffff}", "b"], // no successor of U+10FFFF: carried into the previous code point
    ["a\u{10ffff}\u{10ffff}", "b"],
    ["\u{10ffff}", undefined],
    ["", undefined],
    ["a\ud800", "a\ufffe"], // a lone surrogate is encoded as U+FFFD
  ])("%j -> %j", (prefix, bound) => {
    expect(prefixUpperBound(prefix)).toBe(bound);
  });

  it("[prefix, bound) in UTF-8 byte order holds exactly the strings starting with prefix", () => {
    const rng = new Xorshift32(0xb0a4d);
    const chars = ["a", "b", "/", "0", "$", "%", "\u007f", "\u0080", "é", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\ufffd", "\ufffe", "\uffff", "\u{10000}", "\u{1f600}", "\u{10ffff}"];
    const word = (max: number): string => Array.from({ length: rng.int(max + 1) }, () => rng.pick(chars)).join("");
    for (let i = 0; i < 20_000; i++) {
      const prefix = word(3);
      const s = rng.chance(0.5) ? prefix + word(3) : word(5);
      const bound = prefixUpperBound(prefix);
      expect(inRange(prefix, bound, s), `${JSON.stringify(prefix)} ${JSON.stringify(s)}`).toBe(startsWithBytes(s, prefix));
    }
  });
});

/** Levels that collide often, non-ASCII ones around the UTF-8 and UTF-16 boundaries included. */
const LEVELS = ["a", "b", "", "a0", "ab", "$SYS", "$", "%", "é", "日本", "\uffff", "\u{10000}", "\u{1f600}", "\u{10ffff}", "\ue000", "x\u{10ffff}"];

function randomTopic(rng: Xorshift32): string {
  return Array.from({ length: 1 + rng.int(5) }, () => rng.pick(LEVELS)).join("/");
}

/** Half from a topic (levels replaced by `+`, a tail cut at `#`), so matches are common. */
function randomFilter(rng: Xorshift32, topics: readonly string[]): string {
  const levels = rng.chance(0.5) ? rng.pick(topics).split("/") : randomTopic(rng).split("/");
  const out: string[] = [];
  for (let i = 0; i < levels.length; i++) {
    if (rng.chance(0.15)) {
      out.push("#");
      break;
    }
    out.push(rng.chance(0.25) ? "+" : levels[i]!);
  }
  return out.join("/");
}

describe("retainedLookup against topicMatches (seeded corpus)", () => {
  const rng = new Xorshift32(0x7e7a1ed);
  const topics = ["", "/", "//", "a", "a/", "$SYS", "$SYS/a", "%", "a0", ...Array.from({ length: 1500 }, () => randomTopic(rng))];
  const filters = ["#", "+", "/#", "+/#", "a/#", "$SYS/#", "é/+", ...Array.from({ length: 1500 }, () => randomFilter(rng, topics))];

  it("every topic a filter matches is read: no false negatives", () => {
    let matches = 0;
    const missed: string[] = [];
    for (const filter of filters) {
      const lookup = retainedLookup(filter);
      for (const topic of topics) {
        if (!topicMatches(filter, topic)) continue;
        matches++;
        if (!covered(lookup, topic)) missed.push(`${JSON.stringify(filter)} ${JSON.stringify(topic)}`);
      }
    }
    expect(missed).toEqual([]);
    expect(matches).toBeGreaterThan(5_000); // the corpus does exercise matches
  });

  it("a filter with literal levels reads only topics under them: exact, or starting with them and `/`", () => {
    const extra: string[] = [];
    for (const filter of filters) {
      const levels = filter.split("/");
      const first = levels.findIndex((l) => l === "+" || l === "#");
      if (first <= 0) continue; // no wildcard (exact) or a leading one (everything but `$`)
      const lookup = retainedLookup(filter);
      const prefix = `${levels.slice(0, first).join("/")}/`;
      for (const topic of topics) {
        if (lookup.exact !== topic && covered(lookup, topic) && !startsWithBytes(topic, prefix)) {
          extra.push(`${JSON.stringify(filter)} ${JSON.stringify(topic)}`);
        }
      }
    }
    expect(extra).toEqual([]);
  });

  it("a leading wildcard reads no `$` topic [MQTT-4.7.2-1]", () => {
    for (const filter of ["#", "+", "+/a", "+/#"]) {
      const lookup = retainedLookup(filter);
      for (const topic of topics) expect(covered(lookup, topic), topic).toBe(!topic.startsWith("$"));
    }
  });
});
