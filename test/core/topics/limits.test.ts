import { describe, expect, it } from "vitest";
import {
  DEFAULT_TOPIC_LIMITS,
  checkTopicFilterLimits,
  checkTopicNameLimits,
  countLevels,
  utf8ByteLength,
} from "../../../core/topics";

describe("countLevels", () => {
  it.each([
    ["a", 1],
    ["/", 2],
    ["/a", 2],
    ["a/", 2],
    ["a/b/c", 3],
    ["//", 3],
    ["", 1],
  ])("%j has %i levels", (t, n) => expect(countLevels(t)).toBe(n));
});

describe("utf8ByteLength", () => {
  it("agrees with TextEncoder, lone surrogates included", () => {
    const enc = new TextEncoder();
    for (const s of ["", "abc", "é", "température", "😀", "a\ud800b", "\udc00", "\u07ff\u0800\uffff"]) {
      expect(utf8ByteLength(s), JSON.stringify(s)).toBe(enc.encode(s).length);
    }
  });
});

describe("topic name limits -> 0x90", () => {
  const limits = { maxBytes: 10, maxLevels: 3 };
  it.each([
    ["a/b/c", undefined],
    ["0123456789", undefined],
    ["01234567890", 0x90], // 11 bytes
    ["ééééé", undefined], // 10 bytes
    ["éééééa", 0x90], // 11 bytes in 6 characters
    ["😀😀a", undefined], // 9 bytes
    ["😀😀aaa", 0x90], // 11 bytes in 7 UTF-16 units
    ["a/b/c/d", 0x90], // 4 levels
    ["//", undefined], // 3 empty levels
    ["///", 0x90], // 4 empty levels
  ])("%j -> %s", (topic, code) => {
    expect(checkTopicNameLimits(topic, limits)).toBe(code === undefined ? undefined : 0x90);
  });

  it("defaults allow the protocol maximum length [MQTT-4.7.3-3]", () => {
    expect(DEFAULT_TOPIC_LIMITS.maxBytes).toBe(65535);
    expect(checkTopicNameLimits("a".repeat(65535))).toBeUndefined();
    expect(checkTopicNameLimits("a".repeat(65536))).toBe(0x90);
    expect(checkTopicNameLimits("a/".repeat(DEFAULT_TOPIC_LIMITS.maxLevels - 1) + "a")).toBeUndefined();
    expect(checkTopicNameLimits("a/".repeat(DEFAULT_TOPIC_LIMITS.maxLevels))).toBe(0x90);
  });
});

describe("topic filter limits -> 0x8F", () => {
  const limits = { maxBytes: 16, maxLevels: 3 };
  it.each([
    ["a/+/#", undefined],
    ["a/+/b/#", 0x8f],
    ["+/+/+/+", 0x8f],
    ["0123456789abcdef", undefined],
    ["0123456789abcdefg", 0x8f],
    // a shared filter counts the levels of its inner filter, the bytes of the whole
    ["$share/g/a/b/c", undefined],
    ["$share/g/a/b/c/d", 0x8f],
    ["$share/group/a/b", undefined], // 16 bytes
    ["$share/group/a/bc", 0x8f], // 17 bytes, though the inner filter is 4
  ])("%j -> %s", (filter, code) => {
    expect(checkTopicFilterLimits(filter, limits)).toBe(code);
  });
});
