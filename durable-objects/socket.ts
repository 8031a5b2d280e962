import { env } from "cloudflare:workers";
import { decodePacket, packetLength, splitFrames, type FrameResult, type ProtocolViolation } from "../core/mqtt/codec";
import { ReasonCode, type ConnectPacket } from "../core/mqtt/packets";
import { admitConnect, refuseMalformedConnect } from "../core/session/admit";
import { joinedPieces } from "../core/util/batcher";
import { connectTimeoutMsFromEnv, DEFAULT_CONNECT_TIMEOUT_MS, packetsPerMessageBytesFromEnv } from "./config";
import type { Env } from "../worker/env";
import { ADMISSION_HEADER, releaseAdmission } from "../worker/security/admission";
import { certificateUserOf } from "../worker/security/certificates";

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
  /**
   * Epoch ms by which CONNECT must have arrived: the upgrade plus the CONNECT timeout. Fixed
   * at the upgrade, so bytes trickling in do not move it (set by `acceptSocket` if missing).
   */
  connectBy?: number;
  /** Bytes of a packet not yet complete, while they fit in the attachment. */
  pending?: Uint8Array;
  /**
   * A longer remainder is in storage, one key per piece as it arrived
   * (`pending:<linkId>:<i>`, i < pendingChunks), `pendingBytes` in all.
   */
  pendingChunks?: number;
  pendingBytes?: number;
  remoteAddress?: string;
  /** Epoch ms this holder last renewed the connection's presence lease (core/presence/lease.ts). */
  leaseAt?: number;
  /** Closed by us; waiting for the closing handshake to finish. */
  closed?: boolean;
  /**
   * The upgrade's admission token (ADMISSION_HEADER), until released: once, when CONNECT is
   * accepted or refused, or the socket ends before (releaseAdmissionOf).
   */
  admission?: string;
  /** The client certificate's user name the Worker found at the upgrade (CERT_USER_HEADER). */
  certificateUser?: string;
  /** The client connected to plain `/mqtt` and the Worker relays its socket (RELAYED_HEADER). */
  relayed?: boolean;
}

/** Header: set by the Worker on the upgrade it makes for a client it relays (worker/relay.ts); removed from any other. */
export const RELAYED_HEADER = "X-Edge-Mqtt-Relayed";

/** What the Worker tells the object about an upgrade, in headers (kept on the socket until CONNECT). */
export function upgradeContext(request: Request): Pick<SocketState, "admission" | "certificateUser" | "relayed"> {
  const admission = request.headers.get(ADMISSION_HEADER);
  const certificateUser = certificateUserOf(request.headers);
  const relayed = request.headers.get(RELAYED_HEADER) === "worker";
  return { ...(admission && { admission }), ...(certificateUser !== undefined && { certificateUser }), ...(relayed && { relayed }) };
}

/**
 * Release the upgrade's admission token, if the socket still holds one: deleted from its state
 * first, so it is released exactly once whatever path ends the wait for CONNECT.
 */
export function releaseAdmissionOf(ws: WebSocket | undefined, state: SocketState): void {
  const token = state.admission;
  if (token === undefined) return;
  delete state.admission;
  delete state.certificateUser;
  if (ws) writeState(ws, state);
  releaseAdmission(env as unknown as Env, token);
}

/** Remainders up to this size stay in the attachment (at most 2 KiB in all); longer ones go to storage. */
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
 * alive interval. Before CONNECT nothing reads it (the CONNECT timeout counts from the
 * upgrade, `connectBy`), nor with no keep alive.
 */
