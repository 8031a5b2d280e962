import { describe, expect, it } from "vitest";
import {
  isSharedFilter,
  parseSharedFilter,
  subscriptionMatches,
  topicMatches,
} from "../../../core/topics";

type Row = [filter: string, topic: string, matches: boolean];

function table(rows: Row[]) {
  it.each(rows)("%j vs %j -> %s", (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
}

describe("4.7.1.2 multi-level wildcard #", () => {
  table([
    // "sport/tennis/player1/#" would receive messages published using these topic names
    ["sport/tennis/player1/#", "sport/tennis/player1", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
    ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
    ["sport/tennis/player1/#", "sport/tennis/player2", false],
    ["sport/tennis/player1/#", "sport/tennis", false],
    // "sport/#" also matches the singular "sport", since # includes the parent level
    ["sport/#", "sport", true],
    ["sport/#", "sport/", true],
    ["sport/#", "sports", false],
    // "#" is valid and will receive every application message
    ["#", "sport", true],
    ["#", "sport/tennis/player1", true],
    ["#", "/", true],
    ["#", "/finance", true],
    // "sport/tennis/#" is valid
    ["sport/tennis/#", "sport/tennis/player1/ranking", true],
    ["sport/tennis/#", "sport/tennis", true],
    ["sport/tennis/#", "sport/badminton", false],
    // [MQTT-4.7.1-2] # only as the last level; elsewhere it matches nothing
    ["sport/tennis/#/ranking", "sport/tennis/player1/ranking", false],
  ]);
});

describe("4.7.1.3 single-level wildcard +", () => {
  table([
    // "sport/tennis/+" matches "sport/tennis/player1" and "sport/tennis/player2",
    // but not "sport/tennis/player1/ranking"
    ["sport/tennis/+", "sport/tennis/player1", true],
    ["sport/tennis/+", "sport/tennis/player2", true],
    ["sport/tennis/+", "sport/tennis/player1/ranking", false],
    // "sport/+" does not match "sport" but does match "sport/"
    ["sport/+", "sport", false],
    ["sport/+", "sport/", true],
    // "+" is valid
    ["+", "sport", true],
    ["+", "", true],
    // "+/tennis/#" and "sport/+/player1" are valid
    ["+/tennis/#", "sport/tennis", true],
    ["+/tennis/#", "sport/tennis/player1/ranking", true],
    ["+/tennis/#", "sport/golf", false],
    ["sport/+/player1", "sport/tennis/player1", true],
    ["sport/+/player1", "sport/tennis/player2", false],
    // "/finance" matches "+/+" and "/+", but not "+"
    ["+/+", "/finance", true],
    ["/+", "/finance", true],
    ["+", "/finance", false],
    ["+/#", "a", true],
    ["+/+", "/", true],
  ]);
});

describe("4.7.2 topics beginning with $", () => {
  table([
    // [MQTT-4.7.2-1] "#" does not receive messages published to "$SYS/..."
    ["#", "$SYS/broker/clients", false],
    ["#", "$SYS", false],
    ["+", "$SYS", false],
    ["+/#", "$SYS/x", false],
    // "+/monitor/Clients" does not receive messages published to "$SYS/monitor/Clients"
    ["+/monitor/Clients", "$SYS/monitor/Clients", false],
    // "$SYS/#" receives messages published to topics beginning with "$SYS/"
    ["$SYS/#", "$SYS/broker/clients", true],
    ["$SYS/#", "$SYS", true],
    // "$SYS/monitor/+" receives messages published to "$SYS/monitor/Clients"
    ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
    // Only the first level is special: a later wildcard may match a $ level
    ["a/+", "a/$b", true],
    ["a/#", "a/$b/c", true],
    ["$foo/+", "$foo/bar", true],
  ]);
});

describe("4.7.3 topic semantics: exact comparison, empty levels", () => {
  table([
    // [MQTT-4.7.3-4] case-sensitive, no normalisation
    ["ACCOUNTS", "Accounts", false],
    ["Accounts payable", "Accounts payable", true],
    ["/finance", "finance", false],
    ["finance/", "finance", false],
    ["a//b", "a//b", true],
    ["a/+/b", "a//b", true],
    ["a/b", "a//b", false],
    ["//", "//", true],
    ["+/+/+", "//", true],
    ["+/+", "//", false],
    ["café/ü", "café/ü", true],
  ]);
});

describe("parseSharedFilter (4.8.2)", () => {
  it.each([
    ["$share/g/a/b", { group: "g", filter: "a/b" }],
    ["$share/consumer1/sport/tennis/+", { group: "consumer1", filter: "sport/tennis/+" }],
    ["$share/g/#", { group: "g", filter: "#" }],
    ["$share/g//a", { group: "g", filter: "/a" }],
    ["$share/g/$SYS/#", { group: "g", filter: "$SYS/#" }],
  ])("%j", (input, expected) => {
    expect(parseSharedFilter(input)).toEqual(expected);
    expect(isSharedFilter(input)).toBe(true);
  });

  it.each([
    // not shared
    ["a/b", false],
    ["$share", false],
    ["$SHARE/g/a", false],
    ["$sharex/g/a", false],
    // malformed: [MQTT-4.8.2-1] empty ShareName, [MQTT-4.8.2-2] wildcard, no "/" or no filter
    ["$share//a", true],
    ["$share/g", true],
    ["$share/g/", true],
    ["$share/+/a", true],
    ["$share/g#/a", true],
  ])("%j -> undefined (claims shared: %s)", (input, claimsShared) => {
    expect(parseSharedFilter(input)).toBeUndefined();
    expect(isSharedFilter(input)).toBe(claimsShared);
  });

  it("subscriptionMatches uses the inner filter", () => {
    expect(subscriptionMatches("$share/g/sport/#", "sport/tennis")).toBe(true);
    expect(subscriptionMatches("$share/g/#", "$SYS/x")).toBe(false);
    expect(subscriptionMatches("$share/g/$SYS/#", "$SYS/x")).toBe(true);
    expect(topicMatches("$share/g/sport/#", "sport/tennis")).toBe(false);
  });
});
