/**
 * An MQTT client over a WebSocket from the Worker inside workerd, and the packets the workers
 * suites send with it (shared by mqtt-over-websocket.test.ts and links.test.ts).
 */
import { runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec";
import type { ConnectPacket, Packet, ProtocolVersion, PublishPacket, QoS, Will } from "../../core/mqtt/packets";

export const BASE = "http://broker.test";
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

let counter = 0;
export const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;

export type Route = "relay" | "fast";
/** The packet shape of one type (AckPacket serves four). */
export type PacketOf<T extends Packet["type"]> = OfType<Packet, T>;
export type OfType<P, T> = P extends { type: infer U } ? (T extends U ? P : never) : never;

/** One MQTT client over a WebSocket from the Worker; frames and decodes what it receives. */
export class TestClient {
  readonly received: Packet[] = [];
  readonly problems: string[] = [];
  closed: { code: number; reason: string } | undefined;
  #read = 0;
  #pending: Uint8Array = new Uint8Array(0);

  constructor(
    readonly ws: WebSocket,
    readonly version: ProtocolVersion,
    readonly clientId: string,
  ) {
    ws.accept();
    // Binary messages as ArrayBuffer, not Blob (the default at this compatibility date).
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        this.problems.push("text WebSocket message from the broker [MQTT-6.0.0-1]");
        return;
      }
      const { frames, rest, error } = splitFrames(this.#pending, new Uint8Array(event.data as ArrayBuffer));
      this.#pending = rest;
      if (error) this.problems.push(error.message);
      for (const frame of frames) {
        const decoded = decodePacket(frame, { protocolVersion: this.version });
        if (decoded.ok) this.received.push(decoded.packet);
        else this.problems.push(`undecodable packet from the broker: ${decoded.error.message}`);
      }
    });
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
    });
  }

  send(...packets: Packet[]): void {
    for (const p of packets) this.ws.send(encodePacket(p, this.version));
  }

  sendBytes(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  /** The next packet not yet read, which must be of `type`. */
  async next<T extends Packet["type"]>(type: T, timeoutMs = 3000): Promise<PacketOf<T>> {
    await until(() => this.received.length > this.#read, timeoutMs, () => `${this.clientId}: no ${type.toUpperCase()} (received ${this.#describe()})`);
    const packet = this.received[this.#read++]!;
    expect(packet.type, `${this.clientId}: expected ${type.toUpperCase()}, received ${this.#describe()}`).toBe(type);
    return packet as PacketOf<T>;
  }

  /** Waits until every listed type has arrived among the unread packets, in any order; reads them. */
  async nextUnordered(types: Packet["type"][], timeoutMs = 3000): Promise<Packet[]> {
    const has = () => {
      const unread = this.received.slice(this.#read).map((p) => p.type);
      return types.every((t) => unread.filter((u) => u === t).length >= types.filter((x) => x === t).length);
    };
    await until(has, timeoutMs, () => `${this.clientId}: wanted ${types.join(", ")}; received ${this.#describe()}`);
    const got = this.received.slice(this.#read, this.#read + types.length);
    this.#read += types.length;
    expect(got.map((p) => p.type).sort()).toEqual([...types].sort());
    return got;
  }

  /** Nothing more arrives within `ms`. */
  async expectSilence(ms = 250): Promise<void> {
    await scheduler.wait(ms);
    expect(this.received.slice(this.#read), `${this.clientId}: unexpected packets`).toEqual([]);
  }

  async waitClosed(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    await until(() => this.closed !== undefined, timeoutMs, () => `${this.clientId}: socket not closed (received ${this.#describe()})`);
    return this.closed!;
  }

  close(): void {
    try {
      this.ws.close(1000, "client done");
    } catch {
      // already closed
    }
  }

  #describe(): string {
    return JSON.stringify(this.received.map((p) => p.type)) + (this.problems.length ? ` problems ${JSON.stringify(this.problems)}` : "");
  }
}

/**
 * Blocks every event to a Durable Object until `gate` settles (blockConcurrencyWhile).
 * `held` resolves once the block is in place: the object flips a plain flag that the test
 * polls, since waiting on a promise the object resolves would run the test on in the
 * object's context.
 */
export function holdObject(stub: DurableObjectStub, gate: Promise<void>): { held: Promise<void>; done: Promise<unknown> } {
  const flag = { held: false };
  const done = runInDurableObject(stub, (_instance, state) =>
    state.blockConcurrencyWhile(() => {
      flag.held = true;
      return gate;
    }),
  );
  return { held: until(() => flag.held, 3000, () => "the object was not held"), done };
}

export async function until(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message());
    await scheduler.wait(5);
  }
}

export async function openSocket(route: Route, clientId: string, protocol = "mqtt"): Promise<Response> {
  const path = route === "fast" ? `/mqtt/${encodeURIComponent(clientId)}` : "/mqtt";
  return exports.default.fetch(
    new Request(`${BASE}${path}`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": protocol } }),
  );
}

export interface ConnectOptions {
  clean?: boolean;
  keepAlive?: number;
  will?: Will;
  properties?: ConnectPacket["properties"];
}

export function connectPacket(version: ProtocolVersion, clientId: string, o: ConnectOptions = {}): ConnectPacket {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: version,
    clean: o.clean ?? true,
    keepAlive: o.keepAlive ?? 60,
    clientId,
    ...(o.will && { will: o.will }),
    ...(o.properties && { properties: o.properties }),
  };
}

export async function socketClient(route: Route, version: ProtocolVersion, clientId: string): Promise<TestClient> {
  const res = await openSocket(route, clientId);
  expect(res.status).toBe(101);
  expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("mqtt");
  return new TestClient(res.webSocket!, version, clientId);
}

export async function connect(route: Route, version: ProtocolVersion, clientId: string, o: ConnectOptions = {}) {
  const client = await socketClient(route, version, clientId);
  client.send(connectPacket(version, clientId, o));
  const connack = await client.next("connack");
  expect(connack.reasonCode).toBe(0);
  return { client, connack };
}

export async function subscribe(client: TestClient, packetId: number, topicFilter: string, qos: QoS, extra: { subscriptionId?: number } = {}) {
  client.send({
    type: "subscribe",
    packetId,
    subscriptions: [{ topicFilter, qos }],
    ...(extra.subscriptionId !== undefined && { properties: { subscriptionIdentifiers: [extra.subscriptionId] } }),
  });
  const suback = await client.next("suback");
  expect(suback).toMatchObject({ packetId, reasonCodes: [qos] });
  return suback;
}

export function publish(topic: string, payload: string, qos: QoS, packetId?: number, extra: Partial<PublishPacket> = {}): PublishPacket {
  return { type: "publish", topic, payload: enc(payload), qos, retain: false, dup: false, ...(packetId !== undefined && { packetId }), ...extra };
}
