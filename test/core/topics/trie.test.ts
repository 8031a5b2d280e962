import { describe, expect, it } from "vitest";
import { SubscriptionTrie, subscriptionMatches, type SubscriptionMatch } from "../../../core/topics";
import { Xorshift32 } from "./prng";

const ids = (ms: SubscriptionMatch<unknown>[]) => ms.map((m) => `${m.filter} ${m.key}`).sort();

describe("SubscriptionTrie basics", () => {
  it("matches exact, + and # filters and reports filter, key and value", () => {
    const t = new SubscriptionTrie<number>();
    t.add("sport/tennis/player1", "c1", 1);
    t.add("sport/tennis/+", "c2", 2);
    t.add("sport/#", "c3", 3);
    t.add("#", "c4", 4);
    t.add("sport/golf", "c5", 5);
    expect(ids(t.match("sport/tennis/player1"))).toEqual([
      "# c4",
      "sport/# c3",
      "sport/tennis/+ c2",
      "sport/tennis/player1 c1",
    ]);
    expect(t.match("sport/golf").map((m) => m.value).sort()).toEqual([3, 4, 5]);
    // [MQTT-4.7.1-2] `sport/#` matches `sport` itself
    expect(ids(t.match("sport"))).toEqual(["# c4", "sport/# c3"]);
    expect(ids(t.match("weather"))).toEqual(["# c4"]);
  });

  it("[MQTT-4.7.2-1] leading wildcards do not match $ topics", () => {
    const t = new SubscriptionTrie<null>();
    for (const f of ["#", "+/#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+"]) t.add(f, "c", null);
    expect(ids(t.match("$SYS/monitor/Clients"))).toEqual(["$SYS/# c", "$SYS/monitor/+ c"]);
    expect(ids(t.match("$SYS"))).toEqual(["$SYS/# c"]);
    expect(ids(t.match("x/monitor/Clients"))).toEqual(["# c", "+/# c", "+/monitor/Clients c"]);
  });

  it("treats empty levels as levels", () => {
    const t = new SubscriptionTrie<null>();
    for (const f of ["/+", "+/+", "+", "/finance", "finance", "//#"]) t.add(f, "c", null);
    expect(ids(t.match("/finance"))).toEqual(["+/+ c", "/+ c", "/finance c"]);
    expect(ids(t.match("//"))).toEqual(["//# c"]);
    expect(ids(t.match("/"))).toEqual(["+/+ c", "/+ c", "//# c"]);
  });

  it("[MQTT-3.8.4-3] one subscription per key per filter: add replaces the value", () => {
    const t = new SubscriptionTrie<{ qos: number }>();
    expect(t.add("a/+", "c1", { qos: 0 })).toBe(true);
    expect(t.add("a/+", "c1", { qos: 2 })).toBe(false);
    expect(t.add("a/+", "c2", { qos: 1 })).toBe(true);
    expect(t.size).toBe(2);
    expect(t.wildcardSize).toBe(2);
    expect(t.get("a/+", "c1")).toEqual({ qos: 2 });
    expect(t.match("a/b").map((m) => m.value.qos).sort()).toEqual([1, 2]);
  });

  it("remove drops one subscription and reports whether it existed", () => {
    const t = new SubscriptionTrie<number>();
    t.add("a/b/c", "c1", 1);
    t.add("a/b", "c1", 2);
    t.add("a/b/c", "c2", 3);
    expect(t.remove("a/b/c", "c1")).toBe(true);
    expect(t.remove("a/b/c", "c1")).toBe(false);
    expect(t.remove("a/b/x", "c1")).toBe(false);
    expect(t.remove("a", "c1")).toBe(false);
    expect(t.size).toBe(2);
    expect(ids(t.match("a/b/c"))).toEqual(["a/b/c c2"]);
    expect(t.remove("a/b/c", "c2")).toBe(true);
    expect(t.match("a/b/c")).toEqual([]);
    expect(ids(t.match("a/b"))).toEqual(["a/b c1"]);
    expect(t.remove("a/b", "c1")).toBe(true);
    expect(t.size).toBe(0);
    expect([...t.entries()]).toEqual([]);
  });

  it("removeAll drops every subscription of a key and returns the count", () => {
    const t = new SubscriptionTrie<number>();
    t.add("a/#", "c1", 1);
    t.add("a/+", "c1", 2);
    t.add("$share/g/a/+", "c1", 3);
    t.add("a/+", "c2", 4);
    t.add("a/b", "c2", 5);
    expect(t.wildcardSize).toBe(4);
    expect(t.filtersOf("c1").sort()).toEqual(["$share/g/a/+", "a/#", "a/+"]);
    expect(t.removeAll("c1")).toBe(3);
    expect(t.removeAll("c1")).toBe(0);
    expect(t.removeAll("nobody")).toBe(0);
    expect(t.size).toBe(2);
    expect(t.wildcardSize).toBe(1);
    expect(t.filtersOf("c1")).toEqual([]);
    expect(ids(t.match("a/x"))).toEqual(["a/+ c2"]);
  });

  it("entries() lists every subscription and rebuilds an equal trie", () => {
    const t = new SubscriptionTrie<number>();
    t.add("a", "k1", 1);
    t.add("a/+", "k1", 2);
    t.add("$share/g/a/+", "k2", 3);
    t.add("#", "k3", 4);
    const rows = [...t.entries()];
    expect(rows.map((r) => `${r.filter} ${r.key} ${r.value}`).sort()).toEqual([
      "# k3 4",
      "$share/g/a/+ k2 3",
      "a k1 1",
      "a/+ k1 2",
    ]);
    const copy = new SubscriptionTrie<number>();
    for (const r of rows) copy.add(r.filter, r.key, r.value);
    expect(ids(copy.match("a/b"))).toEqual(ids(t.match("a/b")));
  });

  it("stores shared subscriptions under their inner filter, reported by full filter", () => {
    const t = new SubscriptionTrie<null>();
    t.add("$share/g1/sport/+", "c1", null);
    t.add("$share/g1/sport/+", "c2", null);
    t.add("$share/g2/sport/+", "c3", null);
    t.add("sport/+", "c4", null);
    t.add("$share/g1/#", "c5", null);
    expect(t.subscriberCount("$share/g1/sport/+")).toBe(2);
    expect(t.subscriberCount("sport/+")).toBe(1);
    expect(ids(t.match("sport/tennis"))).toEqual([
      "$share/g1/# c5",
      "$share/g1/sport/+ c1",
      "$share/g1/sport/+ c2",
      "$share/g2/sport/+ c3",
      "sport/+ c4",
    ]);
    // [MQTT-4.7.2-1] applies to the inner filter
    expect(t.match("$SYS/x")).toEqual([]);
    expect(t.remove("$share/g1/sport/+", "c1")).toBe(true);
    expect(t.subscriberCount("$share/g1/sport/+")).toBe(1);
    // malformed shared filters are refused on add and never found
    expect(() => t.add("$share//a", "c1", null)).toThrow(RangeError);
    expect(t.remove("$share/+/a", "c1")).toBe(false);
    expect(t.get("$share/g", "c1")).toBeUndefined();
  });

  it("handles topics deeper than the call stack", () => {
    const t = new SubscriptionTrie<null>();
    const deep = Array.from({ length: 50_000 }, (_, i) => `l${i % 7}`).join("/");
    t.add(deep, "c1", null);
    t.add("l0/#", "c2", null);
    t.add(deep.split("/").map(() => "+").join("/"), "c3", null);
    expect(ids(t.match(deep)).length).toBe(3);
  });
});

