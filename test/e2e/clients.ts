// Shared helpers for the MQTT end-to-end tests: MQTT.js clients on either route, message
// inboxes with bounded waits that report what did arrive, and a raw WebSocket client that
// speaks hand-encoded packets through the project's own codec.
import mqtt, {
  type IClientOptions,
  type IConnackPacket,
  type IDisconnectPacket,
  type IPublishPacket,
  type MqttClient,
  type Packet as MqttJsPacket,
} from "mqtt";
import WebSocket from "ws";
import { decodePacket, encodePacket, splitFrames } from "../../core/mqtt/codec";
import type { ConnectPacket, Packet, Properties, ProtocolVersion, PublishPacket, Will } from "../../core/mqtt/packets";

/** The packet shape of a packet type name (AckPacket covers four names). */
export type PacketOf<K extends Packet["type"]> = Packet extends infer P
  ? P extends { type: infer T }
    ? K extends T
      ? P
      : never
    : never
  : never;

export type Version = 4 | 5;
/** `relay`: plain `/mqtt` (ConnectionDO relays to the session); `fast`: `/mqtt/<clientId>`. */
export type Route = "relay" | "fast";

export const VERSIONS: readonly Version[] = [4, 5];
export const ROUTES: readonly Route[] = ["relay", "fast"];
/** Every (version, route) pair, for describe.each / it.each. */
export const VERSION_ROUTES: ReadonlyArray<readonly [Version, Route]> = VERSIONS.flatMap((v) =>
  ROUTES.map((r) => [v, r] as const),
);

const DEFAULT_TIMEOUT = 5_000;

let counter = 0;
/** A client identifier unique to this run, file and call (Durable Objects outlive a test). */
export function uid(prefix = "c"): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** A topic unique to the calling test, so tests sharing a broker never see each other. */
export function topicBase(prefix = "t"): string {
  return uid(prefix);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `pred` until it holds; fail with `what` after timeoutMs. */
export async function waitUntil(pred: () => boolean, what: string, timeoutMs = DEFAULT_TIMEOUT): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

/** `ws://host/mqtt` for the relay route, `ws://host/mqtt/<clientId>` for the fast path. */
export function mqttUrl(baseUrl: string, route: Route, clientId: string): string {
  return route === "relay" ? baseUrl : `${baseUrl}/${encodeURIComponent(clientId)}`;
}

// ----------------------------------------------------------------------------- MQTT.js

export interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
  properties: NonNullable<IPublishPacket["properties"]>;
  at: number;
}

/** Messages received by one client, in order, with bounded waits. */
export class Inbox {
  readonly messages: Received[] = [];
  #waiters: Array<() => void> = [];

  constructor(readonly label: string) {}

  push(m: Received): void {
    this.messages.push(m);
    for (const w of this.#waiters.splice(0)) w();
  }

  get length(): number {
    return this.messages.length;
  }

  topics(): string[] {
    return this.messages.map((m) => m.topic);
  }

  payloads(): string[] {
    return this.messages.map((m) => m.payload.toString());
  }

  describe(): string {
    if (this.messages.length === 0) return `${this.label}: nothing arrived`;
    const shown = this.messages
      .slice(0, 20)
      .map((m) => `  ${m.topic} qos=${m.qos} retain=${m.retain} payload=${JSON.stringify(m.payload.toString().slice(0, 40))}`);
    const more = this.messages.length > 20 ? `\n  ... and ${this.messages.length - 20} more` : "";
    return `${this.label}: ${this.messages.length} arrived:\n${shown.join("\n")}${more}`;
  }

  /** Wait until at least n messages (matching `filter`, if given) arrived; fail with what did. */
  async waitFor(n: number, timeoutMs = DEFAULT_TIMEOUT, filter?: (m: Received) => boolean): Promise<Received[]> {
    const matching = () => (filter ? this.messages.filter(filter) : this.messages);
    const deadline = Date.now() + timeoutMs;
    while (matching().length < n) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${n} message(s)${filter ? " (filtered)" : ""}; ${this.describe()}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return matching();
  }

  /** Wait for the next message on `topic`. */
  async waitForTopic(topic: string, timeoutMs = DEFAULT_TIMEOUT): Promise<Received> {
    const got = await this.waitFor(1, timeoutMs, (m) => m.topic === topic);
    return got[0]!;
  }

  /** Let `ms` pass and return everything that arrived by then (to assert absence). */
  async settle(ms: number): Promise<Received[]> {
    await sleep(ms);
    return this.messages;
  }
}

export interface ConnectOptions extends Omit<IClientOptions, "protocolVersion"> {
  version: Version;
  route?: Route;
  clientId?: string;
  /** Label used in failure messages. */
  label?: string;
  /** Fast path only: the identifier in the URL, when it differs from clientId (e.g. an empty one). */
  hint?: string;
}

/** An MQTT.js client with everything it received recorded from the first byte. */
export class Conn {
  readonly inbox: Inbox;
  /** Every packet received, in order (PUBLISH, DISCONNECT, ...). */
  readonly packets: MqttJsPacket[] = [];
  /** Every packet MQTT.js wrote, in order. */
  readonly sent: MqttJsPacket[] = [];
  connack: IConnackPacket | undefined;
  closed = false;
  readonly #closeWaiters: Array<() => void> = [];
  readonly #packetWaiters: Array<() => void> = [];

