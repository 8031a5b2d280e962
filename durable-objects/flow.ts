import { PublishLimiter, type RateRefusal } from "../core/policy";
import type { BrokerLimits, DropKind } from "../core/session/types";
import type { Meter } from "./metrics";

/**
 * The platform side of flow control for the object that holds a client's socket: the
 * connection's publish limiter (core/policy/rate.ts), kept in memory beside the socket (a
 * connection that hibernates is not flooding; it starts with a full bucket when it wakes),
 * and the episode log of drops.
 */
const limiters = new WeakMap<WebSocket, PublishLimiter>();
/** Connections refused for their rate: nothing more of theirs passes while they close. */
const refused = new WeakSet<WebSocket>();

/** A frame is a PUBLISH when its fixed header's packet type is 3. */
function isPublish(frame: Uint8Array): boolean {
  return frame[0]! >> 4 === 3;
}

/**
 * The frames of one WebSocket message, up to the first PUBLISH the connection's rates refuse:
 * those pass, the refused one and everything after it do not (the connection is then closed
 * with the refusal's reason code, 0x96 or 0x97 in 5.0). After a refusal nothing more passes,
 * and the refusal is not repeated.
 */
export function admitPublishes(
  ws: WebSocket,
  frames: Uint8Array[],
  limits: BrokerLimits,
  now: number,
): { frames: Uint8Array[]; refusal?: RateRefusal } {
  if (refused.has(ws)) return { frames: [] };
  let limiter = limiters.get(ws);
  if (!limiter) limiters.set(ws, (limiter = new PublishLimiter(limits, now)));
  if (limiter.unlimited) return { frames };
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!;
    if (!isPublish(frame)) continue;
    const refusal = limiter.admit(frame.byteLength, now);
    if (refusal) {
      refused.add(ws);
      return { frames: frames.slice(0, i), refusal };
    }
  }
  return { frames };
}

/** Bytes a socket has been given and not yet written to the network (0 where the runtime does not say). */
export function socketBacklog(ws: WebSocket | undefined): number {
  return ws?.bufferedAmount ?? 0;
}

/** Drops of one kind for one client within this long of each other are one episode, logged once. */
const EPISODE_GAP_MS = 60_000;

/**
 * Drops and rate refusals of the clients an object serves: counted in its Meter (GET /metrics,
 * `drops`), and logged with the client identifier once per episode per client and kind.
 */
export class DropLog {
  readonly #meter: Meter;
  readonly #lastDrop = new Map<string, number>();

  constructor(meter: Meter) {
    this.#meter = meter;
  }

  record(clientId: string, kind: DropKind | "rate", count: number, now: number): void {
    this.#meter.drop(clientId, kind, count);
    const key = `${kind}\u0000${clientId}`;
    const last = this.#lastDrop.get(key);
    this.#lastDrop.delete(key); // kept in least-recently-dropped order
    this.#lastDrop.set(key, now);
    if (this.#lastDrop.size > 1000) this.#lastDrop.delete(this.#lastDrop.keys().next().value!);
    if (last !== undefined && now - last < EPISODE_GAP_MS) return;
    console.warn(`client ${JSON.stringify(clientId)}: ${DROP_TEXT[kind]} (${count} now; counted in GET /metrics under drops)`);
  }
}

const DROP_TEXT: Record<DropKind | "rate", string> = {
  qos0: "does not keep up with its messages: QoS 0 messages to it are dropped",
  queue: "queue full: its oldest queued QoS 1/2 messages are dropped",
  rate: "publishes faster than its rate limit: disconnected",
};
