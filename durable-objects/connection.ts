import { DurableObject } from "cloudflare:workers";
import type { ProtocolViolation } from "../core/mqtt/codec";
import { ReasonCode } from "../core/mqtt/packets";
import { Batcher } from "../core/util/batcher";
import type { Env } from "../worker/env";
import { limitsFromEnv } from "./config";
import { Meter } from "./metrics";
import type { SessionDO } from "./session";
import {
  acceptSocket,
  admitFirstPacket,
  dropPending,
  frameMessage,
  keepAliveDeadline,
  readState,
  safeClose,
  safeSend,
  closeCodeToEcho,
  closeForConnectTimeout,
  connectDeadline,
  startsWithConnect,
  writeState,
  type SocketState,
} from "./socket";

/** Packets for the session, and a framing error after them, if any. */
interface Inbound {
  frames: Uint8Array[];
  error?: ProtocolViolation;
}

const CLIENT_TAG = "client";
const PINGREQ = 0xc0;
const PINGRESP = new Uint8Array([0xd0, 0x00]);
const CLIENT_ID_KEY = "clientId";
/** Without keep alive, how often to check that the socket still exists. */
const LIVENESS_CHECK_MS = 3_600_000;
/** The relay's socket attachment: also whether the session's CONNACK has been forwarded yet. */
type RelayState = SocketState & { connackSent?: boolean };

/**
 * Holds the socket of a client that connected to plain `/mqtt`, whose client identifier is
 * only known once CONNECT arrives. It frames bytes into packets, answers PINGREQ itself (once
 * what came before it has reached the session), enforces keep alive, and relays every other
 * packet to the SessionDO of that identifier, which sends back what the client must receive.
 */
