/**
 * MQTT 5.0 properties (section 2.2.2): the table of every property with its identifier,
 * data type, the packets that may carry it and whether it may repeat, and the decoder and
 * encoder driven by that table.
 */
import { type Properties, PacketType, ReasonCode } from "../packets";
import { malformed, protocolError, violation } from "./errors";
import { binarySize, type Reader, stringSize, vbiLength, type Writer } from "./primitives";

/** A packet kind is a bit: 1 << packet type, plus one bit for the Will Properties. */
export const WILL = 1 << 16;
export function kindOf(type: number): number {
  return 1 << type;
}

const CONNECT = 1 << PacketType.CONNECT;
const CONNACK = 1 << PacketType.CONNACK;
const PUBLISH = 1 << PacketType.PUBLISH;
const ACKS =
  (1 << PacketType.PUBACK) |
  (1 << PacketType.PUBREC) |
  (1 << PacketType.PUBREL) |
  (1 << PacketType.PUBCOMP);
const SUBSCRIBE = 1 << PacketType.SUBSCRIBE;
const SUBACK = 1 << PacketType.SUBACK;
const UNSUBSCRIBE = 1 << PacketType.UNSUBSCRIBE;
const UNSUBACK = 1 << PacketType.UNSUBACK;
const DISCONNECT = 1 << PacketType.DISCONNECT;
const AUTH = 1 << PacketType.AUTH;
const ALL = CONNECT | CONNACK | PUBLISH | WILL | ACKS | SUBSCRIBE | SUBACK | UNSUBSCRIBE;
const EVERY = ALL | UNSUBACK | DISCONNECT | AUTH;

export type PropertyType = "byte" | "u16" | "u32" | "vbi" | "string" | "binary" | "pair";

export interface PropertyDef {
  id: number;
  name: keyof Properties;
  type: PropertyType;
  /** Kinds (bits) of packets that may carry it; elsewhere it is a Protocol Error. */
  packets: number;
  /** Stored as an array (User Property, Subscription Identifier). */
  array?: true;
  /** Kinds where it may appear more than once; elsewhere a repeat is a Protocol Error. */
  repeat?: number;
  min?: number;
  max?: number;
  /** Reason code for a value outside min..max; Protocol Error by default. */
  rangeCode?: number;
}

// Section 2.2.2.2, table 2-4.
export const PROPERTIES: readonly PropertyDef[] = [
  { id: 0x01, name: "payloadFormatIndicator", type: "byte", packets: PUBLISH | WILL, max: 1 },
  { id: 0x02, name: "messageExpiryInterval", type: "u32", packets: PUBLISH | WILL },
  { id: 0x03, name: "contentType", type: "string", packets: PUBLISH | WILL },
  { id: 0x08, name: "responseTopic", type: "string", packets: PUBLISH | WILL },
  { id: 0x09, name: "correlationData", type: "binary", packets: PUBLISH | WILL },
  // A value of 0 is a Protocol Error (section 3.8.2.1.2); repeats only on PUBLISH (3.3.2.3.8).
  { id: 0x0b, name: "subscriptionIdentifiers", type: "vbi", packets: PUBLISH | SUBSCRIBE, array: true, repeat: PUBLISH, min: 1 },
  { id: 0x11, name: "sessionExpiryInterval", type: "u32", packets: CONNECT | CONNACK | DISCONNECT },
  { id: 0x12, name: "assignedClientIdentifier", type: "string", packets: CONNACK },
  { id: 0x13, name: "serverKeepAlive", type: "u16", packets: CONNACK },
  { id: 0x15, name: "authenticationMethod", type: "string", packets: CONNECT | CONNACK | AUTH },
  { id: 0x16, name: "authenticationData", type: "binary", packets: CONNECT | CONNACK | AUTH },
  { id: 0x17, name: "requestProblemInformation", type: "byte", packets: CONNECT, max: 1 },
  { id: 0x18, name: "willDelayInterval", type: "u32", packets: WILL },
  { id: 0x19, name: "requestResponseInformation", type: "byte", packets: CONNECT, max: 1 },
  { id: 0x1a, name: "responseInformation", type: "string", packets: CONNACK },
  { id: 0x1c, name: "serverReference", type: "string", packets: CONNACK | DISCONNECT },
  { id: 0x1f, name: "reasonString", type: "string", packets: CONNACK | ACKS | SUBACK | UNSUBACK | DISCONNECT | AUTH },
  // Receive Maximum 0 is a Protocol Error (3.1.2.11.3, 3.2.2.3.3).
  { id: 0x21, name: "receiveMaximum", type: "u16", packets: CONNECT | CONNACK, min: 1 },
  { id: 0x22, name: "topicAliasMaximum", type: "u16", packets: CONNECT | CONNACK },
  // Topic Alias 0 is not permitted [MQTT-3.3.2-8]: 0x94 Topic Alias invalid.
  { id: 0x23, name: "topicAlias", type: "u16", packets: PUBLISH, min: 1, rangeCode: ReasonCode.TopicAliasInvalid },
  { id: 0x24, name: "maximumQoS", type: "byte", packets: CONNACK, max: 1 },
  { id: 0x25, name: "retainAvailable", type: "byte", packets: CONNACK, max: 1 },
  { id: 0x26, name: "userProperties", type: "pair", packets: EVERY, array: true, repeat: EVERY },
  // Maximum Packet Size 0 is a Protocol Error (3.1.2.11.4, 3.2.2.3.6).
  { id: 0x27, name: "maximumPacketSize", type: "u32", packets: CONNECT | CONNACK, min: 1 },
  { id: 0x28, name: "wildcardSubscriptionAvailable", type: "byte", packets: CONNACK, max: 1 },
  { id: 0x29, name: "subscriptionIdentifierAvailable", type: "byte", packets: CONNACK, max: 1 },
  { id: 0x2a, name: "sharedSubscriptionAvailable", type: "byte", packets: CONNACK, max: 1 },
];

