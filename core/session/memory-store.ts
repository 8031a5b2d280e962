import { deliverySize } from "./outbound";
import type { Subscription, Delivery } from "./types";
import type { InboundQos2, OutboundEntry, OutboundState, SessionRecord, SessionStore } from "./store";

/** In-memory SessionStore: for tests and for anything that needs no durability. */
export class MemorySessionStore implements SessionStore {
  #record: SessionRecord | undefined;
  #subscriptions = new Map<string, Subscription>();
  #outbound = new Map<number, OutboundEntry>();
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
  outbound(limit: number): OutboundEntry[] {
    const out: OutboundEntry[] = [];
    for (const e of this.#outbound.values()) {
      if (out.length >= limit) break;
      out.push(copyEntry(e));
    }
    return out;
  }
  inFlightCount(): number {
    let n = 0;
    for (const e of this.#outbound.values()) if (e.state !== "queued") n++;
    return n;
  }
  inFlight(): OutboundEntry[] {
    return [...this.#outbound.values()].filter((e) => e.state !== "queued").map(copyEntry);
  }
  queued(limit: number): OutboundEntry[] {
    const out: OutboundEntry[] = [];
    for (const e of this.#outbound.values()) {
      if (out.length >= limit) break;
      if (e.state === "queued") out.push(copyEntry(e));
    }
    return out;
  }
  outboundCount(): number {
    return this.#outbound.size;
  }
  outboundByPacketId(packetId: number): OutboundEntry | undefined {
    for (const e of this.#outbound.values()) if (e.packetId === packetId && e.state !== "queued") return copyEntry(e);
    return undefined;
  }
  updateOutbound(seq: number, state: OutboundState, packetId?: number): void {
    const e = this.#outbound.get(seq);
    if (!e) return;
    e.state = state;
    if (packetId !== undefined) e.packetId = packetId;
  }
  deleteOutbound(seq: number): void {
    this.#outbound.delete(seq);
  }
  dropOldestQueued(): { size: number } | undefined {
    for (const e of this.#outbound.values()) {
      if (e.state !== "queued") continue;
      this.#outbound.delete(e.seq);
      return { size: deliverySize(e.delivery) };
    }
    return undefined;
  }
  queuedBytes(): number {
    let bytes = 0;
    for (const e of this.#outbound.values()) if (e.state === "queued") bytes += deliverySize(e.delivery);
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
