import { decodePacket, splitFrames, type ProtocolViolation } from "../core/mqtt/codec";
import type { ConnectPacket } from "../core/mqtt/packets";
import { admitConnect, refuseMalformedConnect } from "../core/session/admit";

/**
 * What a Durable Object keeps on a hibernatable client socket (serializeAttachment, at most
 * 2 KiB): enough to resume framing and keep alive after the object wakes up again.
 */
export interface SocketState {
  /** Random identifier of this network connection. */
  linkId: string;
  /** Client identifier, once CONNECT has been accepted. */
  clientId?: string;
  /** Client identifier named by the URL (`/mqtt/<clientId>`), before CONNECT. */
  hint?: string;
  /** Negotiated keep alive in seconds (0: none). */
  keepAlive: number;
  /** Epoch ms of the last packet from the client (of the upgrade, before any). */
  lastSeen: number;
  /** Bytes of a packet not yet complete, when small; larger remainders go to storage. */
  pending?: Uint8Array;
  /** True while a larger remainder is kept in storage under `pending:<linkId>`. */
  pendingInStorage?: boolean;
  remoteAddress?: string;
  /** Closed by us; waiting for the closing handshake to finish. */
  closed?: boolean;
}

const ATTACHMENT_PENDING_MAX = 1024;

/**
 * The state of each socket this isolate has seen, beside a shallow copy of what its
 * attachment holds. Reading and writing the attachment is a structured clone each way; on a
 * busy connection that was about 5% of the broker's CPU (profile, fan-in QoS 1), nearly all of
 * it to move `lastSeen` forward. So the attachment is written when anything else changes, or
 * when `lastSeen` has moved by more than its slack (`lastSeenSlack`).
 */
const states = new WeakMap<WebSocket, { state: SocketState; written: SocketState }>();

/**
 * How far the attachment's `lastSeen` may lag behind the socket's: a quarter of the keep
 * alive interval. Before CONNECT it is kept exact (the CONNECT timeout counts from it); with
 * no keep alive nothing reads it.
 */
function lastSeenSlack(state: SocketState): number {
  if (state.clientId === undefined) return 0;
  return state.keepAlive > 0 ? state.keepAlive * 250 : Number.POSITIVE_INFINITY;
}

export function readState(ws: WebSocket): SocketState | undefined {
  const known = states.get(ws);
  if (known) return known.state;
  const state = (ws.deserializeAttachment() as SocketState | null) ?? undefined;
  if (!state) return undefined;
  const written = { ...state };
  // After hibernation the last packet came somewhere between the attachment's `lastSeen` and
  // its slack later: take the later end, so that the keep alive deadline is never early
  // [MQTT-3.1.2-24] (at most a quarter of the interval late).
  state.lastSeen = Math.max(state.lastSeen, Math.min(Date.now(), state.lastSeen + lastSeenSlack(state)));
  states.set(ws, { state, written });
  return state;
}

export function writeState(ws: WebSocket, state: SocketState): void {
  const known = states.get(ws);
  if (known && known.state === state && onlyLastSeenMoved(known.written, state)) return;
  ws.serializeAttachment(state);
  states.set(ws, { state, written: { ...state } });
}

function onlyLastSeenMoved(written: SocketState, state: SocketState): boolean {
  const keys = Object.keys(state) as (keyof SocketState)[];
  if (keys.length !== Object.keys(written).length) return false;
  for (const key of keys) if (key !== "lastSeen" && state[key] !== written[key]) return false;
  return state.lastSeen - written.lastSeen < lastSeenSlack(state);
}

/**
 * Frame one WebSocket message into whole MQTT packets [MQTT-6.0.0-2]: a message may hold part
 * of a packet or several. The remainder survives hibernation (attachment or storage).
 */
export function frameMessage(
  ws: WebSocket,
  state: SocketState,
  message: ArrayBuffer | string,
  storage: DurableObjectStorage,
  maximumPacketSize: number,
  now: number,
): { frames: Uint8Array[]; error?: ProtocolViolation } {
  if (typeof message === "string") {
    // MQTT over WebSocket uses binary messages only [MQTT-6.0.0-1].
    return { frames: [], error: { reasonCode: 0x81, message: "text WebSocket message" } };
  }
  const chunk = new Uint8Array(message);
  let pending = state.pending ?? EMPTY;
  if (state.pendingInStorage) pending = (storage.kv.get(pendingKey(state.linkId)) as Uint8Array | undefined) ?? EMPTY;
  const result = splitFrames(pending, chunk, maximumPacketSize);
  const rest = result.rest;
  const hadStorage = state.pendingInStorage === true;
  state.lastSeen = now;
  if (rest.byteLength === 0) {
    delete state.pending;
    delete state.pendingInStorage;
  } else if (rest.byteLength <= ATTACHMENT_PENDING_MAX) {
    state.pending = rest;
    delete state.pendingInStorage;
  } else {
    delete state.pending;
    state.pendingInStorage = true;
    storage.kv.put(pendingKey(state.linkId), rest);
  }
  if (hadStorage && !state.pendingInStorage) storage.kv.delete(pendingKey(state.linkId));
  writeState(ws, state);
  return result.error ? { frames: result.frames, error: result.error } : { frames: result.frames };
}