/** A small alphabet so filters and topics collide often. */
const LEVELS = ["a", "b", "c", "", "sport", "$SYS", "$x", "A", "é", "a b"];
const FILTER_FIRST = [...LEVELS, "$SYS", "$SYS"];
/** Topics may start with `$share`; a filter starting so is a shared subscription. */
const TOPIC_FIRST = [...FILTER_FIRST, "$share"];

function randomTopic(rng: Xorshift32): string {
  const depth = rng.chance(0.05) ? 10 + rng.int(30) : 1 + rng.int(5);
  const levels = [rng.pick(TOPIC_FIRST)];
  for (let i = 1; i < depth; i++) levels.push(rng.pick(LEVELS));
  return levels.join("/");
}

function randomFilter(rng: Xorshift32): string {
  const depth = rng.chance(0.03) ? 10 + rng.int(30) : 1 + rng.int(5);
  const levels: string[] = [];
  for (let i = 0; i < depth; i++) {
    if (i === depth - 1 && rng.chance(0.2)) levels.push("#");
    else if (rng.chance(0.3)) levels.push("+");
    else levels.push(rng.pick(i === 0 ? FILTER_FIRST : LEVELS));
  }
  const filter = levels.join("/");
  if (filter === "") return randomFilter(rng); // [MQTT-4.7.3-1] at least one character
  if (rng.chance(0.1)) return `$share/${rng.pick(["g1", "g2"])}/${filter}`;
  return filter;
}

