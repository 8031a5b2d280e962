// The codec benchmark cases, shared by the workerd bench Worker (worker.ts) and the Node
// reference run (run.mjs bundles this file for Node). Each case is one packet in both object
// shapes (ours and mqtt-packet's); runCase(..., n) does its setup, then n iterations of one
// operation, and returns a checksum so that the work cannot be optimised away.
//
// Operations:
//   decode  ours: decodePacket(whole packet)   mqtt-packet: parser.parse(whole packet) (its
//           parser frames and decodes in one step; ours frames in splitFrames, see split5)
//   encode  ours: encodePacket(packet, v)      mqtt-packet: generate(obj, { protocolVersion })
//   stream  the receive path for a PUBLISH cut as MQTT.js writes it (one WebSocket message per
//           stream write of mqtt-packet's writeToStream: 5 to 7 messages per PUBLISH).
//           ours: splitFrames over each message, carrying `rest`, then decodePacket per frame;
//           mqtt-packet: parser.parse(message) per message.
//   split5  ours only: splitFrames alone over the same messages (framing cost).
import { Buffer } from "node:buffer";
import mqttPacket from "mqtt-packet";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec/index";
import type { Packet, ProtocolVersion } from "../../core/mqtt/packets";

export type Impl = "ours" | "mqtt-packet";
export type Op = "decode" | "encode" | "stream" | "split5";
export type PacketName =
  | "publish-qos0-small"
  | "publish-qos1-1k"
  | "connect-v4"
  | "connect-v5"
  | "subscribe"
  | "puback";

export const IMPLS: readonly Impl[] = ["ours", "mqtt-packet"];
export const OPS: readonly Op[] = ["decode", "encode", "stream", "split5"];
export const PACKETS: readonly PacketName[] = [
  "publish-qos0-small",
  "publish-qos1-1k",
  "connect-v4",
  "connect-v5",
  "subscribe",
  "puback",
];

type MqttObj = Record<string, unknown>;
interface Pair {
  ours: Packet;
  mqtt: MqttObj;
}

const enc = new TextEncoder();
const fill = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

/** The packet in both shapes. undefined: the packet does not exist at that version. */
function pair(name: PacketName, version: ProtocolVersion): Pair | undefined {
  switch (name) {
    case "publish-qos0-small": {
      const payload = enc.encode("21.5 C, 40% RH");
      const topic = "sensors/room1/temperature";
      return {
        ours: { type: "publish", topic, payload, qos: 0, retain: false, dup: false },
        mqtt: { cmd: "publish", topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false },
      };
    }
    case "publish-qos1-1k": {
      const payload = fill(1024);
      const topic = "devices/abc123/telemetry";
      return {
        ours: { type: "publish", topic, payload, qos: 1, retain: false, dup: false, packetId: 42 },
        mqtt: { cmd: "publish", topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false, messageId: 42 },
      };
    }
    case "connect-v4":
    case "connect-v5": {
      const v5 = name === "connect-v5";
      if (version !== (v5 ? 5 : 4)) return undefined;
      const clientId = "bench-client-0001";
      const password = enc.encode("s3cret-pw");
      const willTopic = `clients/${clientId}/status`;
      const willPayload = enc.encode("offline");
      return {
        ours: {
          type: "connect",
          protocolName: "MQTT",
          protocolVersion: version,
          clean: true,
          keepAlive: 60,
          clientId,
          username: "bench-user",
          password,
          will: {
            topic: willTopic,
            payload: willPayload,
            qos: 1,
            retain: true,
            ...(v5 ? { properties: { willDelayInterval: 5 } } : {}),
          },
          ...(v5
            ? { properties: { sessionExpiryInterval: 3600, receiveMaximum: 64, userProperties: [["app", "bench"]] } }
            : {}),
        },
        mqtt: {
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: version,
          clean: true,
          keepalive: 60,
          clientId,
          username: "bench-user",
          password: Buffer.from(password),
          will: {
            topic: willTopic,
            payload: Buffer.from(willPayload),
            qos: 1,
            retain: true,
            ...(v5 ? { properties: { willDelayInterval: 5 } } : {}),
          },
          ...(v5
            ? { properties: { sessionExpiryInterval: 3600, receiveMaximum: 64, userProperties: { app: "bench" } } }
            : {}),
        },
      };
    }
    case "subscribe": {
      const v5 = version === 5;
      return {
        ours: {
          type: "subscribe",
          packetId: 7,
          subscriptions: [
            { topicFilter: "sensors/+/temperature", qos: 1 },
            { topicFilter: "devices/#", qos: 0 },
          ],
          ...(v5 ? { properties: { subscriptionIdentifiers: [12] } } : {}),
        },
        mqtt: {
          cmd: "subscribe",
          messageId: 7,
          subscriptions: [
            { topic: "sensors/+/temperature", qos: 1, ...(v5 ? { nl: false, rap: false, rh: 0 } : {}) },
            { topic: "devices/#", qos: 0, ...(v5 ? { nl: false, rap: false, rh: 0 } : {}) },
          ],
          ...(v5 ? { properties: { subscriptionIdentifier: 12 } } : {}),
        },
      };
    }
    case "puback":
      return { ours: { type: "puback", packetId: 42 }, mqtt: { cmd: "puback", messageId: 42 } };
  }
}