  constructor(
    readonly client: MqttClient,
    readonly clientId: string,
    readonly version: Version,
    label: string,
  ) {
    this.inbox = new Inbox(label);
    client.on("packetreceive", (p) => {
      // A shallow copy: MQTT.js resolves topic aliases in place afterwards, and tests
      // want what was on the wire.
      this.packets.push({ ...p } as MqttJsPacket);
      for (const w of this.#packetWaiters.splice(0)) w();
    });
    client.on("packetsend", (p) => this.sent.push(p));
    client.on("message", (topic, payload, packet) => {
      this.inbox.push({
        topic,
        payload,
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup,
        properties: packet.properties ?? {},
        at: Date.now(),
      });
    });
    client.on("close", () => {
      this.closed = true;
      for (const w of this.#closeWaiters.splice(0)) w();
    });
    client.on("error", () => {
      // Recorded by the tests that care; an unhandled 'error' event would crash the worker.
    });
  }

  /** Wait for the connection to close; fails after timeoutMs. Resolves with ms waited. */
  async waitClosed(timeoutMs = DEFAULT_TIMEOUT): Promise<number> {
    const start = Date.now();
    if (this.closed) return 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.inbox.label}: connection still open after ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return Date.now() - start;
  }

  /** Wait for a received packet matching `pred`. */
  async waitForPacket<T extends MqttJsPacket>(
    pred: (p: MqttJsPacket) => p is T,
    timeoutMs = DEFAULT_TIMEOUT,
    what = "packet",
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.packets.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.inbox.label}: no ${what} within ${timeoutMs} ms; received: ${this.packets.map((p) => p.cmd).join(", ") || "nothing"}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#packetWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async waitForDisconnect(timeoutMs = DEFAULT_TIMEOUT): Promise<IDisconnectPacket> {
    return this.waitForPacket((p): p is IDisconnectPacket => p.cmd === "disconnect", timeoutMs, "DISCONNECT");
  }

  async subscribe(
    filter: string | string[] | Record<string, { qos: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number }>,
    opts: { qos?: 0 | 1 | 2; nl?: boolean; rap?: boolean; rh?: number; properties?: { subscriptionIdentifier?: number } } = {},
  ): Promise<number[]> {
    const granted = await this.client.subscribeAsync(filter as string, { qos: 0, ...opts } as never);
    return granted.map((g) => g.qos);
  }

  async publish(topic: string, payload: string | Buffer, opts: Parameters<MqttClient["publishAsync"]>[2] = {}) {
    return this.client.publishAsync(topic, payload, opts);
  }

  /** Graceful: DISCONNECT then close (5.0: optional reason code and properties). */
  async end(opts?: { reasonCode?: number; properties?: Record<string, unknown> }): Promise<void> {
    if (this.closed) return;
    await this.client.endAsync(false, opts as never);
  }

