/**
 * A small wrapper over MQTT.js for the dashboard (the topic tree): one MQTT 5 connection over
 * WebSocket to this broker's own `/mqtt` (ws: or wss: as the page was loaded), so the page
 * talks to no other host. esbuild bundles MQTT.js's browser build (its package exports a
 * `browser` condition: dist/mqtt.esm.js, with its own Buffer and no Node module).
 *
 * MQTT.js would retry a refused CONNECT forever; here a CONNACK refusal ends the client and is
 * reported with its reason, while a connection that was accepted and then dropped is retried.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";

export type MqttState = "idle" | "connecting" | "connected" | "reconnecting" | "closed" | "refused";

export interface MqttCredentials {
  username: string;
  password: string;
}

/** What MQTT 5 says about one received message (MQTT.js's packet, bytes as Uint8Array). */
export interface MqttMessage {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties: NonNullable<IPublishPacket["properties"]>;
}

export interface SubscribeResult {
  filter: string;
  /** Granted QoS (0..2) or, at 0x80 and above, the SUBACK's refusal reason code. */
  code: number;
  ok: boolean;
  reason: string;
}

export interface MqttEvents {
  onState(state: MqttState, detail?: string): void;
  onMessage(message: MqttMessage): void;
}

/** `ws://host/mqtt` or `wss://host/mqtt`: the broker that served this page. */
export function brokerUrl(loc: Location = location): string {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/mqtt`;
}

/** MQTT 5 reason codes a dashboard user may meet (CONNACK, SUBACK, DISCONNECT). */
const REASONS: Record<number, string> = {
  0x80: "Unspecified error",
  0x81: "Malformed packet",
  0x82: "Protocol error",
  0x83: "Implementation specific error",
  0x84: "Unsupported protocol version",
  0x85: "Client identifier not valid",
  0x86: "Bad user name or password",
  0x87: "Not authorized",
  0x88: "Server unavailable",
  0x89: "Server busy",
  0x8a: "Banned",
  0x8b: "Server shutting down",
  0x8c: "Bad authentication method",
  0x8d: "Keep alive timeout",
  0x8e: "Session taken over",
  0x8f: "Topic filter invalid",
  0x91: "Packet identifier in use",
  0x93: "Receive maximum exceeded",
  0x97: "Quota exceeded",
  0x98: "Administrative action",
  0x9c: "Use another server",
  0x9d: "Server moved",
  0x9e: "Shared subscriptions not supported",
  0x9f: "Connection rate exceeded",
  0xa1: "Subscription identifiers not supported",
  0xa2: "Wildcard subscriptions not supported",
};

export function reasonText(code: number): string {
  return `${REASONS[code] ?? "Reason"} (0x${code.toString(16).padStart(2, "0")})`;
}

/** Splits the filter input: filters separated by commas or new lines, blanks dropped. */
export function parseFilters(input: string): string[] {
  return [...new Set(input.split(/[,\n]/).map((f) => f.trim()).filter((f) => f !== ""))];
}

/** A reason for a filter the broker would refuse anyway, said before sending it. */
export function filterProblem(filter: string): string | undefined {
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) return `"${filter}": # must be a whole level and the last one`;
    if (level.includes("+") && level !== "+") return `"${filter}": + must be a whole level`;
  }
  return undefined;
}

export class MqttSession {
  readonly #client: MqttClient;
  #filters: string[] = [];
  #ended = false;

  constructor(credentials: MqttCredentials | undefined, readonly events: MqttEvents, url = brokerUrl()) {
    const options: IClientOptions = {
      protocolVersion: 5,
      clientId: `dashboard-${crypto.randomUUID().slice(0, 8)}`,
      clean: true,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: 3_000,
      resubscribe: true,
      properties: { sessionExpiryInterval: 0 },
      ...(credentials && credentials.username !== "" && { username: credentials.username }),
      ...(credentials && credentials.password !== "" && { password: credentials.password }),
    };
    // The caller shows "connecting" itself: no event fires before the constructor returns.
    this.#client = mqtt.connect(url, options);
    this.#client.on("connect", () => events.onState("connected"));
    this.#client.on("reconnect", () => events.onState("reconnecting"));
    this.#client.on("error", (err: Error & { code?: unknown }) => {
      // A CONNACK refusal (ErrorWithReasonCode): retrying would only be refused again.
      if (typeof err.code === "number" && err.code >= 0x80) {
        this.#ended = true;
        this.#client.end(true);
        events.onState("refused", `The broker refused the connection: ${reasonText(err.code)}`);
      } else if (!this.#ended) {
        events.onState(this.#client.connected ? "connected" : "reconnecting", err.message || String(err));
      }
    });
    this.#client.on("disconnect", (packet) => {
      const code = packet.reasonCode ?? 0;
      const why = packet.properties?.reasonString;
      events.onState("reconnecting", `The broker disconnected the dashboard: ${reasonText(code)}${why ? `: ${why}` : ""}`);
    });
    this.#client.on("close", () => {
      if (this.#ended) return;
      if (!this.#client.connected) events.onState("reconnecting", "The connection closed; retrying every 3 s.");
    });
    this.#client.on("message", (topic, payload, packet) => {
      events.onMessage({
        topic,
        payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
        qos: packet.qos,
        retain: packet.retain,
        properties: packet.properties ?? {},
      });
    });
  }

  get filters(): string[] {
    return this.#filters;
  }

  /** Replaces the subscriptions by `filters` (retained messages of the new filters arrive first). */
  async subscribe(filters: string[]): Promise<SubscribeResult[]> {
    const old = this.#filters.filter((f) => !filters.includes(f));
    if (old.length > 0) await this.#client.unsubscribeAsync(old).catch(() => undefined);
    this.#filters = filters;
    if (filters.length === 0) return [];
    // The callback form: a refused filter rejects subscribeAsync as a whole, but the SUBACK
    // still says, per filter, what was granted and what was refused.
    const codes = await new Promise<number[]>((resolve, reject) => {
      this.#client.subscribe(Object.fromEntries(filters.map((f) => [f, { qos: 2 as const }])), (err, _granted, packet) => {
        if (packet?.granted) resolve((packet.granted as Array<number | { qos: number }>).map((g) => (typeof g === "number" ? g : g.qos)));
        else if (err) reject(err);
        else resolve(filters.map(() => 0x80));
      });
    });
    return filters.map((filter, i) => {
      const code = codes[i] ?? 0x80;
      return { filter, code, ok: code < 0x80, reason: code < 0x80 ? `granted QoS ${code}` : reasonText(code) };
    });
  }

  end(): void {
    this.#ended = true;
    this.#client.end(true);
    this.events.onState("closed");
  }
}