function lastSeenSlack(state: SocketState): number {
  if (state.clientId === undefined) return Number.POSITIVE_INFINITY;
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
 * A partial packet in memory, as the pieces it arrived in (beside `states`). The pieces are
 * joined once, when the last one is there: a packet sent in n pieces costs time and storage
 * writes in proportion to its size. Joining the remainder with every piece, and rewriting it to
 * storage, cost n times its size (a 1 MB PUBLISH in 100-byte pieces took 18 s).
 */
interface Remainder {
  /** The state it was built for: another one (a woken object) reads the attachment again. */
  owner: SocketState;
  chunks: Uint8Array[];
  bytes: number;
  /** The whole packet's size, once its fixed header is readable. */
  length: number | undefined;
}

const remainders = new WeakMap<WebSocket, Remainder>();

/** What framing one WebSocket message gave: whole packets, an error after them, storage rows written. */
export interface Framed {
  frames: Uint8Array[];
  error?: ProtocolViolation;
  rowsWritten: number;
}

/**
 * Frame one WebSocket message into whole MQTT packets [MQTT-6.0.0-2]: a message may hold part
 * of a packet or several. The remainder survives hibernation: in the attachment while small,
 * else in storage, where each piece is appended under its own key and never rewritten.
 * Nothing is framed any more once we have closed the socket.
 */
export function frameMessage(
  ws: WebSocket,
  state: SocketState,
  message: ArrayBuffer | string,
  storage: DurableObjectStorage,
  maximumPacketSize: number,
  now: number,
): Framed {
  if (typeof message === "string") {
    // MQTT over WebSocket uses binary messages only [MQTT-6.0.0-1].
    return { frames: [], error: { reasonCode: 0x81, message: "text WebSocket message" }, rowsWritten: 0 };
  }
  state.lastSeen = now;
  if (state.closed || message.byteLength === 0) return { frames: [], rowsWritten: 0 };
  const chunk = new Uint8Array(message);
  const held = heldRemainder(ws, state, storage);
  if (held !== undefined && held !== LOST && held.length !== undefined && held.bytes + chunk.byteLength < held.length) {
    const rowsWritten = appendPending(state, held, chunk, storage);
    writeState(ws, state);
    return { frames: [], rowsWritten };
  }
  const result = held === undefined ? splitFrames(EMPTY, chunk, maximumPacketSize) : completePending(held, chunk, maximumPacketSize);
  let rowsWritten = dropPending(state, storage);
  rowsWritten += keepRest(ws, state, result.rest, storage);
  writeState(ws, state);
  return result.error ? { frames: result.frames, error: result.error, rowsWritten } : { frames: result.frames, rowsWritten };
}

/** Forget the partial packet of a socket: its storage keys are deleted. Returns the rows written. */
export function dropPending(state: SocketState, storage: DurableObjectStorage): number {
  const stored = state.pendingChunks ?? 0;
  for (let i = 0; i < stored; i++) storage.kv.delete(pendingKey(state.linkId, i));
  delete state.pending;
  delete state.pendingChunks;
  delete state.pendingBytes;
  return stored;
}

const LOST = "lost";
/** Stored pieces missing (deleted under a socket still sending): the stream cannot be framed any more. */
const LOST_ERROR: ProtocolViolation = { reasonCode: ReasonCode.UnspecifiedError, message: "partial packet lost" };

/** The socket's partial packet: from memory, else (after hibernation) from the attachment or storage. */
function heldRemainder(ws: WebSocket, state: SocketState, storage: DurableObjectStorage): Remainder | typeof LOST | undefined {
  const bytes = state.pending?.byteLength ?? state.pendingBytes ?? 0;
  if (bytes === 0) return undefined;
  const known = remainders.get(ws);
  if (known && known.owner === state && known.bytes === bytes) return known;
  const chunks = state.pending ? [state.pending] : readChunks(state, storage);
  if (!chunks) return LOST;
  // Its header was checked against the maximum packet size when it arrived.
  const length = packetLength(firstBytes(chunks, 5), Number.MAX_SAFE_INTEGER).length;
  const remainder: Remainder = { owner: state, chunks, bytes, length };
  remainders.set(ws, remainder);
  return remainder;
}

/** The stored pieces in order, or undefined if any is missing. */
function readChunks(state: SocketState, storage: DurableObjectStorage): Uint8Array[] | undefined {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (let i = 0; i < (state.pendingChunks ?? 0); i++) {
    const chunk = storage.kv.get<Uint8Array>(pendingKey(state.linkId, i));
    if (!(chunk instanceof Uint8Array)) return undefined;
    chunks.push(chunk);
    bytes += chunk.byteLength;
  }
  return bytes === state.pendingBytes ? chunks : undefined;
}

/** One more piece of a packet that is still not whole: kept in memory, persisted by appending it. */
function appendPending(state: SocketState, held: Remainder, chunk: Uint8Array, storage: DurableObjectStorage): number {
  held.chunks.push(chunk);
  held.bytes += chunk.byteLength;
  if (state.pending === undefined) return storeChunk(state, chunk, storage);
  if (held.bytes <= ATTACHMENT_PENDING_MAX) {
    state.pending = join(held.chunks, held.bytes);
    held.chunks = [state.pending];
    return 0;
  }
  // Outgrew the attachment: what it held becomes the first stored piece.
  const first = state.pending;
  delete state.pending;
  return storeChunk(state, first, storage) + storeChunk(state, chunk, storage);
}

function storeChunk(state: SocketState, chunk: Uint8Array, storage: DurableObjectStorage): number {
  const index = state.pendingChunks ?? 0;
  storage.kv.put(pendingKey(state.linkId, index), chunk);
  state.pendingChunks = index + 1;
  state.pendingBytes = (state.pendingBytes ?? 0) + chunk.byteLength;
  return 1;
}

/** The held packet with the chunk that completes it (or, while its header is incomplete, reframed with it). */
function completePending(held: Remainder | typeof LOST, chunk: Uint8Array, maximumPacketSize: number): FrameResult {
  if (held === LOST) return { frames: [], rest: EMPTY, error: LOST_ERROR };
  // A header still incomplete is at most four bytes: framing it again with the chunk is cheap.
  if (held.length === undefined) return splitFrames(join(held.chunks, held.bytes), chunk, maximumPacketSize);
  const need = held.length - held.bytes;
  const packet = join([...held.chunks, chunk.subarray(0, need)], held.length);
  const after = splitFrames(EMPTY, chunk.subarray(need), maximumPacketSize);
  return { ...after, frames: [packet, ...after.frames] };
}

/** Start a new remainder with the bytes after the last whole packet (a compact copy, from splitFrames). */
function keepRest(ws: WebSocket, state: SocketState, rest: Uint8Array, storage: DurableObjectStorage): number {
  if (rest.byteLength === 0) {
    remainders.delete(ws);
    return 0;
  }
  const length = packetLength(rest, Number.MAX_SAFE_INTEGER).length;
  remainders.set(ws, { owner: state, chunks: [rest], bytes: rest.byteLength, length });
  if (rest.byteLength > ATTACHMENT_PENDING_MAX) return storeChunk(state, rest, storage);
  state.pending = rest;
  return 0;
}

function join(chunks: Uint8Array[], bytes: number): Uint8Array {
  const joined = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    joined.set(chunk.subarray(0, bytes - at), at);
    at += Math.min(chunk.byteLength, bytes - at);
    if (at === bytes) break;
  }
  return joined;
}

