// Bounds towards a client: the in-flight window (messages and bytes), the queue behind it
// (messages and bytes, connected or not), and QoS 0 towards a client that does not keep up.
// Every drop is reported as a `dropped` effect, which the host counts per client and logs.
import { describe, expect, it } from "vitest";
import { ack, delivery, Harness, pick, text, type EffectOf } from "./harness";
import type { Effect } from "../../../core/session/types";

const MB = 1_000_000;
const big = (seq: number, size = MB) => delivery("big/t", String(seq).padEnd(size, "."));
const seqOf = (payload: Uint8Array) => Number.parseInt(text(payload.subarray(0, 8)), 10);
/** PUBLISH packets sent (without the harness's byte-for-byte check, slow on megabyte payloads). */
const publishes = (effects: Effect[]) =>
  pick(effects, "send").flatMap((e) => (e.packet.type === "publish" ? [e.packet] : []));
const drops = (effects: Effect[]): Record<string, number> =>
  Object.fromEntries(pick(effects, "dropped").map((d: EffectOf<"dropped">) => [d.drop, d.count]));

describe("13 flow control: in-flight window", () => {
  it("the window is the smaller of the client's Receive Maximum and the broker's maximum: the rest waits in the queue", () => {
    const h = new Harness({ maxInflightMessages: 3 });
    h.connectPersistent(4); // 3.1.1: the client announces no Receive Maximum (65,535)
    const effects = h.deliver(...Array.from({ length: 10 }, (_, i) => delivery("a", String(i))));
    expect(h.sentOf(effects, "publish").map((p) => text(p.payload))).toEqual(["0", "1", "2"]);
    expect(h.store.inFlightCount()).toBe(3);
    expect(h.store.queued(100)).toHaveLength(7);
    // Each PUBACK lets the next one go, in order.
    const next = h.packet(ack("puback", h.sentOf(effects, "publish")[0]!.packetId!));
    expect(h.sentOf(next, "publish").map((p) => text(p.payload))).toEqual(["3"]);
  });

  it("the window is bounded in bytes too; one message always fits", () => {
    const h = new Harness({ maxInflightBytes: 3.5 * MB, maxQueuedBytes: 100 * MB });
    h.connectPersistent(4);
    const effects = h.deliver(...Array.from({ length: 10 }, (_, i) => big(i)));
    expect(publishes(effects)).toHaveLength(3);
    const one = new Harness({ maxInflightBytes: 10 });
    one.connectPersistent(4);
    expect(publishes(one.deliver(big(0), big(1)))).toHaveLength(1);
  });

  it("reconnecting with 40 MB pending sends it in pieces as the client acknowledges, nothing lost (issue 10, case 1)", () => {
    const h = new Harness({ maxInflightBytes: 4 * MB, maxQueuedBytes: 64 * MB });
    h.connectPersistent(4);
    h.packet({ type: "disconnect" });
    h.deliver(...Array.from({ length: 40 }, (_, i) => big(i)));
    expect(h.store.outboundCount()).toBe(40);
    let effects = h.connectPersistent(4);
    const received: number[] = [];
    for (let round = 0; round < 40; round++) {
      const sent = publishes(effects);
      if (sent.length === 0) break;
      // No piece of what goes out at once is above the window.
      expect(sent.reduce((n, p) => n + p.payload.byteLength, 0)).toBeLessThanOrEqual(4 * MB);
      received.push(...sent.map((p) => seqOf(p.payload)));
      effects = sent.flatMap((p) => h.packet(ack("puback", p.packetId!)));
    }
    expect(received).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});

describe("13 flow control: the queue behind the window", () => {
  it("a connected client that stops acknowledging: the queue keeps the newest, drops the oldest, and says how many", () => {
    const h = new Harness({ maxInflightMessages: 2, maxQueuedMessages: 3 });
    h.connectPersistent(5);
    const effects = h.deliver(...Array.from({ length: 10 }, (_, i) => delivery("a", String(i))));
    expect(h.sentOf(effects, "publish").map((p) => text(p.payload))).toEqual(["0", "1"]);
    expect(h.store.queued(10).map((e) => text(e.delivery.message.payload))).toEqual(["7", "8", "9"]);
    expect(drops(effects)).toEqual({ queue: 5 });
  });

  it("the queue is bounded in bytes: the oldest go first; a message larger than the bound is dropped itself", () => {
    const h = new Harness({ maxInflightMessages: 1, maxQueuedBytes: 2.5 * MB });
    h.connectPersistent(4);
    const effects = h.deliver(...Array.from({ length: 6 }, (_, i) => big(i)));
    expect(h.store.queued(10).map((e) => seqOf(e.delivery.message.payload))).toEqual([4, 5]);
    expect(drops(effects)).toEqual({ queue: 3 });
    expect(drops(h.deliver(big(9, 3 * MB)))).toEqual({ queue: 1 });
    expect(h.store.queued(10).map((e) => seqOf(e.delivery.message.payload))).toEqual([4, 5]);
  });

  it("offline, the same bounds apply, counted as drops", () => {
    const h = new Harness({ maxQueuedMessages: 2 });
    h.connectPersistent(5);
    h.packet({ type: "disconnect" });
    expect(drops(h.deliver(...["1", "2", "3", "4"].map((s) => delivery("a", s))))).toEqual({ queue: 2 });
  });

  it("the queue's byte count survives a wake (read back from the store)", () => {
    const h = new Harness({ maxInflightMessages: 1, maxQueuedBytes: 2.5 * MB });
    h.connectPersistent(4);
    h.deliver(big(0), big(1), big(2));
    h.rehydrate();
    expect(drops(h.deliver(big(3)))).toEqual({ queue: 1 });
    expect(h.store.queued(10).map((e) => seqOf(e.delivery.message.payload))).toEqual([2, 3]);
  });
});

describe("13 flow control: QoS 0 towards a client that does not keep up", () => {
  it("over the backlog bound, QoS 0 messages are dropped and counted; QoS 1 still goes through the window", () => {
    const h = new Harness({ maxClientBacklogBytes: 1000 });
    h.connect(5);
    const r = h.session.deliver([delivery("a", "x", 0), delivery("a", "y", 1)], h.now, 5000);
    expect(h.sentOf(r.effects, "publish").map((p) => [text(p.payload), p.qos])).toEqual([["y", 1]]);
    expect(drops(r.effects)).toEqual({ qos0: 1 });
  });

  it("what one call sends counts towards the backlog", () => {
    const h = new Harness({ maxClientBacklogBytes: 2500 });
    h.connect(5);
    const qos0 = Array.from({ length: 10 }, (_, i) => delivery("a", String(i).padEnd(1000, "."), 0));
    const r = h.session.deliver(qos0, h.now, 0);
    expect(h.sentOf(r.effects, "publish")).toHaveLength(3);
    expect(drops(r.effects)).toEqual({ qos0: 7 });
  });

  it("within the bound nothing is dropped and no drop is reported", () => {
    const h = new Harness();
    h.connect(5);
    const r = h.session.deliver([delivery("a", "x", 0)], h.now, 10);
    expect(h.sentOf(r.effects, "publish")).toHaveLength(1);
    expect(pick(r.effects, "dropped")).toEqual([]);
  });
});
