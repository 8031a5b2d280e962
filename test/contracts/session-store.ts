/**
 * The contract every SessionStore implementation must meet. Registered by one test file per
 * implementation (memory, SQLite in Node, Durable Object SQLite in workerd), so this module
 * imports only vitest and project code: no Node built-ins.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { SessionRecord, SessionStore } from "../../core/session/store.js";
import type { Delivery, Subscription } from "../../core/session/types.js";
import { deliverySize } from "../../core/session/outbound.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function record(extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    clientId: "device-1",
    protocolVersion: 5,
    expiryInterval: 3600,
    connected: true,
    lastPacketId: 7,
    will: {
      topic: "devices/device-1/status",
      payload: new Uint8Array([0, 1, 2, 128, 255]),
      qos: 1,
      retain: true,
      properties: {
        willDelayInterval: 10,
        contentType: "application/octet-stream",
        correlationData: new Uint8Array([9, 8, 7]),
        userProperties: [
          ["a", "1"],
          ["a", "2"],
        ],
      },
    },
    connection: {
      keepAlive: 60,
      receiveMaximum: 10,
      maximumPacketSize: 65536,
      topicAliasMaximum: 4,
      outboundAliases: { "a/b": 1 },
      inboundAliases: { 2: "c/d" },
      requestProblemInformation: true,
    resumed: false,
      username: "alice",
      connectedAt: 1_700_000_000_000,
    },
    ...extra,
  };
}

function delivery(payload: string, qos: 0 | 1 | 2 = 1, extra: Partial<Delivery> = {}): Delivery {
  return {
    message: { topic: "t/" + payload, payload: enc(payload), qos, retain: false },
    qos,
    retain: false,
    ...extra,
  };
}

function subscription(filter: string, extra: Partial<Subscription> = {}): Subscription {
  return { filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, ...extra };
}

const payloadOf = (d: Delivery): string => new TextDecoder().decode(d.message.payload);

export function sessionStoreContract(name: string, makeStore: () => SessionStore): void {
  describe(`SessionStore contract: ${name}`, () => {
    let store: SessionStore;
    beforeEach(() => {
      store = makeStore();
    });

    describe("record", () => {
      it("is undefined in a new store", () => {
        expect(store.load()).toBeUndefined();
      });

      it("round-trips, Will payload and correlation data as bytes", () => {
        const r = record();
        store.save(r);
        const loaded = store.load()!;
        expect(loaded).toStrictEqual(r);
        expect(loaded.will!.payload).toBeInstanceOf(Uint8Array);
        expect([...loaded.will!.payload]).toEqual([0, 1, 2, 128, 255]);
        expect(loaded.will!.properties!.correlationData).toBeInstanceOf(Uint8Array);
      });

      it("round-trips an empty Will payload and a record without optional fields", () => {
        const r = record({ will: { topic: "w", payload: new Uint8Array(0), qos: 0, retain: false } });
        store.save(r);
        expect(store.load()).toStrictEqual(r);
        const bare: SessionRecord = { clientId: "c", protocolVersion: 4, expiryInterval: 0xffffffff, connected: false, lastPacketId: 0 };
        store.save(bare);
        expect(store.load()).toStrictEqual(bare);
      });

      it("keeps willAt and expiresAt", () => {
        const r = record({ connected: false, willAt: 1_700_000_010_000, expiresAt: 1_700_003_600_000 });
        delete r.connection;
        store.save(r);
        expect(store.load()).toStrictEqual(r);
      });

      it("save replaces the record", () => {
        store.save(record());
        store.save(record({ lastPacketId: 99, connected: false }));
        expect(store.load()).toMatchObject({ lastPacketId: 99, connected: false });
      });

      it("is a copy: changing the loaded or saved object does not change the store", () => {
        const r = record();
        store.save(r);
        r.lastPacketId = 1000;
        r.will!.payload[0] = 42;
        const loaded = store.load()!;
        expect(loaded.lastPacketId).toBe(7);
        expect(loaded.will!.payload[0]).toBe(0);
        loaded.connected = false;
        expect(store.load()!.connected).toBe(true);
      });
    });

    describe("subscriptions", () => {
      it("put, get, list", () => {
        expect(store.subscriptions()).toEqual([]);
        expect(store.getSubscription("a")).toBeUndefined();
        const a = subscription("a/+", { qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 1, subscriptionId: 5 });
        const b = subscription("$share/g/b/#");
        store.putSubscription(a);
        store.putSubscription(b);
        expect(store.getSubscription("a/+")).toStrictEqual(a);
        expect(store.getSubscription("$share/g/b/#")).toStrictEqual(b);
        const all = store.subscriptions();
        expect(all).toHaveLength(2);
        expect([...all].sort((x, y) => x.filter.localeCompare(y.filter))).toStrictEqual([b, a]);
      });

      it("put with the same filter replaces", () => {
        store.putSubscription(subscription("a", { qos: 0, subscriptionId: 1 }));
        store.putSubscription(subscription("a", { qos: 2 }));
        expect(store.subscriptions()).toHaveLength(1);
        expect(store.getSubscription("a")).toStrictEqual(subscription("a", { qos: 2 }));
      });

      it("filters are exact and case-sensitive", () => {
        store.putSubscription(subscription("A"));
        expect(store.getSubscription("a")).toBeUndefined();
        expect(store.deleteSubscription("a")).toBe(false);
        expect(store.subscriptions()).toHaveLength(1);
      });

      it("delete reports whether one existed", () => {
        store.putSubscription(subscription("a"));
        expect(store.deleteSubscription("a")).toBe(true);
        expect(store.deleteSubscription("a")).toBe(false);
        expect(store.getSubscription("a")).toBeUndefined();
        expect(store.subscriptions()).toEqual([]);
      });

      it("returns copies", () => {
        store.putSubscription(subscription("a"));
        store.getSubscription("a")!.qos = 2;
        store.subscriptions()[0]!.qos = 2;
        expect(store.getSubscription("a")!.qos).toBe(1);
      });
    });

    describe("outbound queue", () => {
      it("inFlightCount counts sent and released entries; queued(limit) lists only queued ones, oldest first", () => {
        const a = store.enqueue(delivery("a"), "sent", 1);
        store.enqueue(delivery("b"), "queued");
        const c = store.enqueue(delivery("c"), "queued");
        store.enqueue(delivery("d"), "queued");
        expect(store.inFlightCount()).toBe(1);
        expect(store.queued(2).map((e) => payloadOf(e.delivery))).toEqual(["b", "c"]);
        store.updateOutbound(c, "sent", 2);
        store.updateOutbound(a, "released");
        expect(store.inFlightCount()).toBe(2);
        expect(store.queued(10).map((e) => payloadOf(e.delivery))).toEqual(["b", "d"]);
        expect(store.queued(10).every((e) => e.state === "queued")).toBe(true);
        expect(store.inFlight().map((e) => [payloadOf(e.delivery), e.state, e.packetId])).toEqual([
          ["a", "released", 1],
          ["c", "sent", 2],
        ]);
      });

      it("enqueue returns increasing sequence numbers; outbound lists in that order", () => {
        const seqs = ["1", "2", "3"].map((p) => store.enqueue(delivery(p), "queued"));
        expect(seqs[1]!).toBeGreaterThan(seqs[0]!);
        expect(seqs[2]!).toBeGreaterThan(seqs[1]!);
        const entries = store.outbound(10);
        expect(entries.map((e) => e.seq)).toEqual(seqs);
        expect(entries.map((e) => payloadOf(e.delivery))).toEqual(["1", "2", "3"]);
        expect(entries.map((e) => e.state)).toEqual(["queued", "queued", "queued"]);
        expect(entries.every((e) => e.packetId === undefined)).toBe(true);
        expect(store.outboundCount()).toBe(3);
      });

      it("a new entry comes after every entry present, also after deletes", () => {
        const a = store.enqueue(delivery("a"), "queued");
        const b = store.enqueue(delivery("b"), "queued");
        const c = store.enqueue(delivery("c"), "queued");
        store.deleteOutbound(c);
        store.deleteOutbound(a);
        const d = store.enqueue(delivery("d"), "queued");
        expect(d).toBeGreaterThan(b);
        expect(store.outbound(10).map((e) => payloadOf(e.delivery))).toEqual(["b", "d"]);
        // Sequence numbers only order the entries present: they may be reused once freed.
      });

      it("keeps the delivery whole: bytes, properties, expiry, subscription identifiers", () => {
        const d: Delivery = {
          message: {
            topic: "x/y",
            payload: new Uint8Array([255, 0, 10]),
            qos: 2,
            retain: true,
            properties: { contentType: "c", correlationData: new Uint8Array([1]), userProperties: [["k", "v"]], payloadFormatIndicator: 1 },
            expiresAt: 1_700_000_123_000,
            origin: "pub-1",
          },
          qos: 1,
          retain: true,
          subscriptionIds: [3, 7],
        };
        store.enqueue(d, "sent", 12);
        const [e] = store.outbound(1);
        expect(e).toStrictEqual({ seq: e!.seq, delivery: d, state: "sent", packetId: 12 });
        expect(e!.delivery.message.payload).toBeInstanceOf(Uint8Array);
      });

      it("outbound(limit) returns at most limit entries, the oldest", () => {
        for (const p of ["1", "2", "3", "4"]) store.enqueue(delivery(p), "queued");
        expect(store.outbound(2).map((e) => payloadOf(e.delivery))).toEqual(["1", "2"]);
        expect(store.outbound(0)).toEqual([]);
        expect(store.outbound(100)).toHaveLength(4);
      });

      it("outboundByPacketId finds entries in flight and ignores queued ones", () => {
        const sent = store.enqueue(delivery("s"), "sent", 5);
        store.enqueue(delivery("q"), "queued", 6);
        const released = store.enqueue(delivery("r", 2), "released", 7);
        expect(store.outboundByPacketId(5)).toMatchObject({ seq: sent, state: "sent", packetId: 5 });
        expect(store.outboundByPacketId(6)).toBeUndefined();
        expect(store.outboundByPacketId(7)).toMatchObject({ seq: released, state: "released", packetId: 7 });
        expect(store.outboundByPacketId(8)).toBeUndefined();
      });

      it("a queued entry keeping an old packet identifier does not shadow the one in flight", () => {
        store.enqueue(delivery("old"), "queued", 9);
        const live = store.enqueue(delivery("live"), "sent", 9);
        expect(store.outboundByPacketId(9)?.seq).toBe(live);
      });

      it("updateOutbound changes the state, and the packet identifier when given", () => {
        const seq = store.enqueue(delivery("a", 2), "queued");
        store.updateOutbound(seq, "sent", 33);
        expect(store.outboundByPacketId(33)).toMatchObject({ seq, state: "sent", packetId: 33 });
        store.updateOutbound(seq, "released");
        expect(store.outboundByPacketId(33)).toMatchObject({ seq, state: "released", packetId: 33 });
        store.updateOutbound(seq + 1000, "sent", 1); // unknown seq: no effect
        expect(store.outboundCount()).toBe(1);
        expect(store.outboundByPacketId(1)).toBeUndefined();
      });

      it("updates keep the queue order", () => {
        const a = store.enqueue(delivery("a"), "queued");
        const b = store.enqueue(delivery("b"), "queued");
        store.updateOutbound(b, "sent", 2);
        store.updateOutbound(a, "sent", 1);
        expect(store.outbound(10).map((e) => e.seq)).toEqual([a, b]);
      });

      it("deleteOutbound removes one entry", () => {
        const a = store.enqueue(delivery("a"), "sent", 1);
        const b = store.enqueue(delivery("b"), "queued");
        store.deleteOutbound(a);
        expect(store.outbound(10).map((e) => e.seq)).toEqual([b]);
        expect(store.outboundByPacketId(1)).toBeUndefined();
        expect(store.outboundCount()).toBe(1);
        store.deleteOutbound(a); // twice: no effect
        expect(store.outboundCount()).toBe(1);
      });

      it("dropOldestQueued skips entries in flight", () => {
        const s1 = store.enqueue(delivery("s1"), "sent", 1);
        const r2 = store.enqueue(delivery("r2", 2), "released", 2);
        store.enqueue(delivery("q1"), "queued");
        const q2 = store.enqueue(delivery("q2"), "queued");
        expect(store.dropOldestQueued()).toEqual({ size: deliverySize(delivery("q1")) });
        expect(store.outbound(10).map((e) => e.seq)).toEqual([s1, r2, q2]);
        expect(store.dropOldestQueued()).toEqual({ size: deliverySize(delivery("q2")) });
        expect(store.dropOldestQueued()).toBeUndefined();
        expect(store.outbound(10).map((e) => e.seq)).toEqual([s1, r2]);
        expect(store.outboundCount()).toBe(2);
      });

      it("dropOldestQueued on an empty queue", () => {
        expect(store.dropOldestQueued()).toBeUndefined();
      });

      it("queuedBytes sums deliverySize over queued entries only, and follows updates and deletes", () => {
        expect(store.queuedBytes()).toBe(0);
        const big = delivery("x".repeat(1000));
        store.enqueue(delivery("in flight"), "sent", 1);
        const q1 = store.enqueue(big, "queued");
        store.enqueue(delivery("small"), "queued");
        expect(store.queuedBytes()).toBe(deliverySize(big) + deliverySize(delivery("small")));
        store.updateOutbound(q1, "sent", 2);
        expect(store.queuedBytes()).toBe(deliverySize(delivery("small")));
        store.dropOldestQueued();
        expect(store.queuedBytes()).toBe(0);
      });

      it("outboundCount counts every state", () => {
        expect(store.outboundCount()).toBe(0);
        store.enqueue(delivery("a"), "queued");
        store.enqueue(delivery("b"), "sent", 1);
        store.enqueue(delivery("c", 2), "released", 2);
        expect(store.outboundCount()).toBe(3);
      });

      describe("groups of sent QoS 1 entries (one row for several messages)", () => {
        it("lists a group's entries in its place in sequence order, each with its packet identifier", () => {
          const before = store.enqueue(delivery("before"), "sent", 1);
          const group = store.enqueueSentGroup([
            { delivery: delivery("g1"), packetId: 2 },
            { delivery: delivery("g2", 1, { subscriptionIds: [4] }), packetId: 3 },
          ]);
          const after = store.enqueue(delivery("after", 2), "released", 4);
          store.enqueue(delivery("queued"), "queued");
          expect(before).toBeLessThan(group);
          expect(group).toBeLessThan(after);
          const inFlight = store.inFlight();
          expect(inFlight.map((e) => [e.seq, e.packetId, e.state, e.grouped === true])).toStrictEqual([
            [before, 1, "sent", false],
            [group, 2, "sent", true],
            [group, 3, "sent", true],
            [after, 4, "released", false],
          ]);
          expect(inFlight[2]!.delivery).toStrictEqual(delivery("g2", 1, { subscriptionIds: [4] }));
          expect(store.outbound(10).map((e) => e.delivery.message.topic)).toStrictEqual(["t/before", "t/g1", "t/g2", "t/after", "t/queued"]);
          expect(store.outbound(2).map((e) => e.delivery.message.topic)).toStrictEqual(["t/before", "t/g1"]);
        });

        it("counts entries, not rows, and is never taken for a queued entry", () => {
          store.enqueueSentGroup([
            { delivery: delivery("a"), packetId: 1 },
            { delivery: delivery("b"), packetId: 2 },
            { delivery: delivery("c"), packetId: 3 },
          ]);
          store.enqueue(delivery("q"), "queued");
          expect(store.inFlightCount()).toBe(3);
          expect(store.outboundCount()).toBe(4);
          expect(store.queued(10).map((e) => e.delivery.message.topic)).toStrictEqual(["t/q"]);
          expect(store.queuedBytes()).toBe(deliverySize(delivery("q")));
          expect(store.dropOldestQueued()).toStrictEqual({ size: deliverySize(delivery("q")) });
          expect(store.inFlightCount()).toBe(3);
        });

        it("finds a grouped entry by packet identifier", () => {
          const seq = store.enqueueSentGroup([
            { delivery: delivery("a"), packetId: 10 },
            { delivery: delivery("b"), packetId: 11 },
          ]);
          expect(store.outboundByPacketId(11)).toMatchObject({ seq, packetId: 11, state: "sent", grouped: true });
          expect(store.outboundByPacketId(12)).toBeUndefined();
        });

        it("keepInGroup keeps the listed entries in order, and deletes the group when none is left", () => {
          const seq = store.enqueueSentGroup([
            { delivery: delivery("a"), packetId: 1 },
            { delivery: delivery("b"), packetId: 2 },
            { delivery: delivery("c"), packetId: 3 },
          ]);
          store.keepInGroup(seq, [3, 1]);
          expect(store.inFlight().map((e) => [e.seq, e.packetId])).toStrictEqual([
            [seq, 1],
            [seq, 3],
          ]);
          store.keepInGroup(seq, []);
          expect(store.inFlight()).toStrictEqual([]);
          expect(store.outboundCount()).toBe(0);
        });

        it("updateOutbound leaves a group alone; deleteOutbound deletes all of it", () => {
          const seq = store.enqueueSentGroup([
            { delivery: delivery("a"), packetId: 1 },
            { delivery: delivery("b"), packetId: 2 },
          ]);
          store.updateOutbound(seq, "released", 9);
          expect(store.inFlight().map((e) => [e.packetId, e.state])).toStrictEqual([
            [1, "sent"],
            [2, "sent"],
          ]);
          store.deleteOutbound(seq);
          expect(store.outboundCount()).toBe(0);
        });

        it("clear forgets groups", () => {
          store.enqueueSentGroup([
            { delivery: delivery("a"), packetId: 1 },
            { delivery: delivery("b"), packetId: 2 },
          ]);
          store.clear();
          expect(store.inFlight()).toStrictEqual([]);
        });

        it("keeps its own copies", () => {
          const d = delivery("a");
          store.enqueueSentGroup([
            { delivery: d, packetId: 1 },
            { delivery: delivery("b"), packetId: 2 },
          ]);
          d.message.topic = "changed";
          expect(store.inFlight()[0]!.delivery.message.topic).toBe("t/a");
        });
      });

      it("keeps its own copy of an enqueued delivery", () => {
        const d = delivery("a");
        store.enqueue(d, "queued");
        d.message.topic = "changed";
        d.message.payload[0] = 0x7a;
        d.qos = 0;
        const [e] = store.outbound(1);
        expect(e!.delivery).toStrictEqual(delivery("a"));
        e!.delivery.message.topic = "changed again";
        expect(store.outbound(1)[0]!.delivery.message.topic).toBe("t/a");
      });

      it("entries are copies", () => {
        const seq = store.enqueue(delivery("a"), "queued");
        const [e] = store.outbound(1);
        e!.state = "sent";
        e!.packetId = 4;
        expect(store.outbound(1)[0]).toMatchObject({ seq, state: "queued" });
        expect(store.outboundByPacketId(4)).toBeUndefined();
      });
    });

    describe("inbound QoS 2", () => {
      it("add, look up, mark routed, delete, count", () => {
        expect(store.inboundQos2Count()).toBe(0);
        expect(store.inboundQos2(1)).toBeUndefined();
        store.addInboundQos2(1, "m-1");
        store.addInboundQos2(65535, "m-2");
        expect(store.inboundQos2(1)).toEqual({ messageId: "m-1", routed: false });
        expect(store.inboundQos2(65535)).toEqual({ messageId: "m-2", routed: false });
        expect(store.inboundQos2(2)).toBeUndefined();
        store.markInboundQos2Routed(1);
        expect(store.inboundQos2(1)).toEqual({ messageId: "m-1", routed: true });
        expect(store.inboundQos2(65535)?.routed).toBe(false);
        expect(store.inboundQos2Count()).toBe(2);
        expect(store.deleteInboundQos2(1)).toBe(true);
        expect(store.deleteInboundQos2(1)).toBe(false);
        expect(store.inboundQos2(1)).toBeUndefined();
        expect(store.inboundQos2Count()).toBe(1);
      });

      it("adding the same identifier twice keeps the first message and its state", () => {
        store.addInboundQos2(3, "first");
        store.markInboundQos2Routed(3);
        store.addInboundQos2(3, "second");
        expect(store.inboundQos2Count()).toBe(1);
        expect(store.inboundQos2(3)).toEqual({ messageId: "first", routed: true });
        expect(store.deleteInboundQos2(3)).toBe(true);
        expect(store.inboundQos2(3)).toBeUndefined();
      });

      it("marking an unknown identifier routed changes nothing", () => {
        store.markInboundQos2Routed(7);
        expect(store.inboundQos2(7)).toBeUndefined();
        expect(store.inboundQos2Count()).toBe(0);
      });
    });

    describe("seen message identifiers", () => {
      it("remember, look up, forget those remembered before a time", () => {
        expect(store.seenMessage("a")).toBe(false);
        store.rememberMessage("a", 1_000);
        store.rememberMessage("b", 2_000);
        expect(store.seenMessage("a")).toBe(true);
        expect(store.seenMessage("b")).toBe(true);
        store.forgetMessagesBefore(2_000);
        expect(store.seenMessage("a")).toBe(false);
        expect(store.seenMessage("b")).toBe(true);
        store.rememberMessage("b", 500); // remembered again: the time given last counts
        store.forgetMessagesBefore(1_000);
        expect(store.seenMessage("b")).toBe(false);
      });
    });

    describe("clear", () => {
      it("forgets the record, subscriptions, queue, QoS 2 state and seen messages", () => {
        store.save(record());
        store.putSubscription(subscription("a"));
        store.enqueue(delivery("x"), "sent", 1);
        store.enqueue(delivery("y"), "queued");
        store.addInboundQos2(4, "m-4");
        store.rememberMessage("seen", 1);
        store.clear();
        expect(store.load()).toBeUndefined();
        expect(store.subscriptions()).toEqual([]);
        expect(store.getSubscription("a")).toBeUndefined();
        expect(store.outboundCount()).toBe(0);
        expect(store.outbound(10)).toEqual([]);
        expect(store.outboundByPacketId(1)).toBeUndefined();
        expect(store.dropOldestQueued()).toBeUndefined();
        expect(store.queuedBytes()).toBe(0);
        expect(store.inboundQos2Count()).toBe(0);
        expect(store.inboundQos2(4)).toBeUndefined();
        expect(store.seenMessage("seen")).toBe(false);
      });

      it("leaves a usable store", () => {
        store.save(record());
        const before = store.enqueue(delivery("x"), "queued");
        store.clear();
        store.save(record({ clientId: "again" }));
        store.putSubscription(subscription("b"));
        const after = store.enqueue(delivery("z"), "queued");
        expect(store.load()!.clientId).toBe("again");
        expect(store.subscriptions().map((s) => s.filter)).toEqual(["b"]);
        expect(store.outbound(10).map((e) => e.seq)).toEqual([after]);
        expect(after).toBeTypeOf("number");
        expect(before).toBeTypeOf("number");
      });
    });
  });
}