  /** Ungraceful: drop the socket without DISCONNECT. */
  async drop(): Promise<void> {
    if (this.closed) return;
    await this.client.endAsync(true);
  }
}

const openConns = new Set<Conn>();
const openRaws = new Set<RawClient>();

/** Force-close every client still open (call from afterEach). */
export async function closeAll(): Promise<void> {
  const conns = [...openConns];
  openConns.clear();
  const raws = [...openRaws];
  openRaws.clear();
  await Promise.all(conns.map((c) => c.client.endAsync(true).catch(() => undefined)));
  for (const r of raws) r.terminate();
}

/**
 * Connect with MQTT.js and wait for CONNACK. Rejects (with the CONNACK code when refused)
 * if the broker does not accept. Reconnects are off: every test controls its connections.
 */
export async function connect(baseUrl: string, opts: ConnectOptions): Promise<Conn> {
  const { version, route = "relay", label, clientId: givenId, hint, ...rest } = opts;
  const clientId = givenId ?? uid(`v${version}${route[0]}`);
  const url = mqttUrl(baseUrl, route, hint ?? (clientId === "" ? uid("hint") : clientId));
  const client = mqtt.connect(url, {
    protocolVersion: version,
    clientId,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...rest,
  });
  const conn = new Conn(client, clientId, version, label ?? `${clientId} (v${version} ${route})`);
  openConns.add(conn);
  try {
    conn.connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once("connect", resolve);
      client.once("error", (err) => reject(err));
      client.once("close", () => reject(new Error(`${conn.inbox.label}: closed before CONNACK`)));
    });
  } catch (err) {
    client.end(true);
    openConns.delete(conn);
    throw err;
  }
  return conn;
}

/** Subscription identifiers of a received message as a list (MQTT.js gives a number or an array). */
export function subscriptionIds(m: Received): number[] {
  const v = (m.properties as { subscriptionIdentifier?: number | number[] }).subscriptionIdentifier;
  if (v === undefined) return [];
  return Array.isArray(v) ? [...v].sort((a, b) => a - b) : [v];
}

// ----------------------------------------------------------------------------- raw WebSocket

export interface Closed {
  code: number;
  reason: string;
  /** ms from `rawConnect` resolving to the close. */
  afterMs: number;
}

/** A bare WebSocket speaking MQTT bytes, decoding what comes back with the project's codec. */
export class RawClient {
  readonly packets: Packet[] = [];
  /** Per binary WebSocket message received: its bytes and the packets it completed. */
  readonly messages: Array<{ bytes: number; packets: number }> = [];
  readonly decodeErrors: string[] = [];
  closedInfo: Closed | undefined;
  readonly closed: Promise<Closed>;
  #pending: Uint8Array = new Uint8Array(0);
  #waiters: Array<() => void> = [];
  readonly #openedAt = Date.now();

