import { describe, expect, it } from "vitest";
import { SharedGroups, SubscriptionTrie, type SubscriptionMatch } from "../../../core/topics";

function setup() {
  const trie = new SubscriptionTrie<string>();
  for (const k of ["w1", "w2", "w3"]) trie.add("$share/workers/jobs/+", k, k);
  for (const k of ["a1", "a2"]) trie.add("$share/audit/jobs/#", k, k);
  trie.add("$share/workers/jobs/#", "x1", "x1"); // same ShareName, other filter: own group
  trie.add("jobs/+", "plain1", "plain1");
  trie.add("jobs/#", "plain2", "plain2");
  return trie;
}

const byFilter = (ms: SubscriptionMatch<string>[]) => {
  const out = new Map<string, string[]>();
  for (const m of ms) out.set(m.filter, [...(out.get(m.filter) ?? []), m.key]);
  return out;
};

describe("SharedGroups (4.8.2)", () => {
  it("delivers to exactly one member per shared subscription and to every plain one", () => {
    const trie = setup();
    const groups = new SharedGroups();
    for (let i = 0; i < 30; i++) {
      const picked = byFilter(groups.pick(trie.match(`jobs/${i}`)));
      expect([...picked.keys()].sort()).toEqual([
        "$share/audit/jobs/#",
        "$share/workers/jobs/#",
        "$share/workers/jobs/+",
        "jobs/#",
        "jobs/+",
      ]);
      for (const keys of picked.values()) expect(keys).toHaveLength(1);
    }
  });

  it("rotates round robin in key order: every member gets an equal share", () => {
    const trie = setup();
    const groups = new SharedGroups();
    const counts = new Map<string, number>();
    const sequence: string[] = [];
    for (let i = 0; i < 600; i++) {
      for (const m of groups.pick(trie.match("jobs/x"))) {
        counts.set(m.key, (counts.get(m.key) ?? 0) + 1);
        if (m.filter === "$share/workers/jobs/+") sequence.push(m.key);
      }
    }
    expect(sequence.slice(0, 6)).toEqual(["w1", "w2", "w3", "w1", "w2", "w3"]);
    expect(Object.fromEntries(counts)).toEqual({
      w1: 200, w2: 200, w3: 200, a1: 300, a2: 300, x1: 600, plain1: 600, plain2: 600,
    });
  });

  it("does not depend on the order of the matches", () => {
    const trie = setup();
    const a = new SharedGroups();
    const b = new SharedGroups();
    for (let i = 0; i < 10; i++) {
      const ms = trie.match("jobs/x");
      const keysA = a.pick(ms).map((m) => m.key).sort();
      const keysB = b.pick([...ms].reverse()).map((m) => m.key).sort();
      expect(keysA).toEqual(keysB);
    }
  });

  it("resumes the same rotation from its serialised state", () => {
    const trie = setup();
    const live = new SharedGroups();
    for (let i = 0; i < 4; i++) live.pick(trie.match("jobs/x"));
    const state = JSON.parse(JSON.stringify(live)) as Record<string, string>;
    expect(state).toEqual({
      "$share/workers/jobs/+": "w1",
      "$share/audit/jobs/#": "a2",
      "$share/workers/jobs/#": "x1",
    });
    const restored = new SharedGroups(state);
    for (let i = 0; i < 10; i++) {
      const m = trie.match("jobs/x");
      expect(restored.pick(m).map((x) => x.key)).toEqual(live.pick(m).map((x) => x.key));
    }
  });

  it("keeps rotating fairly when members join and leave", () => {
    const trie = setup();
    const groups = new SharedGroups();
    const pickWorker = () =>
      groups.pick(trie.match("jobs/x")).find((m) => m.filter === "$share/workers/jobs/+")!.key;
    expect([pickWorker(), pickWorker()]).toEqual(["w1", "w2"]);
    trie.remove("$share/workers/jobs/+", "w2"); // the last one served leaves
    expect([pickWorker(), pickWorker()]).toEqual(["w3", "w1"]);
    trie.add("$share/workers/jobs/+", "w0", "w0"); // a newcomer takes its turn in key order
    expect([pickWorker(), pickWorker(), pickWorker(), pickWorker()]).toEqual(["w3", "w0", "w1", "w3"]);
    trie.removeAll("w0");
    trie.removeAll("w1");
    trie.removeAll("w3");
    expect(groups.pick(trie.match("jobs/x")).some((m) => m.filter === "$share/workers/jobs/+")).toBe(false);
    groups.forget("$share/workers/jobs/+");
    expect(groups.toJSON()["$share/workers/jobs/+"]).toBeUndefined();
  });

  it("skips ineligible members, but still delivers once if none is eligible", () => {
    const trie = setup();
    const groups = new SharedGroups();
    const busy = new Set(["w2"]);
    const workers = (eligible?: (m: SubscriptionMatch<string>) => boolean) =>
      groups.pick(trie.match("jobs/x"), eligible).filter((m) => m.filter === "$share/workers/jobs/+");
    const seq = Array.from({ length: 4 }, () => workers((m) => !busy.has(m.key)));
    expect(seq.map((ms) => ms.map((m) => m.key))).toEqual([["w1"], ["w3"], ["w1"], ["w3"]]);
    const none = workers(() => false);
    expect(none.map((m) => m.key)).toEqual(["w1"]);
  });

  it("passes plain matches through untouched when there is no shared subscription", () => {
    const trie = new SubscriptionTrie<number>();
    trie.add("a/+", "c1", 1);
    trie.add("a/#", "c1", 2);
    const groups = new SharedGroups();
    const ms = trie.match("a/b");
    expect(groups.pick(ms)).toEqual(ms);
    expect(groups.size).toBe(0);
  });
});
