// The ring of recently routed messages a topic shard replays to a subscription whose
// SUBSCRIBE was received before them (core/session/recent.ts), modelled the way the shard
// uses it: a trie, SharedGroups, deliveriesFor for live messages.
import { describe, expect, it } from "vitest";
import { SharedGroups, SubscriptionTrie } from "../../../core/topics";
import { deliveriesFor } from "../../../core/session/fanout";
import { RECENT_LIMITS, RecentMessages, arrangeReplay, type RecentLimits, type Replay } from "../../../core/session/recent";
import type { Delivery, Message, Subscription } from "../../../core/session/types";
import type { QoS } from "../../../core/mqtt/packets";
import { Harness, T0, pick, publish, sub as subRequest } from "./harness";

const enc = new TextEncoder();

function msg(topic: string, payload: string, qos: QoS = 0, extra: Partial<Message> = {}): Message {
  return { topic, payload: enc.encode(payload), qos, retain: false, origin: "pub", ...extra };
}

function sub(filter: string, qos: QoS = 1, extra: Partial<Subscription> = {}): Subscription {
  return { filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

/** A shard in miniature: routes (live deliveries returned) and subscribes (replays returned). */
class Shard {
  readonly trie = new SubscriptionTrie<Subscription>();
  readonly groups = new SharedGroups();
  readonly recent: RecentMessages;
  constructor(recent = exact()) {
    this.recent = recent;
  }
  publish(message: Message, receivedAt: number, now = receivedAt): Map<string, Delivery> {
    const matches = this.trie.match(message.topic);
    const picked = matches.length ? this.groups.pick(matches) : [];
    this.recent.record(message, receivedAt, now, picked);
    return deliveriesFor(message, picked);
  }
  subscribe(clientId: string, subs: Subscription[], receivedAt: number, now = receivedAt): Replay[] {
    for (const s of subs) this.trie.add(s.filter, clientId, s);
    return this.recent.replay(clientId, receivedAt, subs, (t) => this.trie.match(t), now);
  }
}

/** The default bounds without the tolerance: ordering by receive time exactly. */
function exact(limits: Partial<RecentLimits> = {}): RecentMessages {
  return new RecentMessages({ ...RECENT_LIMITS, toleranceMs: 0, ...limits });
}

const payloads = (rs: Replay[]) => rs.map((r) => new TextDecoder().decode(r.delivery.message.payload));

describe("the session stamps what it takes in with the time it received it", () => {
  it("PUBLISH (QoS 0, 1, 2): the route effect carries its receive time; SUBSCRIBE: the subscribe effect", () => {
    const h = new Harness();
    h.connect(5);
    for (const qos of [0, 1, 2] as const) {
      const at = h.advance(7);
      const [route] = pick(h.packet(publish("a/b", "x", qos, qos === 0 ? undefined : 10 + qos)), "route");
      expect(route!.receivedAt).toBe(at);
      expect(route!.message).not.toHaveProperty("receivedAt"); // not stored with the message anywhere
    }
    const at = h.advance(3);
    const [subscribe] = pick(h.packet({ type: "subscribe", packetId: 1, subscriptions: [subRequest("a/#", 1)] }), "subscribe");
    expect(subscribe!.receivedAt).toBe(at);
    expect(subscribe!.connectedAt).toBe(T0); // when the connection began
  });
});

describe("recent messages: replay to a subscription that came late to the shard", () => {
  it("replays what was received at or after the SUBSCRIBE, in routed order, not what came before", () => {
    const shard = new Shard();
    shard.publish(msg("a/b", "before"), 999);
    shard.publish(msg("a/b", "same ms"), 1000);
    shard.publish(msg("a/c", "after 1"), 1001);
    shard.publish(msg("x/y", "other topic"), 1002);
    shard.publish(msg("a/b", "after 2"), 1003);
    const replays = shard.subscribe("B", [sub("a/+")], 1000, 1005);
    expect(payloads(replays)).toEqual(["same ms", "after 1", "after 2"]);
  });

  it("with the default tolerance, a message received up to 100 ms before the SUBSCRIBE counts as after it", () => {
    const shard = new Shard(new RecentMessages());
    shard.publish(msg("a/b", "101 ms before"), 899);
    shard.publish(msg("a/b", "100 ms before"), 900);
    shard.publish(msg("a/b", "after"), 1001);
    expect(payloads(shard.subscribe("B", [sub("a/b")], 1000))).toEqual(["100 ms before", "after"]);
  });

  it("the tolerance is not for retained messages, nor for the subscriber's own: those are exact", () => {
    const shard = new Shard(new RecentMessages());
    shard.publish(msg("a/b", "retained, before", 0, { retain: true }), 950);
    shard.publish(msg("a/b", "own, before", 0, { origin: "B" }), 950);
    shard.publish(msg("a/b", "other, before"), 950);
    shard.publish(msg("a/b", "retained, after", 0, { retain: true }), 1000);
    expect(payloads(shard.subscribe("B", [sub("a/b")], 1000))).toEqual(["other, before", "retained, after"]);
  });

  it("nor does it reach back before the subscriber's connection began", () => {
    const shard = new Shard(new RecentMessages());
    shard.publish(msg("a/b", "before the connection"), 949);
    shard.publish(msg("a/b", "after the connection"), 951);
    const replays = shard.recent.replay("B", 1000, [sub("a/b")], () => [], 1000, 950); // nothing subscribed: no match
    expect(replays).toEqual([]);
    shard.trie.add("a/b", "B", sub("a/b"));
    expect(payloads(shard.recent.replay("B", 1000, [sub("a/b")], (t) => shard.trie.match(t), 1000, 950))).toEqual(["after the connection"]);
  });

  it("does not replay to a session that got the message live, through another subscription, or by an earlier replay", () => {
    const shard = new Shard();
    shard.trie.add("a/#", "B", sub("a/#"));
    const live = shard.publish(msg("a/b", "live"), 1001);
    expect(live.has("B")).toBe(true);
    expect(shard.subscribe("B", [sub("a/b")], 1000)).toEqual([]); // overlapping: no duplicate

    shard.publish(msg("c/d", "missed"), 1001);
    expect(payloads(shard.subscribe("B", [sub("c/+")], 1000))).toEqual(["missed"]);
    expect(shard.subscribe("B", [sub("c/d")], 1000)).toEqual([]); // second overlapping subscription
    expect(shard.subscribe("B", [sub("c/#")], 1000)).toEqual([]); // and a third
  });

  it("builds the delivery as live: granted QoS, every subscription identifier, Retain As Published", () => {
    const shard = new Shard();
    shard.trie.add("s/#", "B", sub("s/#", 0, { subscriptionId: 4, noLocal: true }));
    shard.publish(msg("s/1", "q2", 2, { retain: true, origin: "B" }), 1001); // No Local kept it from B
    const [r] = shard.subscribe("B", [sub("s/+", 1, { subscriptionId: 7, retainAsPublished: true })], 1000);
    // s/# is No Local for B's own message: only s/+ counts [MQTT-3.8.3-3]
    expect(r!.delivery).toMatchObject({ qos: 1, retain: true, subscriptionIds: [7] });
  });

  it("No Local: the publisher's own message is not replayed to it", () => {
    const shard = new Shard();
    shard.publish(msg("n/1", "mine", 0, { origin: "B" }), 1001);
    expect(shard.subscribe("B", [sub("n/1", 1, { noLocal: true })], 1000)).toEqual([]);
    expect(payloads(shard.subscribe("C", [sub("n/1", 1, { noLocal: true })], 1000))).toEqual(["mine"]);
  });

  it("min(publish QoS, granted QoS) [MQTT-3.8.4-8]", () => {
    const shard = new Shard();
    shard.publish(msg("q/1", "two", 2), 1001);
    shard.publish(msg("q/1", "zero", 0), 1001);
    const rs = shard.subscribe("B", [sub("q/1", 1)], 1000);
    expect(rs.map((r) => r.delivery.qos)).toEqual([1, 0]);
  });

  it("shared subscriptions: replayed to a new member only when no member got it, and to one new member only", () => {
    const shard = new Shard();
    shard.publish(msg("j/1", "no group yet"), 1001);
    shard.trie.add("$share/g/j/+", "W1", sub("$share/g/j/+"));
    shard.publish(msg("j/2", "W1 got it"), 1002);
    expect(payloads(shard.subscribe("W2", [sub("$share/g/j/+")], 1000))).toEqual(["no group yet"]);
    expect(shard.subscribe("W3", [sub("$share/g/j/+")], 1000)).toEqual([]); // W2 got it by replay
    // Another group is its own subscription: it got neither.
    expect(payloads(shard.subscribe("V1", [sub("$share/h/j/+")], 1000))).toEqual(["no group yet", "W1 got it"]);
  });

  it("a subscription without a matching new filter replays nothing", () => {
    const shard = new Shard();
    shard.publish(msg("a/b", "x"), 1001);
    expect(shard.subscribe("B", [sub("z/#")], 1000)).toEqual([]);
    expect(shard.subscribe("B", [], 1000)).toEqual([]);
  });

  it("forgets entries past the age bound, the count bound and the byte bound", () => {
    const aged = new Shard(exact({ maxAgeMs: 5000, maxEntries: 100, maxBytes: 1 << 20 }));
    aged.publish(msg("t", "old"), 1000, 1000);
    aged.publish(msg("t", "new"), 1000, 5500);
    expect(payloads(aged.subscribe("B", [sub("t")], 0, 6001))).toEqual(["new"]);
    expect(aged.recent.size).toBe(1);

    const counted = new Shard(exact({ maxAgeMs: 5000, maxEntries: 3, maxBytes: 1 << 20 }));
    for (let i = 0; i < 10; i++) counted.publish(msg("t", `m${i}`), 1000 + i);
    expect(payloads(counted.subscribe("B", [sub("t")], 0, 1010))).toEqual(["m7", "m8", "m9"]);

    const weighed = new Shard(exact({ maxAgeMs: 5000, maxEntries: 100, maxBytes: 2 * (64 + 1 + 1000) }));
    for (let i = 0; i < 5; i++) weighed.publish(msg("t", `${i}`.padEnd(1000, ".")), 1000);
    expect(weighed.recent.size).toBe(2);
    expect(weighed.recent.bytes).toBeLessThanOrEqual(2 * (64 + 1 + 1000));
  });

  it("keeps working past the compaction of its array", () => {
    const shard = new Shard(exact({ maxAgeMs: 5000, maxEntries: 10, maxBytes: 1 << 20 }));
    for (let i = 0; i < 5000; i++) shard.publish(msg("t", `m${i}`), i);
    expect(shard.recent.size).toBe(10);
    expect(payloads(shard.subscribe("B", [sub("t")], 4995))).toEqual(["m4995", "m4996", "m4997", "m4998", "m4999"]);
  });
});

describe("arrangeReplay: the retained answer and the replays", () => {
  const retainedOf = (m: Message): Delivery => ({ message: { ...m }, qos: m.qos, retain: true }); // as read back from the store

  it("without replays everything stays in the answer", () => {
    const d = retainedOf(msg("r/1", "kept", 0, { retain: true }));
    expect(arrangeReplay([d], [], () => false)).toEqual({ answer: [d], queued: [] });
  });

  it("the current retained message, itself replayed, is sent once, as retained, at its place", () => {
    const shard = new Shard();
    const r0 = msg("r/1", "r0", 1, { retain: true });
    const live = msg("r/1", "live", 1);
    const r1 = msg("r/1", "r1", 1, { retain: true });
    const other = retainedOf(msg("r/2", "elsewhere", 1, { retain: true }));
    for (const m of [r0, live, r1]) shard.publish(m, 1001);
    const replays = shard.subscribe("B", [sub("r/+")], 1000);
    const current = retainedOf(r1);
    const { answer, queued } = arrangeReplay([current, other], replays, (e) => shard.recent.isCurrentRetained(e));
    expect(answer).toEqual([other]);
    expect(queued.map((d) => [new TextDecoder().decode(d.message.payload), d.retain])).toEqual([
      ["r0", false],
      ["live", false],
      ["r1", true],
    ]);
  });

  it("a retained message published before the SUBSCRIBE goes before the topic's replays", () => {
    const shard = new Shard();
    const old = msg("r/1", "old retained", 0, { retain: true });
    shard.publish(old, 900);
    shard.publish(msg("r/1", "later"), 1001);
    const replays = shard.subscribe("B", [sub("r/1")], 1000);
    const { answer, queued } = arrangeReplay([retainedOf(old)], replays, (e) => shard.recent.isCurrentRetained(e));
    expect(answer).toEqual([]);
    expect(queued.map((d) => d.retain)).toEqual([true, false]);
  });

  it("an empty retained publish clears the topic's current retained entry", () => {
    const shard = new Shard();
    shard.publish(msg("r/1", "v", 0, { retain: true }), 1001);
    shard.publish(msg("r/1", "", 0, { retain: true }), 1002);
    const replays = shard.subscribe("B", [sub("r/1")], 1000);
    expect(replays.map((r) => shard.recent.isCurrentRetained(r.entry))).toEqual([false, false]);
    // No retained answer (the store has none): both replayed as live messages.
    expect(arrangeReplay([], replays, (e) => shard.recent.isCurrentRetained(e)).queued).toHaveLength(2);
  });
});