/** Whether (op, packet, version, impl) is a case; stream/split5 are for PUBLISH only, split5 only for ours. */
export function exists(impl: Impl, op: Op, name: PacketName, version: ProtocolVersion): boolean {
  if (!pair(name, version)) return false;
  if ((op === "stream" || op === "split5") && !name.startsWith("publish")) return false;
  if (op === "split5" && impl !== "ours") return false;
  return true;
}

/** The packet's bytes as mqtt-packet's writeToStream writes them: one entry per stream write (= one WebSocket message in MQTT.js). */
export function mqttJsMessages(name: PacketName, version: ProtocolVersion): Uint8Array[] {
  const p = pair(name, version);
  if (!p) throw new Error(`no ${name} at version ${version}`);
  const chunks: Uint8Array[] = [];
  const sink = {
    // writeToStream writes strings (the topic) as JS strings; the WebSocket stream sends them as UTF-8.
    write(b: Uint8Array | string) {
      chunks.push(typeof b === "string" ? enc.encode(b) : Uint8Array.from(b));
      return true;
    },
    cork() {},
    uncork() {},
    emit() {},
  };
  mqttPacket.writeToStream(p.mqtt as unknown as mqttPacket.Packet, sink as never, { protocolVersion: version });
  return chunks;
}

/** Our encoding of the packet (the bytes both decoders are given). */
export function packetBytes(name: PacketName, version: ProtocolVersion): Uint8Array {
  const p = pair(name, version);
  if (!p) throw new Error(`no ${name} at version ${version}`);
  return encodePacket(p.ours, version);
}

// Checksums: the same formula over both object shapes, so a decode checksum must agree
// between the two implementations (run.mjs checks it).
function sumOurs(p: Packet): number {
  const o = p as unknown as { payload?: Uint8Array; topic?: string; packetId?: number; clientId?: string; subscriptions?: unknown[] };
  return (o.payload?.length ?? 0) + (o.topic?.length ?? 0) + (o.packetId ?? 0) + (o.clientId?.length ?? 0) + (o.subscriptions?.length ?? 0);
}
function sumMqtt(p: MqttObj): number {
  const o = p as { payload?: Uint8Array; topic?: string; messageId?: number; clientId?: string; subscriptions?: unknown[] };
  return (o.payload?.length ?? 0) + (o.topic?.length ?? 0) + (o.messageId ?? 0) + (o.clientId?.length ?? 0) + (o.subscriptions?.length ?? 0);
}
const sumBytes = (b: Uint8Array) => b.length + b[b.length - 1]!;

const EMPTY: Uint8Array = new Uint8Array(0);

