import { DurableObject } from "cloudflare:workers";
import { encodePacket, type ProtocolViolation } from "../core/mqtt/codec";
import { ReasonCode } from "../core/mqtt/packets";
import { Batcher, piecesOf } from "../core/util/batcher";
import type { BrokerLimits } from "../core/session/types";
import type { Env } from "../worker/env";
import { connectTimeoutMsFromEnv, limitsFromEnv, RPC_CALL_BYTES } from "./config";
import { admitPublishes, DropLog, socketBacklog } from "./flow";
import { Meter } from "./metrics";
import type { SessionDO } from "./session";
import { PresenceSender, presenceLeaseMs } from "./presence";
import { renewalDeadline, renewalDue } from "../core/presence";
import {
  acceptSocket,
  admitFirstPacket,
  frameMessage,
  keepAliveDeadline,
  readState,
  safeClose,
  safeSend,
  sendPackets,
  closeCodeToEcho,
  closeForConnectTimeout,
  connectDeadline,
  startsWithConnect,
  releaseAdmissionOf,
  upgradeContext,
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
/** When telling the session that the connection ended failed, how soon the alarm tries again. */
const LINK_LOST_RETRY_MS = 5_000;
/** The relay's socket attachment: also whether the session's CONNACK has been forwarded yet. */
type RelayState = SocketState & { connackSent?: boolean; protocolVersion?: number; connectedAt?: number };

/**
 * Holds the socket of a client that connected to plain `/mqtt`, whose client identifier is
 * only known once CONNECT arrives. It frames bytes into packets, answers PINGREQ itself (once
 * what came before it has reached the session), enforces keep alive, and relays every other
 * packet to the SessionDO of that identifier, which sends back what the client must receive.
 */
export class ConnectionDO extends DurableObject<Env> {
  readonly #limits: BrokerLimits;
  #session: DurableObjectStub<SessionDO> | undefined;
  #toSession: Batcher<Inbound, undefined> | undefined;
  readonly #meter: Meter;
  readonly #drops: DropLog;
  /** Set when a CONNECT timeout closed the socket: the object is reset once the close completes (#reset). */
  #resetOnClose = false;
  readonly #presence: PresenceSender;
  readonly #leaseMs: number;
  /** The CONNECT on its way through open(): messages after it wait, or they would overtake it. */
  #opening: Promise<boolean> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#presence = new PresenceSender(env);
    this.#leaseMs = presenceLeaseMs(env);
    this.#meter = new Meter(ctx, env, "connection");
    this.#drops = new DropLog(this.#meter);
    this.#limits = limitsFromEnv(env);
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
      ...upgradeContext(request),
    };
    const response = acceptSocket(this.ctx, request, state, CLIENT_TAG, connectTimeoutMsFromEnv(this.env));
    await this.ctx.storage.setAlarm(connectDeadline(state)!);
    return response;
  }

  override async webSocketMessage(ws: WebSocket, message: ArrayBuffer | string): Promise<void> {
    this.#meter.count("webSocketMessages");
    // The session authenticates the CONNECT (D1, PBKDF2, a penalty wait): nothing is framed or
    // relayed before it has answered. Waiters resume in arrival order, after the message
    // that carried the CONNECT has relayed what followed it.
    while (this.#opening) await this.#opening.catch(() => false);
    const state = readState(ws);
    if (!state) return safeClose(ws, 1011);
    if (!startsWithConnect(state, message)) {
      releaseAdmissionOf(ws, state);
      return safeClose(ws, 1002, "CONNECT expected");
    }
    const now = Date.now();
    const framed = frameMessage(ws, state, message, this.ctx.storage, this.#limits.maximumPacketSize, now);
    this.#meter.count("rowsWritten", framed.rowsWritten);
    // Over its publish rate, the client is refused here, before its packets cost a call.
    const { frames, refusal } = admitPublishes(ws, framed.frames, this.#limits, now);
    const error = refusal ?? framed.error;
    const relay: Uint8Array[] = [];
    /** PINGRESPs owed once the packets before their PINGREQ have reached the session. */
    let pongs = 0;
    for (const frame of frames) {
      if (state.clientId === undefined) {
        if (state.closed) return;
        const opening = this.#connect(ws, state, frame);
        this.#opening = opening;
        let open: boolean;
        try {
          open = await opening;
        } finally {
          if (this.#opening === opening) this.#opening = undefined;
        }
        if (!open) return;
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
      if (error) {
        releaseAdmissionOf(ws, state);
        safeClose(ws, 1002, error.message);
      }
      return;
    }
    try {
      if (relay.length > 0 || error) {
        // A framing error goes to the session too: it answers like any other protocol error
        // (5.0: DISCONNECT with the reason code) and closes the connection through toClient.
        // In pieces below the call's size limit, the error with the last.
        const relayed = piecesOf(relay, RPC_CALL_BYTES).map((piece, i, all) =>
          this.#relay(state.clientId!, state.linkId).push({ frames: piece, ...(error && i === all.length - 1 && { error }) }),
        );
        // Refused for its rate: closed now, not once the session has answered, which under a
        // flood is long after (the client keeps sending meanwhile, and each message costs the
        // runtime an event). The session still gets the error after the admitted packets, and
        // ends the session's connection as for any protocol error (Will, presence).
        if (refusal) this.#refuse(ws, state.clientId, refusal, now);
        await Promise.all(relayed);
      } else if (pongs > 0) {
        await this.#toSession?.settled();
      }
    } catch (e) {
      console.error("relay to session failed", e);
      safeClose(ws, 1011, "session unavailable");
      return;
    }
    if (pongs > 0) sendPackets(ws, new Array<Uint8Array>(pongs).fill(PINGRESP));
    this.#renewLease(ws, now);
  }

  /**
   * This object holds the socket, and answers PINGREQ without the session: it renews the
   * connection's presence lease, on a packet once half of it has passed (at most one renewal
   * per half lease), or from the alarm at three quarters when no packet came (keep alive 0).
   */
  #renewLease(ws: WebSocket, now: number): void {
    const state = readState(ws) as RelayState | undefined;
    if (!state || state.closed || state.clientId === undefined || state.connectedAt === undefined) return;
    if (!renewalDue(state.leaseAt, now, this.#leaseMs)) return;
    state.leaseAt = now;
    writeState(ws, state);
    void this.#presence.send({ clientId: state.clientId, online: true, renewal: true, at: now, connectedAt: state.connectedAt });
    this.#scheduleKeepAlive(state);
  }

  /** Close a connection refused for its publish rate: DISCONNECT with the reason first in 5.0. */
  #refuse(ws: WebSocket, clientId: string, refusal: ProtocolViolation, now: number): void {
    this.#drops.record(clientId, "rate", 1, now);
    if ((readState(ws) as RelayState | undefined)?.protocolVersion === 5) {
      safeSend(ws, [encodePacket({ type: "disconnect", reasonCode: refusal.reasonCode, properties: { reasonString: refusal.message } }, 5)]);
    }
    safeClose(ws, 1000, `reason 0x${refusal.reasonCode.toString(16)}`);
  }

  async #connect(ws: WebSocket, state: SocketState, frame: Uint8Array): Promise<boolean> {
    const admitted = admitFirstPacket(ws, frame, this.#limits.maximumPacketSize);
    if (!admitted) {
      releaseAdmissionOf(ws, state);
      return false;
    }
    const { connect, assigned } = admitted;
    const upgrade = {
      ...(state.certificateUser !== undefined && { certificateUser: state.certificateUser }),
      ...(state.connectBy !== undefined && { connectBy: state.connectBy }),
    };
    state.clientId = connect.clientId;
    (state as RelayState).protocolVersion = connect.protocolVersion;
    writeState(ws, state);
    // Kept outside the socket too: if the runtime restarts, the socket is gone and the
    // alarm uses this to tell the session its connection was lost.
    this.ctx.storage.kv.put(CLIENT_ID_KEY, connect.clientId);
    this.#meter.count("rowsWritten");
    let opened: Awaited<ReturnType<SessionDO["open"]>>;
    try {
      opened = await this.#sessionStub(connect.clientId).open(state.linkId, connect, assigned, state.remoteAddress, upgrade);
    } finally {
      releaseAdmissionOf(ws, readState(ws) ?? state); // answered (or failed): no longer pending
    }
    if ("refused" in opened) {
      // Authentication refused it: the CONNACK, then the close [MQTT-3.2.2-7]; the session
      // was not touched and needs no linkLost.
      const current = readState(ws) ?? state;
      delete current.clientId;
      current.closed = true;
      writeState(ws, current);
      if (opened.refused.byteLength > 0) safeSend(ws, [opened.refused]);
      safeClose(ws, 1000, "CONNECT refused");
      await this.#forget();
      return false;
    }
    const { keepAlive, connectedAt } = opened;
    const current = (readState(ws) ?? state) as RelayState;
    current.keepAlive = keepAlive;
    current.connectedAt = connectedAt; // the session's connect event started the presence lease
    current.leaseAt = connectedAt;
    writeState(ws, current);
    Object.assign(state, current);
    this.#scheduleKeepAlive(current);
    return true;
  }

  /**
   * Packets from the session for the client (several to a WebSocket message, at most
   * `clientMaximum` bytes: sendPackets); `close` ends the connection after them. Answers
   * with the bytes the socket holds not yet written to the network, which the session uses
   * to drop QoS 0 to a client that does not keep up.
   */
  async toClient(frames: Uint8Array[], close?: number, clientMaximum?: number): Promise<{ buffered: number }> {
    this.#meter.count("requests");
    const ws = this.ctx.getWebSockets(CLIENT_TAG)[0];
    if (!ws) return { buffered: 0 };
    sendPackets(ws, frames, clientMaximum);
    const sent = frames.length > 0 && (readState(ws) as RelayState | undefined);
    if (sent && !sent.connackSent) {
      sent.connackSent = true; // the session's first packet to a client is its CONNACK
      writeState(ws, sent);
    }
    if (close !== undefined) {
      const state = readState(ws);
      if (state) {
        delete state.clientId; // the session already knows: no linkLost for this close
        state.closed = true;
        state.keepAlive = 0;
        writeState(ws, state);
      }
      safeClose(ws, 1000, `reason 0x${close.toString(16)}`);
      await this.#forget();
    }
    return { buffered: socketBacklog(ws) };
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
    if (!ws || !state || state.closed) {
      // The socket is gone without a close event (the runtime restarted), or we closed it and
      // what followed did not finish: tell the session if it was not told (the stored client
      // identifier is deleted only once it was), then leave nothing behind.
      const clientId = this.ctx.storage.kv.get<string>(CLIENT_ID_KEY);
      // No socket at all: it vanished without a close event, which the lease tells ("lease-expired").
      if (clientId !== undefined) await this.#sessionStub(clientId).linkLost(this.ctx.id.toString(), ReasonCode.UnspecifiedError, ws ? "lost" : "vanished");
      if (ws) safeClose(ws, 1000);
      await this.#forget();
      return;
    }
    if (state.clientId === undefined) {
      // Still no CONNECT: counted from the upgrade, whatever bytes came since (5.0 3.1.4).
      const deadline = connectDeadline(state)!;
      if (deadline > Date.now()) {
        await this.ctx.storage.setAlarm(deadline);
        return;
      }
      closeForConnectTimeout(ws, state);
      this.#resetOnClose = true;
      await this.#forget();
      return;
    }
    const deadline = keepAliveDeadline(state) ?? Date.now() + LIVENESS_CHECK_MS;
    if (deadline > Date.now()) {
      const lease = (state as RelayState).connectedAt !== undefined ? renewalDeadline(state.leaseAt ?? 0, this.#leaseMs) : undefined;
      if (lease !== undefined && lease <= Date.now()) this.#renewLease(ws, Date.now()); // sets the next alarm
      else await this.ctx.storage.setAlarm(Math.min(deadline, lease ?? deadline));
      return;
    }
    // No packet within one and a half keep alive intervals [MQTT-3.1.2-24].
    await this.#gone(ws, ReasonCode.KeepAliveTimeout);
    safeClose(ws, 1000, "keep alive timeout");
  }

  /** The connection ended (closed by either side, or timed out): tell the session, then leave nothing behind. */
  async #gone(ws: WebSocket, reason: number): Promise<void> {
    const state = readState(ws);
    if (state) {
      releaseAdmissionOf(ws, state); // closed before CONNECT: the slot is free
      const clientId = state.clientId;
      delete state.clientId;
      state.closed = true;
      state.keepAlive = 0;
      writeState(ws, state);
      // The session first: until it knows, the stored client identifier lets the alarm tell it.
      if (clientId !== undefined) await this.#tellLinkLost(clientId, state.linkId, reason);
    }
    await this.#forget();
    if (this.#resetOnClose) await this.#reset();
  }

  /** linkLost, with an alarm to try again (from the stored client identifier) if it fails. */
  async #tellLinkLost(clientId: string, linkId: string, reason: number): Promise<void> {
    try {
      await this.#sessionStub(clientId).linkLost(linkId, reason);
    } catch (e) {
      await this.ctx.storage.setAlarm(Date.now() + LINK_LOST_RETRY_MS);
      throw e;
    }
  }

  /**
   * Delete every stored key (client identifier, partial packet pieces) and the alarm: a
   * connection that ended leaves no storage behind, and no alarm to wake the object for
   * nothing, even after a restart (before, each left an alarm: ~9,700 connections later a
   * restarted broker opened 4,470 files before any client came). deleteAll() deletes the alarm
   * too from compatibility date 2026-02-24 on. Locally workerd keeps the object's database
   * file, emptied (no tables left), which nothing opens again.
   */
  async #forget(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }

  /**
   * After a CONNECT timeout, once the closing handshake is done and storage is empty: drop this
   * object. workerd keeps the TCP connection of a hibernatable socket that never delivered a
   * message open after its closing handshake until the object is evicted (about 11 s later
   * locally), so the client saw the close only then (20-21 s instead of 10). Nothing is lost:
   * the object holds nothing else, and nobody calls it again.
   */
  async #reset(): Promise<never> {
    await this.ctx.storage.sync(); // the deletes are written before the object goes
    this.ctx.abort("connection ended: CONNECT timeout");
    throw new Error("unreachable: ctx.abort() throws");
  }

  #scheduleKeepAlive(state: SocketState): void {
    if (state.closed) return; // closed while the session took CONNECT in: nothing to wake for
    const deadline = keepAliveDeadline(state) ?? Date.now() + LIVENESS_CHECK_MS;
    const lease = (state as RelayState).connectedAt !== undefined ? renewalDeadline(state.leaseAt ?? Date.now(), this.#leaseMs) : deadline;
    void this.ctx.storage.setAlarm(Math.min(deadline, lease));
  }

  /** To the session: one fromClient() call in flight, packets arriving meanwhile go in the next, in order. */
  #relay(clientId: string, linkId: string): Batcher<Inbound, undefined> {
    if (!this.#toSession) {
      const stub = this.#sessionStub(clientId);
      this.#toSession = new Batcher<Inbound, undefined>(
        async (items) => {
          const error = items.find((i) => i.error !== undefined)?.error;
          await stub.fromClient(
            linkId,
            items.flatMap((i) => i.frames),
            error,
          );
          return items.map(() => undefined);
        },
        512,
        (item) => item.frames.reduce((n, f) => n + f.byteLength, 0),
        RPC_CALL_BYTES,
      );
    }
    return this.#toSession;
  }

  #sessionStub(clientId: string): DurableObjectStub<SessionDO> {
    this.#session ??= this.env.SESSIONS.get(this.env.SESSIONS.idFromName(clientId));
    return this.#session;
  }
}