/** The first `n` bytes of the pieces (fewer if they hold fewer). */
function firstBytes(chunks: Uint8Array[], n: number): Uint8Array {
  const first = chunks[0] ?? EMPTY;
  if (first.byteLength >= n || chunks.length === 1) return first;
  const total = chunks.reduce((sum, c) => sum + c.byteLength, 0);
  return join(chunks, Math.min(n, total));
}

/** Echo the MQTT WebSocket subprotocol the client offered [MQTT-6.0.0-3]. */
export function chooseSubprotocol(request: Request): string | undefined {
  const offered = (request.headers.get("Sec-WebSocket-Protocol") ?? "").split(",").map((p) => p.trim());
  return offered.find((p) => p === "mqtt") ?? offered.find((p) => p === "mqttv3.1");
}

/**
 * Accept a client's WebSocket upgrade (hibernatable, tagged `tag`). The CONNECT timeout starts
 * now: `state.connectBy` is set from `connectTimeoutMs` (by default `CONNECT_TIMEOUT` of the
 * Worker's env) unless the caller set it.
 */
export function acceptSocket(
  ctx: DurableObjectState,
  request: Request,
  state: SocketState,
  tag: string,
  connectTimeoutMs: number = connectTimeoutMsFromEnv(env),
): Response {
  state.connectBy ??= Date.now() + connectTimeoutMs;
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

/** One WebSocket message per frame (link frames, and single packets); false once the socket is closing. */
export function safeSend(ws: WebSocket, frames: Uint8Array[]): boolean {
  try {
    for (const f of frames) ws.send(f);
    return true;
  } catch {
    return false;
  }
}

/**
 * MQTT packets to a client, several to a WebSocket message up to PACKETS_PER_MESSAGE_BYTES: a
 * single WebSocket data frame can contain multiple MQTT Control Packets and the receiver must
 * not assume they are aligned on frame boundaries [MQTT-6.0.0-2]. Each `send()` costs the
 * runtime far more than its bytes (docs/architecture.md, "Packets per WebSocket message"), so a
 * batch of deliveries goes as one. `clientMaximum`, a 5.0 client's Maximum Packet Size, caps a
 * joined message too: a client that asks for small packets may buffer a whole message.
 */
export function sendPackets(ws: WebSocket, frames: Uint8Array[], clientMaximum = Number.POSITIVE_INFINITY): boolean {
  const configured = (packetsPerMessageBytes ??= packetsPerMessageBytesFromEnv(env));
  return safeSend(ws, joinedPieces(frames, Math.min(configured, clientMaximum)));
}

/** PACKETS_PER_MESSAGE_BYTES, read once per isolate (vars do not change while it lives). */
let packetsPerMessageBytes: number | undefined;

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

/**
 * When a socket that has not sent CONNECT yet is closed, if it still has not: a fixed time after
 * the upgrade, whatever bytes trickle in meanwhile (one byte every few seconds must not hold a
 * socket open forever).
 */
export function connectDeadline(state: SocketState): number | undefined {
  if (state.clientId !== undefined || state.closed) return undefined;
  return state.connectBy ?? state.lastSeen + DEFAULT_CONNECT_TIMEOUT_MS;
}

/** Close a socket that did not send CONNECT in time. */
export function closeForConnectTimeout(ws: WebSocket, state: SocketState): void {
  const closed = { ...state, closed: true };
  releaseAdmissionOf(undefined, closed);
  writeState(ws, closed);
  safeClose(ws, 1002, "CONNECT timeout");
}

/** The first packet must be a CONNECT [MQTT-3.1.0-1]: reject other bytes before waiting for a whole packet. */
export function startsWithConnect(state: SocketState, message: ArrayBuffer | string): boolean {
  if (state.clientId !== undefined || state.pending || state.pendingChunks) return true;
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

function pendingKey(linkId: string, index: number): string {
  return `pending:${linkId}:${index}`;
}

const EMPTY = new Uint8Array(0);