export class ConnectionDO extends DurableObject<Env> {
  readonly #maximumPacketSize: number;
  #session: DurableObjectStub<SessionDO> | undefined;
  #toSession: Batcher<Inbound, undefined> | undefined;
  readonly #meter: Meter;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#meter = new Meter(ctx, env, "connection");
    this.#maximumPacketSize = limitsFromEnv(env).maximumPacketSize;
  }

  override async fetch(request: Request): Promise<Response> {
    this.#meter.count("requests");
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const remoteAddress = request.headers.get("CF-Connecting-IP");
    const state: SocketState = {
      linkId: this.ctx.id.toString(),
      keepAlive: 0,
      lastSeen: Date.now(),
      ...(remoteAddress && { remoteAddress }),
    };
    const response = acceptSocket(this.ctx, request, state, CLIENT_TAG);
    await this.ctx.storage.setAlarm(connectDeadline(state)!);
    return response;
  }

  override async webSocketMessage(ws: WebSocket, message: ArrayBuffer | string): Promise<void> {
    this.#meter.count("webSocketMessages");
    const state = readState(ws);
    if (!state) return safeClose(ws, 1011);
    if (!startsWithConnect(state, message)) return safeClose(ws, 1002, "CONNECT expected");
    const now = Date.now();
    const { frames, error } = frameMessage(ws, state, message, this.ctx.storage, this.#maximumPacketSize, now);
    const relay: Uint8Array[] = [];
    /** PINGRESPs owed once the packets before their PINGREQ have reached the session. */
    let pongs = 0;
    for (const frame of frames) {
      if (state.clientId === undefined) {
        if (!(await this.#connect(ws, state, frame))) return;
        continue;
      }
      if (frame[0] === PINGREQ && frame.byteLength === 2 && (readState(ws) as RelayState | undefined)?.connackSent) {
        // [MQTT-3.12.4-1], without waking the session. Not before the CONNACK has gone out: it
        // comes back from the session later, and must be the first packet sent [MQTT-3.2.0-1].
        // Nor before the packets sent ahead of it have been taken in by the session, as on the
        // fast path, where the session answers in order: a client that waits for PINGRESP
        // (MQTT.js's keep alive, a paced publisher) is then held back while the broker is
        // behind, instead of piling packets up in this object.
        if (relay.length === 0 && (this.#toSession?.idle ?? true)) safeSend(ws, [PINGRESP]);
        else pongs++;
        continue;
      }
      relay.push(frame);
    }
    if (state.clientId === undefined) {
      if (error) safeClose(ws, 1002, error.message);
      return;
    }
    try {
      if (relay.length > 0 || error) {
        // A framing error goes to the session too: it answers like any other protocol error
        // (5.0: DISCONNECT with the reason code) and closes the connection through toClient.
        await this.#relay(state.clientId, state.linkId).push({ frames: relay, ...(error && { error }) });
      } else if (pongs > 0) {
        await this.#toSession?.settled();
      }
    } catch (e) {
      console.error("relay to session failed", e);
      safeClose(ws, 1011, "session unavailable");
      return;
    }
    if (pongs > 0) safeSend(ws, new Array<Uint8Array>(pongs).fill(PINGRESP));
  }

  async #connect(ws: WebSocket, state: SocketState, frame: Uint8Array): Promise<boolean> {
    const admitted = admitFirstPacket(ws, frame, this.#maximumPacketSize);
    if (!admitted) return false;
    const { connect, assigned } = admitted;
    state.clientId = connect.clientId;
    writeState(ws, state);
    // Kept outside the socket too: if the runtime restarts, the socket is gone and the
    // alarm uses this to tell the session its connection was lost.
    this.ctx.storage.kv.put(CLIENT_ID_KEY, connect.clientId);
    this.#meter.count("rowsWritten");
    const { keepAlive } = await this.#sessionStub(connect.clientId).open(state.linkId, connect, assigned);
    const current = readState(ws) ?? state;
    current.keepAlive = keepAlive;
    writeState(ws, current);
    Object.assign(state, current);
    this.#scheduleKeepAlive(current);
    return true;
  }

  /** Packets from the session for the client; `close` ends the connection after them. */
  async toClient(frames: Uint8Array[], close?: number): Promise<void> {
    this.#meter.count("requests");
    const ws = this.ctx.getWebSockets(CLIENT_TAG)[0];
    if (!ws) return;
    safeSend(ws, frames);
    const sent = frames.length > 0 && (readState(ws) as RelayState | undefined);
    if (sent && !sent.connackSent) {
      sent.connackSent = true; // the session's first packet to a client is its CONNACK
      writeState(ws, sent);
    }
    if (close !== undefined) {
      this.ctx.storage.kv.delete(CLIENT_ID_KEY);
      const state = readState(ws);
      if (state) {
        dropPending(state, this.ctx.storage);
        delete state.clientId; // the session already knows: no linkLost for this close
        state.closed = true;
        state.keepAlive = 0;
        writeState(ws, state);
      }
      safeClose(ws, 1000, `reason 0x${close.toString(16)}`);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      await this.#gone(ws, ReasonCode.UnspecifiedError);
    } finally {
      safeClose(ws, closeCodeToEcho(code)); // complete the closing handshake the client started
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.#gone(ws, ReasonCode.UnspecifiedError);
  }

  override async alarm(): Promise<void> {
    this.#meter.count("requests");
    this.#meter.count("alarms");
    const ws = this.ctx.getWebSockets(CLIENT_TAG)[0];
    const state = ws && readState(ws);
    if (!ws || !state) {
      // The socket is gone without a close event (the runtime restarted): tell the session.
      const clientId = this.ctx.storage.kv.get<string>(CLIENT_ID_KEY);
      this.ctx.storage.kv.delete(CLIENT_ID_KEY);
      if (clientId !== undefined) await this.#sessionStub(clientId).linkLost(this.ctx.id.toString(), ReasonCode.UnspecifiedError);
      return;
    }
    if (state.clientId === undefined) {
      // Still no CONNECT, or the session already closed this connection.
      const deadline = connectDeadline(state);
      if (deadline === undefined) return;
      if (deadline <= Date.now()) closeForConnectTimeout(ws, state);
      else await this.ctx.storage.setAlarm(deadline);
      return;
    }
    const deadline = keepAliveDeadline(state) ?? Date.now() + LIVENESS_CHECK_MS;
    if (deadline > Date.now()) {
      await this.ctx.storage.setAlarm(deadline);
      return;
    }
    // No packet within one and a half keep alive intervals [MQTT-3.1.2-24].
    await this.#gone(ws, ReasonCode.KeepAliveTimeout);
    safeClose(ws, 1000, "keep alive timeout");
  }

  async #gone(ws: WebSocket, reason: number): Promise<void> {
    const state = readState(ws);
    if (!state) return;
    dropPending(state, this.ctx.storage);
    const clientId = state.clientId;
    delete state.clientId;
    state.closed = true;
    state.keepAlive = 0;
    writeState(ws, state);
    this.ctx.storage.kv.delete(CLIENT_ID_KEY);
    if (clientId !== undefined) await this.#sessionStub(clientId).linkLost(state.linkId, reason);
  }

  #scheduleKeepAlive(state: SocketState): void {
    void this.ctx.storage.setAlarm(keepAliveDeadline(state) ?? Date.now() + LIVENESS_CHECK_MS);
  }

  /** To the session: one fromClient() call in flight, packets arriving meanwhile go in the next, in order. */
  #relay(clientId: string, linkId: string): Batcher<Inbound, undefined> {
    if (!this.#toSession) {
      const stub = this.#sessionStub(clientId);
      this.#toSession = new Batcher<Inbound, undefined>(async (items) => {
        const error = items.find((i) => i.error !== undefined)?.error;
        await stub.fromClient(
          linkId,
          items.flatMap((i) => i.frames),
          error,
        );
        return items.map(() => undefined);
      });
    }
    return this.#toSession;
  }

  #sessionStub(clientId: string): DurableObjectStub<SessionDO> {
    this.#session ??= this.env.SESSIONS.get(this.env.SESSIONS.idFromName(clientId));
    return this.#session;
  }
}
