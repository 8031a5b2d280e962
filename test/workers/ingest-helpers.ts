/**
 * Helpers of the HTTP ingest tests in workerd: API requests to the Worker, and a minimal
 * MQTT 5.0 subscriber over WebSocket (fast path) built on the project codec.
 */
import { env, exports } from "cloudflare:workers";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec";
import type { Packet, PublishPacket, QoS } from "../../core/mqtt/packets";

export const BASE = "http://broker.test";
export const ADMIN = { Authorization: `Bearer ${env.ADMIN_TOKEN}` };

let counter = 0;
export const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;

export function api(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}/api/v1${path}`, init));
}

export async function createKey(scopes: string[], device?: string): Promise<{ id: string; key: string; auth: Record<string, string> }> {
  const res = await api("/keys", {
    method: "POST",
    headers: { ...ADMIN, "Content-Type": "application/json" },
    body: JSON.stringify({ name: unique("key"), scopes, ...(device && { device }) }),
  });
  if (res.status !== 201) throw new Error(`key creation: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { id: string; key: string };
  return { id: body.id, key: body.key, auth: { Authorization: `Bearer ${body.key}` } };
}

export function postJson(path: string, auth: Record<string, string>, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return api(path, { method: "POST", headers: { ...auth, "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
}

export async function until(condition: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(message());
    await scheduler.wait(5);
  }
}

/** An MQTT 5.0 client on the fast path that records every PUBLISH and acknowledges QoS 1. */
export class Subscriber {
  readonly publishes: PublishPacket[] = [];
  readonly packets: Packet[] = [];
  #pending: Uint8Array = new Uint8Array(0);
  #nextId = 1;

  private constructor(
    readonly ws: WebSocket,
    readonly clientId: string,
  ) {
    ws.accept();
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") return;
      const { frames, rest } = splitFrames(this.#pending, new Uint8Array(event.data as ArrayBuffer));
      this.#pending = rest;
      for (const frame of frames) {
        const d = decodePacket(frame, { protocolVersion: 5 });
        if (!d.ok) continue;
        this.packets.push(d.packet);
        if (d.packet.type === "publish") {
          this.publishes.push(d.packet);
          if (d.packet.qos === 1) this.send({ type: "puback", packetId: d.packet.packetId!, reasonCode: 0 });
          if (d.packet.qos === 2) this.send({ type: "pubrec", packetId: d.packet.packetId!, reasonCode: 0 });
        }
        if (d.packet.type === "pubrel") this.send({ type: "pubcomp", packetId: d.packet.packetId, reasonCode: 0 });
      }
    });
  }

  static async connect(clientId: string, o: { clean?: boolean; sessionExpiry?: number } = {}): Promise<Subscriber> {
    const res = await exports.default.fetch(
      new Request(`${BASE}/mqtt/${encodeURIComponent(clientId)}`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt" } }),
    );
    if (res.status !== 101) throw new Error(`upgrade: ${res.status}`);
    const s = new Subscriber(res.webSocket!, clientId);
    s.send({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: o.clean ?? true,
      keepAlive: 60,
      clientId,
      ...(o.sessionExpiry !== undefined && { properties: { sessionExpiryInterval: o.sessionExpiry } }),
    });
    await s.waitFor((p) => p.type === "connack", "CONNACK");
    return s;
  }

  #closed = false;

  send(p: Packet): void {
    if (!this.#closed) this.ws.send(encodePacket(p, 5));
  }

  async waitFor(pred: (p: Packet) => boolean, what: string, timeoutMs = 3000): Promise<Packet> {
    await until(() => this.packets.some(pred), timeoutMs, () => `${this.clientId}: no ${what}; got ${this.packets.map((p) => p.type).join(",")}`);
    return this.packets.find(pred)!;
  }

  async subscribe(filter: string, qos: QoS = 1): Promise<void> {
    const packetId = this.#nextId++;
    this.send({ type: "subscribe", packetId, subscriptions: [{ topicFilter: filter, qos }] });
    await this.waitFor((p) => p.type === "suback" && p.packetId === packetId, "SUBACK");
  }

  async received(n: number, timeoutMs = 3000): Promise<PublishPacket[]> {
    await until(() => this.publishes.length >= n, timeoutMs, () => `${this.clientId}: ${this.publishes.length} of ${n} messages arrived`);
    return this.publishes;
  }

  /** Nothing (more) than `n` messages arrives within `ms`. */
  async quiet(n: number, ms = 300): Promise<void> {
    await scheduler.wait(ms);
    if (this.publishes.length !== n) throw new Error(`${this.clientId}: expected ${n} messages, got ${this.publishes.length}: ${this.publishes.map((p) => p.topic).join(", ")}`);
  }

  close(): void {
    try {
      this.send({ type: "disconnect", reasonCode: 0 });
      this.#closed = true;
      this.ws.close(1000, "done");
    } catch {
      // closed already
    }
  }
}