describe("SubscriptionTrie differential against topicMatches (seeded corpus)", () => {
  const rng = new Xorshift32(0x5eed1234);
  const fixed = ["#", "+", "+/+", "+/#", "/#", "/+", "$SYS/#", "$SYS/+", "+/+/+", "$share/g1/#"];
  const filters = [...fixed, ...Array.from({ length: 3000 }, () => randomFilter(rng))];
  const keys = ["c0", "c1", "c2", "c3", "c4", "c5"];
  const topics = [
    "$SYS", "$SYS/a", "/", "//", "", "a", "/a", "a/", "$share/g1/a",
    ...Array.from({ length: 2000 }, () => randomTopic(rng)),
  ];

  const trie = new SubscriptionTrie<number>();
  const model = new Map<string, number>(); // `${filter}\u0000${key}` -> value
  filters.forEach((filter, i) => {
    const key = rng.pick(keys);
    const created = trie.add(filter, key, i);
    const id = `${filter}\u0000${key}`;
    expect(created).toBe(!model.has(id));
    model.set(id, i);
  });

  function check(): number {
    let total = 0;
    const rows = [...model].map(([id, value]) => ({
      filter: id.slice(0, id.indexOf("\u0000")),
      row: `${id}\u0000${value}`,
    }));
    for (const topic of topics) {
      const got = trie.match(topic).map((m) => `${m.filter}\u0000${m.key}\u0000${m.value}`).sort();
      const want = rows.filter((r) => subscriptionMatches(r.filter, topic)).map((r) => r.row).sort();
      expect(got, topic).toEqual(want);
      total += got.length;
    }
    return total;
  }

  it("matches the brute-force reference on every topic", () => {
    expect(trie.size).toBe(model.size);
    expect(check()).toBeGreaterThan(10_000); // the corpus really exercises matching
  });

  it("entries() equals the model", () => {
    const rows = [...trie.entries()].map((r) => `${r.filter}\u0000${r.key}`).sort();
    expect(rows).toEqual([...model.keys()].sort());
  });

  it("still matches after random removes and removeAll", () => {
    const ids = [...model.keys()];
    for (let i = 0; i < ids.length; i += 2) {
      const id = ids[rng.int(ids.length)]!;
      const [filter, key] = id.split("\u0000") as [string, string];
      expect(trie.remove(filter, key)).toBe(model.delete(id));
    }
    let expected = 0;
    for (const id of [...model.keys()]) {
      if (id.endsWith("\u0000c3")) {
        model.delete(id);
        expected++;
      }
    }
    expect(trie.removeAll("c3")).toBe(expected);
    expect(trie.size).toBe(model.size);
    check();
  });

  it("is empty after removing everything", () => {
    for (const key of keys) trie.removeAll(key);
    model.clear();
    expect(trie.size).toBe(0);
    expect([...trie.entries()]).toEqual([]);
    for (const t of topics.slice(0, 50)) expect(trie.match(t)).toEqual([]);
  });
});