  constructor(
    readonly ws: WebSocket,
    public version: ProtocolVersion,
  ) {
    this.closed = new Promise<Closed>((resolve) => {
      ws.on("close", (code, reason) => {
        this.closedInfo = { code, reason: reason.toString(), afterMs: Date.now() - this.#openedAt };
        resolve(this.closedInfo);
        this.#wake();
      });
    });
    ws.on("error", () => undefined);
    ws.on("message", (data, isBinary) => {
      if (!isBinary) {
        this.decodeErrors.push(`text message from broker: ${data.toString()}`);
        this.#wake();
        return;
      }
      const chunk = data instanceof Buffer ? data : Buffer.concat(data as Buffer[]);
      const { frames, rest, error } = splitFrames(this.#pending, new Uint8Array(chunk));
      this.#pending = rest;
      this.messages.push({ bytes: chunk.byteLength, packets: frames.length });
      if (error) this.decodeErrors.push(error.message);
      for (const f of frames) {
        const d = decodePacket(f, { protocolVersion: this.version });
        if (d.ok) this.packets.push(d.packet);
        else this.decodeErrors.push(d.error.message);
      }
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /**
   * ms from `rawConnect` resolving to the broker's close frame (the WebSocket turns CLOSING):
   * the protocol-level close, before the TCP connection is torn down.
   */
  async waitClosing(timeoutMs = DEFAULT_TIMEOUT): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      if (Date.now() > deadline) throw new Error(`raw client: no close within ${timeoutMs} ms; got ${this.describe()}`);
      await sleep(10);
    }
    return Date.now() - this.#openedAt;
  }

  send(packetOrBytes: Packet | Uint8Array): void {
    const bytes = packetOrBytes instanceof Uint8Array ? packetOrBytes : encodePacket(packetOrBytes, this.version);
    this.ws.send(bytes, { binary: true });
  }

  sendText(text: string): void {
    this.ws.send(text, { binary: false });
  }

  describe(): string {
    const got = this.packets.map((p) => describePacket(p)).join(", ") || "no packets";
    const closed = this.closedInfo ? `closed (${this.closedInfo.code} ${this.closedInfo.reason})` : "still open";
    const errs = this.decodeErrors.length ? `; decode errors: ${this.decodeErrors.join("; ")}` : "";
    return `${got}; ${closed}${errs}`;
  }

  /** Wait for a packet matching `pred` (already received ones count). */
  async waitForPacket<T extends Packet = Packet>(pred: (p: Packet) => boolean, timeoutMs = DEFAULT_TIMEOUT, what = "packet"): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.packets.find(pred);
      if (found) return found as T;
      const left = deadline - Date.now();
      if (left <= 0 || this.closedInfo) {
        throw new Error(`raw client: no ${what} ${this.closedInfo ? "before close" : `within ${timeoutMs} ms`}; got ${this.describe()}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async waitForType<K extends Packet["type"]>(type: K, timeoutMs = DEFAULT_TIMEOUT): Promise<PacketOf<K>> {
    return this.waitForPacket<PacketOf<K>>((p) => p.type === type, timeoutMs, type.toUpperCase());
  }

  /** Wait for a PUBLISH matching `pred`. */
  async waitForPublish(pred: (p: PublishPacket) => boolean = () => true, timeoutMs = DEFAULT_TIMEOUT, what = "PUBLISH"): Promise<PublishPacket> {
    return this.waitForPacket<PublishPacket>((p) => p.type === "publish" && pred(p), timeoutMs, what);
  }

  /** Wait for the broker to close the socket; fail with what arrived if it does not. */
  async waitClosed(timeoutMs = DEFAULT_TIMEOUT): Promise<Closed> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`raw client: broker did not close the connection within ${timeoutMs} ms; got ${this.describe()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.ws.close();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/**
 * Open a raw WebSocket (subprotocol `mqtt`) and send `bytes` (a CONNECT, garbage, ...) as
 * one binary message. `version` selects how the broker's replies are decoded.
 */
export async function rawConnect(
  url: string,
  bytes?: Uint8Array | Packet,
  version: ProtocolVersion = bytes && !(bytes instanceof Uint8Array) && bytes.type === "connect" ? bytes.protocolVersion : 4,
): Promise<RawClient> {
  const ws = new WebSocket(url, "mqtt");
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
  const raw = new RawClient(ws, version);
  openRaws.add(raw);
  if (bytes) raw.send(bytes);
  return raw;
}

/** A CONNECT packet for the raw client. */
export function connectPacket(o: {
  version: Version;
  clientId: string;
  clean?: boolean;
  keepAlive?: number;
  will?: Will;
  properties?: Properties;
}): ConnectPacket {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: o.version,
    clean: o.clean ?? true,
    keepAlive: o.keepAlive ?? 0,
    clientId: o.clientId,
    ...(o.will && { will: o.will }),
    ...(o.properties && { properties: o.properties }),
  };
}

/** Raw connect + wait for a successful CONNACK. */
export async function rawSession(
  url: string,
  o: Parameters<typeof connectPacket>[0],
): Promise<RawClient> {
  const raw = await rawConnect(url, connectPacket(o));
  const connack = await raw.waitForType("connack");
  if (connack.reasonCode !== 0) throw new Error(`raw CONNECT refused: ${describePacket(connack)}`);
  return raw;
}

export function describePacket(p: Packet): string {
  switch (p.type) {
    case "connack":
      return `CONNACK(sp=${p.sessionPresent}, rc=0x${p.reasonCode.toString(16)})`;
    case "disconnect":
      return `DISCONNECT(rc=0x${(p.reasonCode ?? 0).toString(16)}${p.properties?.reasonString ? ` "${p.properties.reasonString}"` : ""})`;
    case "suback":
      return `SUBACK(${p.reasonCodes.map((c) => `0x${c.toString(16)}`).join(",")})`;
    case "publish":
      return `PUBLISH(${p.topic} q${p.qos}${p.retain ? " r" : ""})`;
    default:
      return p.type.toUpperCase();
  }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
