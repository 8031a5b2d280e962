/**
 * Harness for the session state machine tests (01-connect ... 12-protocol-errors): a Session
 * over a MemorySessionStore, a clock, packet builders, and checks that every sent packet's
 * bytes decode (with the codec) to the packet the effect carries.
 */
import { expect } from "vitest";
import { decodePacket } from "../../../core/mqtt/codec/index.js";
import type {
  AckPacket,
  ConnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubscriptionRequest,
  Will,
} from "../../../core/mqtt/packets.js";
import { MemorySessionStore } from "../../../core/session/memory-store.js";
import { Session } from "../../../core/session/session.js";
import { defaultLimits, type BrokerLimits, type Delivery, type Effect, type Message } from "../../../core/session/types.js";

export const T0 = 1_700_000_000_000;
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

type Kind = Effect["kind"];
export type EffectOf<K extends Kind> = Extract<Effect, { kind: K }>;
/** The packet shape of a type (the four acks share AckPacket, whose `type` is a union). */
type SendOf<T extends Packet["type"]> = T extends AckPacket["type"] ? AckPacket : Extract<Packet, { type: T }>;

/** Effects of one kind, in order. */
export function pick<K extends Kind>(effects: Effect[], kind: K): EffectOf<K>[] {
  return effects.filter((e): e is EffectOf<K> => e.kind === kind);
}

/** Packets sent, in order; every one's bytes checked against the packet. */
export function sent(effects: Effect[], version: ProtocolVersion): Packet[] {
  return pick(effects, "send").map((e) => {
    expectBytesMatch(e, version);
    return e.packet;
  });
}

/** Sent packets of one type. */
export function sentOf<T extends Packet["type"]>(effects: Effect[], version: ProtocolVersion, type: T): SendOf<T>[] {
  return sent(effects, version).filter((p): p is SendOf<T> => p.type === type);
}

/** The one sent packet of a type. */
export function one<T extends Packet["type"]>(effects: Effect[], version: ProtocolVersion, type: T): SendOf<T> {
  const all = sentOf(effects, version, type);
  expect(all, `exactly one ${type} in ${describeEffects(effects)}`).toHaveLength(1);
  return all[0]!;
}

export function kinds(effects: Effect[]): string[] {
  return effects.map((e) => (e.kind === "send" ? `send:${e.packet.type}` : e.kind));
}

export function describeEffects(effects: Effect[]): string {
  return kinds(effects).join(", ");
}

/** The bytes of a send effect decode to its packet (server-to-client direction). */
export function expectBytesMatch(effect: EffectOf<"send">, version: ProtocolVersion): void {
  const r = decodePacket(effect.bytes, { protocolVersion: version });
  if (!r.ok) throw new Error(`sent bytes of ${effect.packet.type} do not decode: ${r.error.message}`);
  expect(normalise(r.packet, version)).toStrictEqual(normalise(effect.packet, version));
}

const ACK_LIKE = new Set(["puback", "pubrec", "pubrel", "pubcomp", "disconnect", "auth"]);

/** A canonical deep copy: undefined keys, empty properties and default reason codes (5.0) dropped. */
export function normalise(packet: unknown, version: ProtocolVersion): unknown {
  const copy = deepCopy(packet) as Record<string, unknown>;
  if (version !== 5) return copy;
  const p = copy.properties;
  if (p && typeof p === "object" && Object.keys(p).length === 0) delete copy.properties;
  if (ACK_LIKE.has(copy.type as string) && copy.reasonCode === 0) delete copy.reasonCode;
  return copy;
}

function deepCopy(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(deepCopy);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = deepCopy(x);
    return out;
  }
  return v;
}

// ------------------------------------------------------------------ packet builders

export interface ConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepAlive?: number;
  will?: Will;
  username?: string;
  properties?: Properties;
}

export function connectPacket(version: ProtocolVersion, o: ConnectOptions = {}): ConnectPacket {
  return {
    type: "connect",
    protocolName: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    clean: o.clean ?? true,
    keepAlive: o.keepAlive ?? 60,
    clientId: o.clientId ?? "c1",
    ...(o.will && { will: o.will }),
    ...(o.username !== undefined && { username: o.username }),
    ...(o.properties && { properties: o.properties }),
  };
}

