// SUBSCRIBE / SUBACK and UNSUBSCRIBE / UNSUBACK: MQTT 3.1.1 sections 3.8-3.11, MQTT 5.0
// sections 3.8-3.11 (subscription options 3.8.3.1, shared subscriptions 4.8.2).
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../core/mqtt/packets.js";
import { Harness, kinds, pick, sub } from "./harness.js";

describe("08 subscribe", () => {
  it("SUBSCRIBE -> subscribe effect with a ticket; SUBACK only after subscribed(ticket) [MQTT-3.8.4-1]", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet({ type: "subscribe", packetId: 10, subscriptions: [sub("a/+", 2), sub("b", 0), sub("c/#", 1)] });
    expect(kinds(effects)).toEqual(["subscribe"]);
    const s = pick(effects, "subscribe")[0]!;
    expect(s.subscriptions.map((r) => [r.subscription.filter, r.subscription.qos])).toEqual([
      ["a/+", 2],
      ["b", 0],
      ["c/#", 1],
    ]);
    expect(h.session.subscribed(s.ticket + 1000)).toEqual([]);
    const done = h.session.subscribed(s.ticket);
    expect(h.one(done, "suback")).toStrictEqual({ type: "suback", packetId: 10, reasonCodes: [2, 0, 1] });
    expect(h.session.subscribed(s.ticket)).toEqual([]); // once
    expect(h.store.subscriptions().map((x) => x.filter).sort()).toEqual(["a/+", "b", "c/#"]);
  });

  it("3.1.1 SUBACK with the granted QoS per filter", () => {
    const h = new Harness();
    h.connect(4);
    expect(h.subscribe(3, sub("x", 1), sub("y", 2))).toEqual([1, 2]);
  });

  it("subscription options are kept, with the Subscription Identifier (5.0)", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet({
      type: "subscribe",
      packetId: 1,
      subscriptions: [sub("t", 1, { noLocal: true, retainAsPublished: true, retainHandling: 2 })],
      properties: { subscriptionIdentifiers: [42] },
    });
    const expected = { filter: "t", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2, subscriptionId: 42 };
    expect(pick(effects, "subscribe")[0]!.subscriptions[0]!.subscription).toStrictEqual(expected);
    expect(h.store.getSubscription("t")).toStrictEqual(expected);
  });

  it("5.0 invalid filters get 0x8F while the valid ones are granted", () => {
    const h = new Harness();
    h.connect(5);
    expect(h.subscribe(1, sub("a/#/b", 1), sub("ok/+", 1), sub("a+", 0), sub("$share/g", 0), sub("", 0))).toEqual([
      0x8f, 1, 0x8f, 0x8f, 0x8f,
    ]);
    expect(h.store.subscriptions().map((s) => s.filter)).toEqual(["ok/+"]);
  });

  it("3.1.1 invalid filters get 0x80 while the valid ones are granted", () => {
    const h = new Harness();
    h.connect(4);
    expect(h.subscribe(1, sub("a/#/b", 1), sub("ok", 2))).toEqual([0x80, 2]);
  });

  it("all filters refused: SUBACK at once, no subscribe effect", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet({ type: "subscribe", packetId: 4, subscriptions: [sub("#/a")] });
    expect(kinds(effects)).toEqual(["send:suback"]);
    expect(h.one(effects, "suback").reasonCodes).toEqual([0x8f]);
  });

  it("filters over the configured topic limits are refused", () => {
    const h = new Harness({ maxTopicLevels: 3, maxTopicLength: 10 });
    h.connect(5);
    expect(h.subscribe(1, sub("a/b/c/d"), sub("a/b/c"), sub("x".repeat(11)), sub("$share/g/a/b/c"))).toEqual([0x8f, 0, 0x8f, 0x8f]);
  });

  it("No Local on a shared subscription: DISCONNECT 0x82 [MQTT-3.8.3-4]", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet({ type: "subscribe", packetId: 1, subscriptions: [sub("$share/g/t", 1, { noLocal: true })] });
    expect(h.one(effects, "disconnect").reasonCode).toBe(ReasonCode.ProtocolError);
    expect(kinds(effects)).toContain("close");
    expect(pick(effects, "subscribe")).toEqual([]);
    expect(h.store.subscriptions()).toEqual([]);
  });

  it("subscription limit: 0x97 (5.0) / 0x80 (3.1.1) for new filters beyond it; existing ones may be replaced", () => {
    for (const v of [4, 5] as const) {
      const h = new Harness({ maxSubscriptionsPerClient: 2 });
      h.connect(v);
      expect(h.subscribe(1, sub("a"), sub("b"), sub("c"))).toEqual([0, 0, v === 5 ? ReasonCode.QuotaExceeded : 0x80]);
      expect(h.subscribe(2, sub("a", 2))).toEqual([2]);
      expect(h.subscribe(3, sub("d"))).toEqual([v === 5 ? 0x97 : 0x80]);
    }
  });

  it("a subscription to the same filter replaces the previous one [MQTT-3.8.4-3]", () => {
    const h = new Harness();
    h.connect(5);
    h.subscribe(1, sub("t", 0));
    h.subscribe(2, sub("t", 2, { noLocal: true }));
    expect(h.store.subscriptions()).toHaveLength(1);
    expect(h.store.getSubscription("t")).toMatchObject({ qos: 2, noLocal: true });
  });

  describe("retained messages wanted (Retain Handling)", () => {
    const want = (h: Harness, ...subs: ReturnType<typeof sub>[]) => {
      const effects = h.packet({ type: "subscribe", packetId: 9, subscriptions: subs });
      const s = pick(effects, "subscribe")[0]!;
      h.session.subscribed(s.ticket);
      return s.subscriptions.map((r) => r.wantRetained);
    };

    it("Retain Handling 0: always, new or existing [MQTT-3.3.1-9]", () => {
      const h = new Harness();
      h.connect(5);
      expect(want(h, sub("t", 1, { retainHandling: 0 }))).toEqual([true]);
      expect(want(h, sub("t", 1, { retainHandling: 0 }))).toEqual([true]);
    });

    it("Retain Handling 1: only for a new subscription [MQTT-3.3.1-10]", () => {
      const h = new Harness();
      h.connect(5);
      expect(want(h, sub("t", 1, { retainHandling: 1 }))).toEqual([true]);
      expect(want(h, sub("t", 1, { retainHandling: 1 }))).toEqual([false]);
    });

    it("Retain Handling 2: never [MQTT-3.3.1-11]", () => {
      const h = new Harness();
      h.connect(5);
      expect(want(h, sub("t", 1, { retainHandling: 2 }))).toEqual([false]);
    });

    it("3.1.1: always", () => {
      const h = new Harness();
      h.connect(4);
      expect(want(h, sub("t", 1), sub("t", 1))).toEqual([true, true]);
    });

    it("shared subscriptions never want retained messages", () => {
      const h = new Harness();
      h.connect(5);
      expect(want(h, sub("$share/g/t", 1, { retainHandling: 0 }), sub("$share/g/u", 1, { retainHandling: 1 }))).toEqual([
        false,
        false,
      ]);
    });
  });

  it("a pending SUBSCRIBE is forgotten when the connection is lost", () => {
    const h = new Harness();
    h.connectPersistent(5);
    const s = pick(h.packet({ type: "subscribe", packetId: 1, subscriptions: [sub("t")] }), "subscribe")[0]!;
    h.session.connectionLost(0x80, h.now);
    expect(h.session.subscribed(s.ticket)).toEqual([]);
  });
});

