// QoS 1 deliveries sent before they are stored (Outbound.addSentDeferred, Session.deliver
// with `defer`): acknowledged ones are never written, the rest are written together in one
// row. MQTT 3.1.1 / 5.0 section 4.3.2 (at least once) and 4.4 (resending on reconnect).
import { describe, expect, it } from "vitest";
import { ReasonCode } from "../../../core/mqtt/packets.js";
import { MemorySessionStore } from "../../../core/session/memory-store.js";
import type { SentEntry } from "../../../core/session/store.js";
import type { Delivery } from "../../../core/session/types.js";
import { Harness, ack, delivery, text } from "./harness.js";

/** A memory store that counts the rows each outbound write touches, as SQLite bills them. */
class CountingStore extends MemorySessionStore {
  rowsWritten = 0;
  override enqueue(...args: Parameters<MemorySessionStore["enqueue"]>): number {
    this.rowsWritten++;
    return super.enqueue(...args);
  }
  override enqueueSentGroup(entries: SentEntry[]): number {
    this.rowsWritten++;
    return super.enqueueSentGroup(entries);
  }
  override keepInGroup(seq: number, packetIds: number[]): void {
    this.rowsWritten++;
    super.keepInGroup(seq, packetIds);
  }
  override deleteOutbound(seq: number): void {
    this.rowsWritten++;
    super.deleteOutbound(seq);
  }
  override updateOutbound(...args: Parameters<MemorySessionStore["updateOutbound"]>): void {
    this.rowsWritten++;
    super.updateOutbound(...args);
  }
}

function setup(limits = {}) {
  const store = new CountingStore();
  const h = new Harness(limits, store);
  h.connectPersistent(5);
  const deferred = (...ds: Delivery[]) => {
    const r = h.session.deliver(ds, h.now, 0, true);
    expect(r.live).toBe(true);
    return { publishes: h.sentOf(r.effects, "publish"), tickets: h.session.takeDeferredDeliveries() };
  };
  return { h, store, deferred };
}

const payloads = (ps: { payload: Uint8Array }[]) => ps.map((p) => text(p.payload));

