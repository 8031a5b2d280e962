// Filter covers / overlaps (core/topics/cover.ts), for access control: MQTT 5.0 section 4.7.
import { describe, expect, it } from "vitest";
import { filterCovers, filtersOverlap, topicMatches } from "../../../core/topics";
import { Xorshift32 } from "./prng.js";

describe("filterCovers", () => {
  const cases: [string, string, boolean][] = [
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/+", "a/b", true],
    ["a/+", "a/+", true],
    ["a/+", "a/#", false], // a/# matches a and a/b/c
    ["a/+", "a", false],
    ["a/#", "a", true], // # matches its parent [MQTT-4.7.1-2]
    ["a/#", "a/b/+/c", true],
    ["a/#", "a/#", true],
    ["a/#", "b/#", false],
    ["#", "a/#", true],
    ["#", "+/+", true],
    ["+/+", "#", false],
    ["+/#", "#", true], // both match every topic of one level or more
    ["a/+/#", "a/#", false], // a/# matches a
    ["+", "a/b", false],
    ["a/+/c", "a/+/c", true],
    ["a/+/c", "a/b/+", false],
    ["a/b", "a/+", false],
    ["", "", true], // the empty level
    ["+", "", true],
    ["a/+", "a/", true],
    ["#", "$SYS/x", false], // [MQTT-4.7.2-1]
    ["+/#", "$SYS/#", false],
    ["$SYS/#", "$SYS/x/y", true],
    ["$SYS/+", "$SYS", false],
  ];
  for (const [outer, inner, expected] of cases) {
    it(`${outer} ${expected ? "covers" : "does not cover"} ${inner}`, () => expect(filterCovers(outer, inner)).toBe(expected));
  }
});

describe("filtersOverlap", () => {
  const cases: [string, string, boolean][] = [
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/+", "+/b", true],
    ["a/+", "a/b/c", false],
    ["a/#", "a", true],
    ["a/#", "b/#", false],
    ["#", "x", true],
    ["#", "$SYS/x", false], // [MQTT-4.7.2-1]
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "+/#", false],
    ["$SYS/#", "$SYS/+", true],
    ["a/+/c", "a/b/#", true],
    ["a/+/c", "a/b", false],
    ["+", "+", true],
    ["a//b", "a/+/b", true],
  ];
  for (const [a, b, expected] of cases) {
    it(`${a} and ${b}: ${expected ? "overlap" : "disjoint"}`, () => {
      expect(filtersOverlap(a, b)).toBe(expected);
      expect(filtersOverlap(b, a)).toBe(expected); // symmetric
    });
  }
});

/**
 * Against brute force: every topic of up to one level more than the filters, over their
 * literals and one they never use ("z", standing for any other level), decides both.
 */
describe("cover and overlap agree with topicMatches over every topic", () => {
  const literals = ["a", "b", "", "$s"];
  const levels = [...literals, "z"];
  const topics: string[] = [];
  const grow = (prefix: string[]): void => {
    if (prefix.length > 0) topics.push(prefix.join("/"));
    if (prefix.length === 4) return;
    for (const l of levels) grow([...prefix, l]);
  };
  grow([]);

  const rng = new Xorshift32(12);
  const randomFilter = (): string => {
    const n = 1 + rng.int(3);
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      if (i === n - 1 && rng.chance(0.25)) out.push("#");
      else out.push(rng.chance(0.3) ? "+" : rng.pick(literals));
    }
    return out.join("/");
  };

  it("on 3,000 random pairs", () => {
    for (let i = 0; i < 3000; i++) {
      const a = randomFilter();
      const b = randomFilter();
      const ofB = topics.filter((t) => topicMatches(b, t));
      const covers = ofB.every((t) => topicMatches(a, t));
      const overlap = ofB.some((t) => topicMatches(a, t));
      expect(filterCovers(a, b), `${a} covers ${b}`).toBe(covers);
      expect(filtersOverlap(a, b), `${a} overlaps ${b}`).toBe(overlap);
    }
  });
});