/** Setup, then n iterations of the operation. Returns a checksum (NaN if a decode failed). */
export function runCase(impl: Impl, op: Op, name: PacketName, version: ProtocolVersion, n: number): number {
  if (!exists(impl, op, name, version)) throw new Error(`no case ${impl} ${op} ${name} v${version}`);
  const p = pair(name, version)!;
  let sum = 0;
  if (impl === "ours") {
    const opts = { protocolVersion: version };
    if (op === "encode") {
      for (let i = 0; i < n; i++) sum += sumBytes(encodePacket(p.ours, version));
      return sum;
    }
    if (op === "decode") {
      const bytes = packetBytes(name, version);
      for (let i = 0; i < n; i++) {
        const r = decodePacket(bytes, opts);
        sum += r.ok ? sumOurs(r.packet) : NaN;
      }
      return sum;
    }
    const messages = mqttJsMessages(name, version);
    let rest = EMPTY;
    for (let i = 0; i < n; i++) {
      for (const m of messages) {
        const f = splitFrames(rest, m);
        rest = f.rest;
        if (f.error) return NaN;
        for (const frame of f.frames) {
          if (op === "split5") sum += frame.length;
          else {
            const r = decodePacket(frame, opts);
            sum += r.ok ? sumOurs(r.packet) : NaN;
          }
        }
      }
    }
    return sum;
  }
  // mqtt-packet
  if (op === "encode") {
    const genOpts = { protocolVersion: version };
    const obj = p.mqtt as unknown as mqttPacket.Packet;
    for (let i = 0; i < n; i++) sum += sumBytes(mqttPacket.generate(obj, genOpts));
    return sum;
  }
  const parser = mqttPacket.parser({ protocolVersion: version });
  let failed = false;
  parser.on("packet", (pkt) => {
    sum += sumMqtt(pkt as unknown as MqttObj);
  });
  parser.on("error", () => {
    failed = true;
  });
  if (op === "decode") {
    const buf = Buffer.from(packetBytes(name, version));
    for (let i = 0; i < n; i++) parser.parse(buf);
  } else {
    const messages = mqttJsMessages(name, version).map((m) => Buffer.from(m));
    for (let i = 0; i < n; i++) for (const m of messages) parser.parse(m);
  }
  return failed ? NaN : sum;
}

/** Every case, in table order. */
export function allCases(): { op: Op; packet: PacketName; version: ProtocolVersion; impls: Impl[] }[] {
  const out: { op: Op; packet: PacketName; version: ProtocolVersion; impls: Impl[] }[] = [];
  for (const op of OPS) {
    for (const packet of PACKETS) {
      for (const version of [4, 5] as const) {
        const impls = IMPLS.filter((i) => exists(i, op, packet, version));
        if (impls.length) out.push({ op, packet, version, impls });
      }
    }
  }
  return out;
}

/** Sanity checks run once before timing: both encoders agree or both decoders accept the bytes, and the decode checksums agree. */
export function selfCheck(): string[] {
  const notes: string[] = [];
  for (const c of allCases()) {
    if (c.op !== "decode" && c.op !== "stream") continue;
    const sums = c.impls.map((i) => runCase(i, c.op, c.packet, c.version, 3));
    if (sums.some((s) => Number.isNaN(s)) || new Set(sums).size !== 1) {
      notes.push(`error: checksums differ ${c.op} ${c.packet} v${c.version}: ${c.impls.map((i, k) => `${i}=${sums[k]}`).join(" ")}`);
    }
  }
  for (const name of PACKETS) {
    for (const version of [4, 5] as const) {
      const p = pair(name, version);
      if (!p) continue;
      const a = encodePacket(p.ours, version);
      const b = mqttPacket.generate(p.mqtt as unknown as mqttPacket.Packet, { protocolVersion: version });
      if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
        notes.push(`note: encodings differ (${name} v${version}): ours ${a.length} B, mqtt-packet ${b.length} B`);
      }
    }
  }
  return notes;
}