describe("08 unsubscribe", () => {
  it("5.0: unsubscribe effect for existing filters, UNSUBACK 0x00 / 0x11 per filter", () => {
    const h = new Harness();
    h.connect(5);
    h.subscribe(1, sub("a"), sub("b/#"));
    const effects = h.packet({ type: "unsubscribe", packetId: 2, topicFilters: ["a", "nope", "b/#"] });
    expect(kinds(effects)).toEqual(["unsubscribe", "send:unsuback"]);
    expect(pick(effects, "unsubscribe")[0]!.filters).toEqual(["a", "b/#"]);
    expect(h.one(effects, "unsuback")).toStrictEqual({
      type: "unsuback",
      packetId: 2,
      reasonCodes: [0, ReasonCode.NoSubscriptionExisted, 0],
    });
    expect(h.store.subscriptions()).toEqual([]);
  });

  it("5.0: nothing to remove: no unsubscribe effect, UNSUBACK 0x11 [MQTT-3.10.4-5]", () => {
    const h = new Harness();
    h.connect(5);
    const effects = h.packet({ type: "unsubscribe", packetId: 3, topicFilters: ["x"] });
    expect(kinds(effects)).toEqual(["send:unsuback"]);
    expect(h.one(effects, "unsuback").reasonCodes).toEqual([0x11]);
  });

  it("3.1.1: UNSUBACK without reason codes", () => {
    const h = new Harness();
    h.connect(4);
    h.subscribe(1, sub("a"));
    const effects = h.packet({ type: "unsubscribe", packetId: 7, topicFilters: ["a", "b"] });
    expect(pick(effects, "unsubscribe")[0]!.filters).toEqual(["a"]);
    expect(h.one(effects, "unsuback")).toStrictEqual({ type: "unsuback", packetId: 7 });
    expect([...pick(effects, "send")[0]!.bytes]).toEqual([0xb0, 2, 0, 7]);
  });
});