const BY_ID: (PropertyDef | undefined)[] = [];
const BY_NAME: Record<string, PropertyDef> = {};
for (const def of PROPERTIES) {
  BY_ID[def.id] = def;
  BY_NAME[def.name] = def;
}

const KIND_NAMES: Record<number, string> = { [WILL]: "Will Properties" };
for (const [name, type] of Object.entries(PacketType)) KIND_NAMES[1 << type] = name;

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, "0").toUpperCase()}`;
}

function readValue(r: Reader, type: PropertyType): unknown {
  switch (type) {
    case "byte":
      return r.u8();
    case "u16":
      return r.u16();
    case "u32":
      return r.u32();
    case "vbi":
      return r.vbi();
    case "string":
      return r.string();
    case "binary":
      return r.binary();
    case "pair":
      return [r.string(), r.string()];
  }
}

/**
 * Reads a Property Length and the properties after it, for a packet of the given kind.
 * Returns undefined when there are none.
 */
export function decodeProperties(r: Reader, kind: number): Properties | undefined {
  const len = r.vbi();
  if (len === 0) return undefined;
  if (len > r.remaining()) malformed("Property Length overruns the packet");
  const outer = r.end;
  r.end = r.pos + len;
  const props: Record<string, unknown> = {};
  while (r.pos < r.end) {
    const id = r.vbi();
    const def = BY_ID[id];
    if (def === undefined) malformed(`Unknown property identifier ${hex(id)}`);
    if ((def.packets & kind) === 0) {
      protocolError(`Property ${def.name} (${hex(id)}) is not allowed in ${KIND_NAMES[kind]}`);
    }
    const value = readValue(r, def.type);
    if (typeof value === "number") {
      if ((def.min !== undefined && value < def.min) || (def.max !== undefined && value > def.max)) {
        violation(
          def.rangeCode ?? ReasonCode.ProtocolError,
          `Property ${def.name} (${hex(id)}) has invalid value ${value}`,
        );
      }
    }
    const seen = props[def.name];
    if (def.array) {
      if (seen === undefined) props[def.name] = [value];
      else if ((def.repeat! & kind) === 0) duplicate(def);
      else (seen as unknown[]).push(value);
    } else {
      if (seen !== undefined) duplicate(def);
      props[def.name] = value;
    }
  }
  r.end = outer;
  return props as Properties;
}

function duplicate(def: PropertyDef): never {
  // Section 2.2.2.2: including a property more than once is a Protocol Error.
  return protocolError(`Property ${def.name} (${hex(def.id)}) appears more than once`);
}

function valueSize(type: PropertyType, v: unknown): number {
  switch (type) {
    case "byte":
      return 1;
    case "u16":
      return 2;
    case "u32":
      return 4;
    case "vbi":
      return vbiLength(v as number);
    case "string":
      return stringSize(v as string);
    case "binary":
      return binarySize(v as Uint8Array);
    case "pair": {
      const [k, val] = v as [string, string];
      return stringSize(k) + stringSize(val);
    }
  }
}

function defFor(key: string, kind: number): PropertyDef {
  const def = BY_NAME[key];
  if (def === undefined) throw new RangeError(`Unknown property ${key}`);
  if ((def.packets & kind) === 0) {
    throw new RangeError(`Property ${key} is not allowed in ${KIND_NAMES[kind]}`);
  }
  return def;
}

/** Byte length of the properties (without the Property Length field itself). */
export function propertiesLength(p: Properties | undefined, kind: number): number {
  if (p === undefined) return 0;
  let n = 0;
  for (const key in p) {
    const value: unknown = p[key as keyof Properties];
    if (value === undefined) continue;
    const def = defFor(key, kind);
    if (def.array) {
      const items = value as unknown[];
      if (items.length > 1 && (def.repeat! & kind) === 0) {
        throw new RangeError(`Property ${key} may appear only once in ${KIND_NAMES[kind]}`);
      }
      for (const item of items) n += 1 + valueSize(def.type, item);
    } else {
      n += 1 + valueSize(def.type, value);
    }
  }
  return n;
}

/** Property Length field plus properties. */
export function propertiesSize(len: number): number {
  return vbiLength(len) + len;
}

function writeValue(w: Writer, type: PropertyType, v: unknown): void {
  switch (type) {
    case "byte":
      return w.u8(v as number);
    case "u16":
      return w.u16(v as number);
    case "u32":
      return w.u32(v as number);
    case "vbi":
      return w.vbi(v as number);
    case "string":
      return w.string(v as string);
    case "binary":
      return w.binary(v as Uint8Array);
    case "pair": {
      const [k, val] = v as [string, string];
      w.string(k);
      return w.string(val);
    }
  }
}

/** Writes the Property Length `len` (from propertiesLength) and the properties. */
export function writeProperties(w: Writer, p: Properties | undefined, len: number): void {
  w.vbi(len);
  if (p === undefined || len === 0) return;
  for (const key in p) {
    const value: unknown = p[key as keyof Properties];
    if (value === undefined) continue;
    const def = BY_NAME[key]!;
    if (def.array) {
      for (const item of value as unknown[]) {
        w.u8(def.id);
        writeValue(w, def.type, item);
      }
    } else {
      w.u8(def.id);
      writeValue(w, def.type, value);
    }
  }
}