describe("16 deferred storage of QoS 1 deliveries", () => {
  it("sends at once; a message acknowledged before it is stored is never written", () => {
    const { h, store, deferred } = setup();
    const { publishes, tickets } = deferred(delivery("a", "1"), delivery("a", "2"));
    expect(publishes.map((p) => [p.qos, p.packetId])).toEqual([
      [1, 1],
      [1, 2],
    ]);
    expect(tickets).toHaveLength(2);
    expect(tickets.map((t) => h.session.deliverySettled(t))).toEqual([false, false]);
    expect(h.session.unstoredDeliveries).toBe(2);
    h.packet(ack("puback", 1));
    expect(tickets.map((t) => h.session.deliverySettled(t))).toEqual([true, false]);
    h.packet(ack("puback", 2));
    expect(tickets.map((t) => h.session.deliverySettled(t))).toEqual([true, true]);
    h.session.storeDeliveries();
    h.session.flushWrites();
    expect(store.rowsWritten).toBe(0);
    expect(store.outboundCount()).toBe(0);
  });

  it("the unacknowledged are stored in one row, deleted with one more once all are acknowledged", () => {
    const { h, store, deferred } = setup();
    const { tickets } = deferred(delivery("a", "1"), delivery("a", "2"), delivery("a", "3"), delivery("a", "4"));
    h.packet(ack("puback", 2));
    h.session.storeDeliveries();
    expect(tickets.every((t) => h.session.deliverySettled(t))).toBe(true);
    expect(store.rowsWritten).toBe(1);
    expect(store.inFlight().map((e) => [e.packetId, e.grouped])).toEqual([
      [1, true],
      [3, true],
      [4, true],
    ]);
    for (const id of [1, 3, 4]) h.packet(ack("puback", id));
    h.session.flushWrites();
    expect(store.rowsWritten).toBe(2);
    expect(store.outboundCount()).toBe(0);
  });

  it("a single unacknowledged message is one plain row", () => {
    const { h, store, deferred } = setup();
    deferred(delivery("a", "1"));
    h.session.storeDeliveries();
    expect(store.inFlight().map((e) => [e.packetId, e.grouped === true])).toEqual([[1, false]]);
    expect(store.rowsWritten).toBe(1);
  });

  it("a group that lost entries is rewritten, so a wake from hibernation sees only the ones in flight", () => {
    const { h, store, deferred } = setup();
    deferred(delivery("a", "1"), delivery("a", "2"), delivery("a", "3"));
    h.session.storeDeliveries();
    h.packet(ack("puback", 2));
    expect(h.session.unflushedWrites).toBe(true);
    h.session.flushWrites();
    expect(store.rowsWritten).toBe(2); // the group, then its rewrite
    h.rehydrate();
    // The window counts two in flight; packet identifier 2 is free again.
    h.packet({ type: "disconnect" });
    const resent = h.sentOf(h.connectPersistent(5), "publish");
    expect(resent.map((p) => [p.packetId, p.dup, text(p.payload)])).toEqual([
      [1, true, "1"],
      [3, true, "3"],
    ]);
  });

  it("a lost connection stores what was sent and not acknowledged; the next one gets it again with DUP [MQTT-4.4.0-1]", () => {
    const { h, store, deferred } = setup();
    deferred(delivery("a", "1"), delivery("a", "2"));
    h.packet(ack("puback", 1));
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.advance(10));
    expect(h.session.unstoredDeliveries).toBe(0);
    expect(store.inFlight().map((e) => e.packetId)).toEqual([2]);
    h.rehydrate();
    const resent = h.sentOf(h.connectPersistent(5), "publish");
    expect(resent.map((p) => [p.packetId, p.dup, text(p.payload)])).toEqual([[2, true, "2"]]);
  });

  it("a session that ends with its connection stores nothing, and its deliveries are settled", () => {
    const store = new CountingStore();
    const h = new Harness({}, store);
    h.connect(5); // Clean Start, no expiry
    h.session.deliver([delivery("a", "1")], h.now, 0, true);
    const [ticket] = h.session.takeDeferredDeliveries();
    h.session.connectionLost(ReasonCode.UnspecifiedError, h.now);
    expect(h.session.deliverySettled(ticket!)).toBe(true);
    expect(store.rowsWritten).toBe(0);
  });

  it("a write to the queue stores the deferred ones first, so a reconnect resends in the order sent", () => {
    const { h, store, deferred } = setup({ maxInflightMessages: 2 });
    const first = deferred(delivery("a", "1"), delivery("a", "2"), delivery("a", "3"));
    expect(payloads(first.publishes)).toEqual(["1", "2"]); // "3" waits in the queue
    expect(first.tickets).toHaveLength(2);
    expect(first.tickets.every((t) => h.session.deliverySettled(t))).toBe(true); // stored with the queue write
    const drained = h.sentOf(h.packet(ack("puback", 1)), "publish");
    expect(payloads(drained)).toEqual(["3"]);
    h.session.connectionLost(ReasonCode.KeepAliveTimeout, h.now);
    h.rehydrate();
    const resent = h.sentOf(h.connectPersistent(5), "publish");
    expect(payloads(resent)).toEqual(["2", "3"]);
    expect(resent.every((p) => p.dup)).toBe(true);
    expect(store.outboundCount()).toBe(2);
  });

  it("QoS 2 is stored at once even when deferring is asked for", () => {
    const { h, store } = setup();
    h.session.deliver([delivery("a", "x", 2)], h.now, 0, true);
    expect(h.session.takeDeferredDeliveries()).toEqual([]);
    expect(store.inFlight().map((e) => [e.packetId, e.state])).toEqual([[1, "sent"]]);
  });

  it("packet identifiers of deferred messages are in use until acknowledged", () => {
    const { h, deferred } = setup();
    deferred(delivery("a", "1"));
    h.packet(ack("puback", 1));
    const next = deferred(delivery("a", "2"));
    expect(next.publishes[0]!.packetId).toBe(2);
    const again = deferred(delivery("a", "3"));
    expect(again.publishes[0]!.packetId).toBe(3);
  });
});