export function publish(
  topic: string,
  payload: string | Uint8Array,
  qos: QoS = 0,
  packetId?: number,
  extra: Partial<PublishPacket> = {},
): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: typeof payload === "string" ? bytes(payload) : payload,
    qos,
    retain: false,
    dup: false,
    ...(qos > 0 && { packetId: packetId ?? 1 }),
    ...extra,
  };
}

export function ack(type: AckPacket["type"], packetId: number, reasonCode?: number): AckPacket {
  return { type, packetId, ...(reasonCode !== undefined && { reasonCode }) };
}

export function sub(topicFilter: string, qos: QoS = 0, o: Partial<SubscriptionRequest> = {}): SubscriptionRequest {
  return { topicFilter, qos, ...o };
}

export function message(topic: string, payload: string, qos: QoS = 1, extra: Partial<Message> = {}): Message {
  return { topic, payload: bytes(payload), qos, retain: false, ...extra };
}

export function delivery(topic: string, payload: string, qos: QoS = 1, extra: Partial<Delivery> = {}): Delivery {
  return { message: message(topic, payload, qos), qos, retain: false, ...extra };
}

// ------------------------------------------------------------------ the harness

/** A Session over a MemorySessionStore, with a clock and the protocol version of the last CONNECT. */
export class Harness {
  readonly store: MemorySessionStore;
  readonly limits: BrokerLimits;
  session: Session;
  now = T0;
  version: ProtocolVersion = 4;

  constructor(limits: Partial<BrokerLimits> = {}, store = new MemorySessionStore()) {
    this.store = store;
    this.limits = { ...defaultLimits, ...limits };
    this.session = new Session(this.store, this.limits);
  }

  /** A new Session object over the same store, as after hibernation or eviction. */
  rehydrate(): void {
    this.session = new Session(this.store, this.limits);
  }

  advance(ms: number): number {
    this.now += ms;
    return this.now;
  }

  connect(version: ProtocolVersion, o: ConnectOptions = {}, assigned = false): Effect[] {
    this.version = version;
    return this.session.connect(connectPacket(version, o), this.now, assigned);
  }

  /** Connect and return the CONNACK (checking it was sent and its bytes). */
  connack(version: ProtocolVersion, o: ConnectOptions = {}, assigned = false) {
    const effects = this.connect(version, o, assigned);
    return { effects, connack: one(effects, version, "connack") };
  }

  /** 5.0 connect with Clean Start 0 and a session expiry, for persistent-session tests. */
  connectPersistent(version: 4 | 5, o: ConnectOptions = {}, expiry = 3600): Effect[] {
    if (version === 4) return this.connect(4, { clean: false, ...o });
    return this.connect(5, { clean: false, ...o, properties: { sessionExpiryInterval: expiry, ...o.properties } });
  }

  packet(p: Packet): Effect[] {
    return this.session.packet(p, this.now);
  }

  deliver(...ds: Delivery[]): Effect[] {
    const r = this.session.deliver(ds, this.now);
    expect(r.live).toBe(true);
    return r.effects;
  }

  /** Subscribe and complete it; returns the SUBACK reason codes. */
  subscribe(packetId: number, ...subs: SubscriptionRequest[]): number[] {
    const effects = this.packet({ type: "subscribe", packetId, subscriptions: subs });
    const s = pick(effects, "subscribe")[0];
    const done = s ? this.session.subscribed(s.ticket) : effects;
    return one(done, this.version, "suback").reasonCodes;
  }

  sent(effects: Effect[]): Packet[] {
    return sent(effects, this.version);
  }
  one<T extends Packet["type"]>(effects: Effect[], type: T): SendOf<T> {
    return one(effects, this.version, type);
  }
  sentOf<T extends Packet["type"]>(effects: Effect[], type: T): SendOf<T>[] {
    return sentOf(effects, this.version, type);
  }
}
