import { deliverySize } from "./outbound";
import type { Subscription, Delivery } from "./types";
import type { InboundQos2, OutboundEntry, OutboundState, SentEntry, SessionRecord, SessionStore } from "./store";

/** In-memory SessionStore: for tests and for anything that needs no durability. */
export class MemorySessionStore implements SessionStore {
  #record: SessionRecord | undefined;
  #subscriptions = new Map<string, Subscription>();
  /** Entries, and groups of entries stored as one (`enqueueSentGroup`), by sequence number. */
  #outbound = new Map<number, OutboundEntry | { seq: number; group: SentEntry[] }>();
  #nextSeq = 1;
  #qos2 = new Map<number, InboundQos2>();
  #seen = new Map<string, number>();

  load(): SessionRecord | undefined {
    return this.#record && structuredCopy(this.#record);
  }
  save(record: SessionRecord): void {
    this.#record = structuredCopy(record);
  }
  clear(): void {
    this.#record = undefined;
    this.#subscriptions.clear();
    this.#outbound.clear();
    this.#qos2.clear();
    this.#seen.clear();
  }

  subscriptions(): Subscription[] {
    return [...this.#subscriptions.values()].map((s) => ({ ...s }));
  }
  getSubscription(filter: string): Subscription | undefined {
    const s = this.#subscriptions.get(filter);
    return s && { ...s };
  }
  putSubscription(subscription: Subscription): void {
    this.#subscriptions.set(subscription.filter, { ...subscription });
  }
  deleteSubscription(filter: string): boolean {
    return this.#subscriptions.delete(filter);
  }

  enqueue(delivery: Delivery, state: OutboundState, packetId?: number): number {
    const seq = this.#nextSeq++;
    this.#outbound.set(seq, { seq, delivery: structuredCopy(delivery), state, ...(packetId !== undefined && { packetId }) });
    return seq;
  }
  enqueueSentGroup(entries: SentEntry[]): number {
    const seq = this.#nextSeq++;
    this.#outbound.set(seq, { seq, group: entries.map((e) => ({ packetId: e.packetId, delivery: structuredCopy(e.delivery) })) });
    return seq;
  }
  keepInGroup(seq: number, packetIds: number[]): void {
    const row = this.#outbound.get(seq);
    if (!row || !("group" in row)) return;
    const keep = new Set(packetIds);
    row.group = row.group.filter((e) => keep.has(e.packetId));
    if (row.group.length === 0) this.#outbound.delete(seq);
  }
  /** Every entry in sequence order, a group's expanded in its own order. */
  *#entries(): Generator<OutboundEntry> {
    for (const row of this.#outbound.values()) {
      if ("group" in row) {
        for (const e of row.group) yield { seq: row.seq, delivery: e.delivery, packetId: e.packetId, state: "sent", grouped: true };
      } else {
        yield row;
      }
    }
  }
  outbound(limit: number): OutboundEntry[] {
    const out: OutboundEntry[] = [];
    for (const e of this.#entries()) {
      if (out.length >= limit) break;
      out.push(copyEntry(e));
    }
    return out;
  }
  inFlightCount(): number {
    let n = 0;
    for (const e of this.#entries()) if (e.state !== "queued") n++;
    return n;
  }
  inFlight(): OutboundEntry[] {
    return [...this.#entries()].filter((e) => e.state !== "queued").map(copyEntry);
  }
  queued(limit: number): OutboundEntry[] {
    const out: OutboundEntry[] = [];
    for (const e of this.#entries()) {
      if (out.length >= limit) break;
      if (e.state === "queued") out.push(copyEntry(e));
    }
    return out;
  }
  outboundCount(): number {
    let n = 0;
    for (const _ of this.#entries()) n++;
    return n;
  }
  outboundByPacketId(packetId: number): OutboundEntry | undefined {
    for (const e of this.#entries()) if (e.packetId === packetId && e.state !== "queued") return copyEntry(e);
    return undefined;
  }
  updateOutbound(seq: number, state: OutboundState, packetId?: number): void {
    const e = this.#outbound.get(seq);
    if (!e || "group" in e) return;
    e.state = state;
    if (packetId !== undefined) e.packetId = packetId;
  }
  deleteOutbound(seq: number): void {
    this.#outbound.delete(seq);
  }
  dropOldestQueued(): { size: number } | undefined {
    for (const e of this.#entries()) {
      if (e.state !== "queued") continue;
      this.#outbound.delete(e.seq);
      return { size: deliverySize(e.delivery) };
    }
    return undefined;
  }
  queuedBytes(): number {
    let bytes = 0;
    for (const e of this.#entries()) if (e.state === "queued") bytes += deliverySize(e.delivery);
    return bytes;
  }

  inboundQos2(packetId: number): InboundQos2 | undefined {
    const entry = this.#qos2.get(packetId);
    return entry && { ...entry };
  }
  addInboundQos2(packetId: number, messageId: string): void {
    if (!this.#qos2.has(packetId)) this.#qos2.set(packetId, { messageId, routed: false });
  }
  markInboundQos2Routed(packetId: number): void {
    const entry = this.#qos2.get(packetId);
    if (entry) entry.routed = true;
  }
  deleteInboundQos2(packetId: number): boolean {
    return this.#qos2.delete(packetId);
  }
  inboundQos2Count(): number {
    return this.#qos2.size;
  }

  seenMessage(messageId: string): boolean {
    return this.#seen.has(messageId);
  }
  rememberMessage(messageId: string, at: number): void {
    this.#seen.set(messageId, at);
  }
  forgetMessagesBefore(at: number): void {
    for (const [id, when] of this.#seen) if (when < at) this.#seen.delete(id);
  }
}

function copyEntry(e: OutboundEntry): OutboundEntry {
  return { ...e, delivery: structuredCopy(e.delivery) };
}

function structuredCopy<T>(value: T): T {
  // Node, workerd and browsers have structuredClone (core is built without their types).
  return (globalThis as unknown as { structuredClone<V>(v: V): V }).structuredClone(value);
}