export function dropPending(state: SocketState, storage: DurableObjectStorage): void {
  if (state.pendingInStorage) storage.kv.delete(pendingKey(state.linkId));
}

/** Echo the MQTT WebSocket subprotocol the client offered [MQTT-6.0.0-3]. */
export function chooseSubprotocol(request: Request): string | undefined {
  const offered = (request.headers.get("Sec-WebSocket-Protocol") ?? "").split(",").map((p) => p.trim());
  return offered.find((p) => p === "mqtt") ?? offered.find((p) => p === "mqttv3.1");
}

export function acceptSocket(ctx: DurableObjectState, request: Request, state: SocketState, tag: string): Response {
  const pair = new WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  ctx.acceptWebSocket(server, [tag]);
  writeState(server, state);
  const headers = new Headers();
  const protocol = chooseSubprotocol(request);
  if (protocol) headers.set("Sec-WebSocket-Protocol", protocol);
  return new Response(null, { status: 101, webSocket: client, headers });
}

export function safeClose(ws: WebSocket, code = 1000, reason = ""): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed
  }
}

/** The code to answer a client's close frame with: its own, unless it may not be sent (1005, 1006, 1015). */
export function closeCodeToEcho(code: number): number {
  return code === 1005 || code === 1006 || code === 1015 || code < 1000 ? 1000 : code;
}

export function safeSend(ws: WebSocket, frames: Uint8Array[]): boolean {
  try {
    for (const f of frames) ws.send(f);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first packet of a connection: a well-formed CONNECT [MQTT-3.1.0-1] with an acceptable
 * client identifier, returned with the identifier filled in (assigned when it was empty).
 * Anything else is answered (CONNACK with a refusal, where the spec asks for one) and closed.
 */
export function admitFirstPacket(
  ws: WebSocket,
  frame: Uint8Array,
  maximumPacketSize: number,
  hint?: string,
): { connect: ConnectPacket; assigned: boolean } | undefined {
  const decoded = decodePacket(frame, { maximumPacketSize });
  if (!decoded.ok || decoded.packet.type !== "connect") {
    const refusal = decoded.ok ? undefined : refuseMalformedConnect(decoded.error, undefined);
    if (refusal && !refusal.ok && refusal.reply) safeSend(ws, [refusal.reply]);
    safeClose(ws, 1002, "CONNECT expected");
    return undefined;
  }
  const admission = admitConnect(decoded.packet, randomId, hint);
  if (!admission.ok) {
    if (admission.reply) safeSend(ws, [admission.reply]);
    safeClose(ws, 1008, "client identifier refused");
    return undefined;
  }
  return { connect: { ...decoded.packet, clientId: admission.clientId }, assigned: admission.assigned };
}

/** How long a new connection may take to send CONNECT (5.0 3.1.4: close it if it does not). */
export const CONNECT_TIMEOUT_MS = 10_000;

/** When a socket that has not sent CONNECT yet is closed, if it still has not. */
export function connectDeadline(state: SocketState): number | undefined {
  return state.clientId === undefined && !state.closed ? state.lastSeen + CONNECT_TIMEOUT_MS : undefined;
}

/** Close a socket that did not send CONNECT in time. */
export function closeForConnectTimeout(ws: WebSocket, state: SocketState): void {
  writeState(ws, { ...state, closed: true });
  safeClose(ws, 1002, "CONNECT timeout");
}

/** The first packet must be a CONNECT [MQTT-3.1.0-1]: reject other bytes before waiting for a whole packet. */
export function startsWithConnect(state: SocketState, message: ArrayBuffer | string): boolean {
  if (state.clientId !== undefined || state.pending || state.pendingInStorage) return true;
  if (typeof message === "string") return false;
  const first = new Uint8Array(message, 0, Math.min(1, message.byteLength))[0];
  return first === undefined || first === 0x10;
}

/** Keep alive: one and a half times the interval without a packet ends the connection [MQTT-3.1.2-24]. */
export function keepAliveDeadline(state: SocketState): number | undefined {
  return state.keepAlive > 0 ? state.lastSeen + state.keepAlive * 1500 : undefined;
}

export function randomId(): string {
  return crypto.randomUUID();
}

function pendingKey(linkId: string): string {
  return `pending:${linkId}`;
}

const EMPTY = new Uint8Array(0);
