import { DurableObject } from "cloudflare:workers";
import { decodePacket, encodePacket, type ProtocolViolation } from "../core/mqtt/codec";
import { ReasonCode, type ConnectPacket } from "../core/mqtt/packets";
import { Session } from "../core/session/session";
import type { AdminEnd, SessionView } from "../core/session/admin";
import type { BrokerLimits, Delivery, Effect } from "../core/session/types";
import type { Env } from "../worker/env";
import { Batcher, piecesOf } from "../core/util/batcher";
import { connectTimeoutMsFromEnv, limitsFromEnv, qos1StoreDelayMsFromEnv, RPC_CALL_BYTES } from "./config";
import { admitPublishes, DropLog, socketBacklog } from "./flow";
import { Meter } from "./metrics";
import { PresenceSender, presenceLeaseMs } from "./presence";
import { renewalDeadline, renewalDue, type Ending } from "../core/presence";
import { Router } from "./router";
import { LINK_HEADER, Links, acceptLink, answerLinkCall, isLinkSocket, linkOptionsFromEnv, type LinkHandlers } from "./link";
import {
  acceptSocket,
  admitFirstPacket,
  dropPending,
  frameMessage,
  keepAliveDeadline,
  randomId,
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
import { SqlSessionStore } from "./storage/sql-session-store";
import { aclCache, type AclCache } from "../worker/security/acl-cache";
import { asAuthenticated, ConnectGate, InOrder, type Admission } from "./connect-auth";

/** What goes to a relayed client in one call: packets, then maybe the close. */
interface Outbox {
  frames: Uint8Array[];
  close?: number;
}

/** A deliver() call whose QoS 1 messages were sent and are not all acknowledged or stored yet. */
interface PendingDeliver {
  tickets: number[];
  result: { live: boolean };
  resolve: (result: { live: boolean }) => void;
}

/** Where the client's network connection is: on this object, or on a ConnectionDO. */
type Link = { kind: "local"; linkId: string } | { kind: "remote"; linkId: string };

const CLIENT_TAG = "client";
const DENIED_COUNTER = { publish: "aclDeniedPublish", subscribe: "aclDeniedSubscribe", read: "aclDeniedRead" } as const;
const LIVENESS_CHECK_MS = 3_600_000;
/** How long the rows of acknowledged deliveries may wait for a write to ride along with. */
const ACK_FLUSH_MS = 50;

/**
 * One MQTT session, keyed by client identifier. Runs the pure session state machine over
 * Durable Object SQLite and carries out its effects. The client's socket is held here when
 * the client used the fast path (`/mqtt/<clientId>`), otherwise by a ConnectionDO that
 * relays packets (see docs/architecture.md).
 */
export class SessionDO extends DurableObject<Env> {
  readonly #limits: BrokerLimits;
  readonly #session: Session;
  readonly #router: Router;
  readonly #meter: Meter;
  #link: Link | undefined;
  #linkLoaded = false;
  #alarmAt: number | null | undefined;
  /** Sends to remote links gathered within one turn, flushed as one RPC per link. */
  #outboxes = new Map<string, Outbox>();
  #flushScheduled = false;
  readonly #relays = new Map<string, Batcher<Outbox, undefined>>();
  #socketCache: { linkId: string; ws: WebSocket } | undefined;
  #writeFlushTimer: ReturnType<typeof setTimeout> | undefined;
  /** deliver() calls waiting for their QoS 1 messages to be acknowledged or stored (see deliver). */
  #awaitingStore: PendingDeliver[] = [];
  #storeTimer: ReturnType<typeof setTimeout> | undefined;
  /** deliver() calls wait on this while the ACL rules load, in the order they came. */
  #deliveriesGate: Promise<void> | undefined;
  /**
   * How long QoS 1 messages sent to the client wait before being stored (QOS1_STORE_DELAY_MS):
   * the ones it acknowledges meanwhile are never written, the rest are written together, in
   * one row. The publisher's PUBACK waits as long at most, plus the commit.
   */
  readonly #storeDelayMs: number;
  /** A relayed client's socket backlog, as its ConnectionDO last reported it. */
  #remoteBuffered = 0;
  readonly #drops: DropLog;
  readonly #presence: PresenceSender;
  readonly #leaseMs: number;
  /** A relayed client's IP address, from open(), for its presence event. */
  #remoteAddress: string | undefined;
  /** The ACL rules of this isolate (worker/security/acl-cache.ts), behind the session's checks. */
  readonly #acl: AclCache;
  readonly #gate: ConnectGate;
  /** What this session answers on a shard's link (durable-objects/link.ts). */
  readonly #linkHandlers: LinkHandlers = {
    // A cast delivery (QoS 0) is reported only when this session is gone: the shard then forgets it.
    deliver: { run: (deliveries: Delivery[]) => this.#deliver(deliveries), report: (r) => !(r as { live: boolean }).live },
  };
  /** Messages of a socket wait here while an earlier one is still being handled (CONNECT authenticating). */
  readonly #inOrder = new InOrder<WebSocket>();
  /** Connections whose CONNECT is being authenticated, and those of them that ended meanwhile. */
  readonly #authenticating = new Set<string>();
  readonly #cancelled = new Set<string>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#presence = new PresenceSender(env);
    this.#leaseMs = presenceLeaseMs(env);
    this.#limits = limitsFromEnv(env);
    this.#storeDelayMs = qos1StoreDelayMsFromEnv(env);
    this.#meter = new Meter(ctx, env, "session");
    this.#drops = new DropLog(this.#meter);
    this.#meter.sql.exec(`CREATE TABLE IF NOT EXISTS link (id INTEGER PRIMARY KEY CHECK (id = 1), kind TEXT NOT NULL, link_id TEXT NOT NULL)`);
    this.#acl = aclCache(env);
    this.#gate = new ConnectGate(env, this.#acl, this.#meter);
    this.#session = new Session(new SqlSessionStore(this.#meter.sql), this.#limits, undefined, this.#acl.authorizer());
    this.#router = new Router(env, new Links(linkOptionsFromEnv(env), () => this.#meter.count("webSocketMessages")));
  }

  // ------------------------------------------------------------ fast path: socket held here

  override async fetch(request: Request): Promise<Response> {
    this.#meter.count("requests");
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    // A shard's link (the Worker strips this header from clients' upgrades).
    if (request.headers.get(LINK_HEADER) !== null) return acceptLink(this.ctx);
    const url = new URL(request.url);
    const hint = decodeURIComponent(url.pathname.split("/")[2] ?? "") || url.searchParams.get("clientId") || undefined;
    const state: SocketState = {
      linkId: randomId(),
      keepAlive: 0,
      lastSeen: Date.now(),
      ...(hint !== undefined && { hint }),
      ...(request.headers.get("CF-Connecting-IP") && { remoteAddress: request.headers.get("CF-Connecting-IP")! }),
      ...upgradeContext(request),
    };
    const response = acceptSocket(this.ctx, request, state, CLIENT_TAG, connectTimeoutMsFromEnv(this.env));
    this.#scheduleAlarm();
    return response;
  }

  /**
   * Messages of one socket are handled in order, each at once while nothing is pending; after
   * one that awaits (its CONNECT being authenticated, or the ACL rules of a freshly woken
   * isolate being loaded) the next ones wait for it. Other events of the object go on.
   */
  override webSocketMessage(ws: WebSocket, message: ArrayBuffer | string): void | Promise<void> {
    this.#meter.count("webSocketMessages");
    if (isLinkSocket(this.ctx, ws)) return answerLinkCall(ws, message, this.#linkHandlers);
    return this.#inOrder.run(ws, () => (this.#acl.ready ? this.#onMessage(ws, message) : this.#aclLoaded().then(() => this.#onMessage(ws, message))));
  }

  #onMessage(ws: WebSocket, message: ArrayBuffer | string): void | Promise<void> {
    const state = readState(ws);
    if (!state) return safeClose(ws, 1011);
    if (!startsWithConnect(state, message)) {
      releaseAdmissionOf(ws, state);
      return safeClose(ws, 1002, "CONNECT expected");
    }
    const now = Date.now();
    const framed = frameMessage(ws, state, message, this.ctx.storage, this.#limits.maximumPacketSize, now);
    this.#meter.count("rowsWritten", framed.rowsWritten);
    const { frames, refusal } = admitPublishes(ws, framed.frames, this.#limits, now);
    return this.#handleFrames(ws, state, frames, 0, refusal ?? framed.error, refusal !== undefined, now);
  }

  /** Frames from `from` on; after a CONNECT, the rest once it has been authenticated. */
  #handleFrames(ws: WebSocket, state: SocketState, frames: Uint8Array[], from: number, error: ProtocolViolation | undefined, rateRefused: boolean, now: number): void | Promise<void> {
    for (let i = from; i < frames.length; i++) {
      if (state.clientId === undefined) {
        if (state.closed) return;
        return this.#connectLocal(ws, state, frames[i]!).then((open) => {
          if (open) return this.#handleFrames(ws, state, frames, i + 1, error, rateRefused, Date.now());
        });
      }
      if (!this.#handleLocalFrame(ws, state, frames[i]!, now)) return;
    }
    if (state.clientId === undefined) {
      if (error) {
        releaseAdmissionOf(ws, state);
        safeClose(ws, 1002, error.message);
      }
      return;
    }
    const refusal = rateRefused ? error : undefined;
    if (refusal && state.clientId !== undefined) this.#drops.record(state.clientId, "rate", 1, now);
    if (error) this.#localError(ws, state, error.reasonCode, error.message, now);
    else this.#renewLease(ws, state, now);
  }

  /**
   * The presence lease of the connection held here, renewed by a packet once half of it has
   * passed (at most one renewal per half lease), or by the alarm (keep alive 0) at three quarters.
   */
  #renewLease(ws: WebSocket, state: SocketState, now: number): void {
    const connection = this.#session.record?.connection;
    if (!connection || this.#currentLink()?.linkId !== state.linkId || !renewalDue(state.leaseAt, now, this.#leaseMs)) return;
    state.leaseAt = now;
    writeState(ws, state);
    void this.#presence.send({ clientId: state.clientId!, online: true, renewal: true, at: now, connectedAt: connection.connectedAt });
    this.#scheduleAlarm();
  }

  /**
   * The CONNECT of a socket held here: authenticated before anything of the session is touched;
   * refused, it is answered and closed and the session is left as it was. Resolves to whether
   * the connection is open (the packets after it are then handled).
   */
  async #connectLocal(ws: WebSocket, state: SocketState, frame: Uint8Array): Promise<boolean> {
    const admitted = admitFirstPacket(ws, frame, this.#limits.maximumPacketSize, state.hint);
    if (!admitted) {
      releaseAdmissionOf(ws, state);
      return false;
    }
    const { connect, assigned } = admitted;
    const decision = await this.#authenticate(state.linkId, connect, {
      ...(state.certificateUser !== undefined && { certificateUser: state.certificateUser }),
      ...(state.remoteAddress !== undefined && { remoteAddress: state.remoteAddress }),
      ...(state.connectBy !== undefined && { connectBy: state.connectBy }),
    });
    // The state as it is now: a CONNECT timeout may have closed the socket meanwhile.
    const current = readState(ws) ?? state;
    releaseAdmissionOf(ws, current);
    if (decision === "gone" || current.closed) return false;
    if (!decision.ok) {
      safeSend(ws, [decision.connack]);
      writeState(ws, { ...current, closed: true });
      safeClose(ws, 1000, "CONNECT refused");
      return false;
    }
    const now = Date.now();
    state.clientId = connect.clientId;
    delete state.hint;
    this.#takeOver(now);
    this.#setLink({ kind: "local", linkId: state.linkId });
    const effects = this.#session.connect(asAuthenticated(connect, decision.principal), now, assigned, decision.principal);
    state.keepAlive = this.#session.record?.connection?.keepAlive ?? 0;
    state.lastSeen = now;
    state.leaseAt = now; // the connect event starts the presence lease
    writeState(ws, state);
    this.#apply(effects);
    return this.#currentLink()?.linkId === state.linkId;
  }

  /**
   * Authenticate a CONNECT (both routes); "gone" when its connection ended meanwhile (nothing
   * is then done with it). Refusals are counted by the gate.
   */
  async #authenticate(linkId: string, connect: ConnectPacket, context: Parameters<ConnectGate["admit"]>[1]): Promise<Admission | "gone"> {
    this.#authenticating.add(linkId);
    try {
      const decision = await this.#gate.admit(connect, context);
      return this.#cancelled.has(linkId) ? "gone" : decision;
    } finally {
      this.#authenticating.delete(linkId);
      this.#cancelled.delete(linkId);
    }
  }

  /** The ACL rules of this isolate, loaded (a failure is logged: checks then deny until they load). */
  async #aclLoaded(): Promise<void> {
    try {
      await this.#acl.load();
    } catch (e) {
      console.error("ACL rules could not be loaded", e);
    }
  }

  /** Returns false when the connection was closed. */
  #handleLocalFrame(ws: WebSocket, state: SocketState, frame: Uint8Array, now: number): boolean {
    if (this.#currentLink()?.linkId !== state.linkId) {
      // A connection that was taken over: nothing it sends counts any more.
      safeClose(ws, 1000, "session taken over");
      return false;
    }
    this.#apply(this.#packetEffects(frame, now));
    return this.#currentLink()?.linkId === state.linkId;
  }

  /** One whole packet after CONNECT: decoded for the session's version, or a protocol error. */
  #packetEffects(frame: Uint8Array, now: number): Effect[] {
    const decoded = decodePacket(frame, {
      protocolVersion: this.#session.protocolVersion,
      maximumPacketSize: this.#limits.maximumPacketSize,
    });
    return decoded.ok
      ? this.#session.packet(decoded.packet, now)
      : this.#session.protocolError(decoded.error.reasonCode, decoded.error.message, now);
  }

  #localError(ws: WebSocket, state: SocketState, reason: number, message: string, now: number): void {
    if (this.#currentLink()?.linkId === state.linkId) this.#apply(this.#session.protocolError(reason, message, now));
    else safeClose(ws, 1002, message);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    if (isLinkSocket(this.ctx, ws)) return safeClose(ws, closeCodeToEcho(code));
    try {
      if (!this.#acl.ready) await this.#aclLoaded(); // the Will is checked
      this.#localGone(ws, ReasonCode.UnspecifiedError);
    } finally {
      safeClose(ws, closeCodeToEcho(code)); // complete the closing handshake the client started
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    if (isLinkSocket(this.ctx, ws)) return;
    if (!this.#acl.ready) await this.#aclLoaded();
    this.#localGone(ws, ReasonCode.UnspecifiedError);
  }

  #localGone(ws: WebSocket, reason: number): void {
    const state = readState(ws);
    if (!state) return;
    dropPending(state, this.ctx.storage);
    releaseAdmissionOf(ws, state); // closed before its CONNECT was answered
    if (this.#authenticating.has(state.linkId)) this.#cancelled.add(state.linkId);
    if (this.#currentLink()?.linkId !== state.linkId) return;
    // Closed without DISCONNECT: an ungraceful loss, the Will applies [MQTT-3.1.2-8].
    this.#clearLink();
    this.#apply(this.#session.connectionLost(reason, Date.now(), "lost"));
    this.#scheduleAlarm();
  }

  // ------------------------------------------------------------ relayed: socket on a ConnectionDO

  /**
   * A ConnectionDO took in a CONNECT for this client identifier: authenticated here before
   * anything of the session is touched. Refused: the CONNACK for the ConnectionDO to send
   * before it closes the connection (empty when the connection ended meanwhile); the session
   * is left as it was. The ConnectionDO relays nothing else before this answers.
   */
  async open(
    linkId: string,
    connect: ConnectPacket,
    assigned: boolean,
    remoteAddress?: string,
    upgrade: { certificateUser?: string; connectBy?: number } = {},
  ): Promise<{ keepAlive: number; connectedAt: number } | { refused: Uint8Array }> {
    this.#meter.count("requests");
    const decision = await this.#authenticate(linkId, connect, {
      ...upgrade,
      ...(remoteAddress !== undefined && { remoteAddress }),
    });
    if (decision === "gone") return { refused: new Uint8Array(0) };
    if (!decision.ok) return { refused: decision.connack };
    const now = Date.now();
    this.#takeOver(now);
    this.#setLink({ kind: "remote", linkId });
    this.#remoteAddress = remoteAddress;
    this.#apply(this.#session.connect(asAuthenticated(connect, decision.principal), now, assigned, decision.principal));
    this.#scheduleAlarm();
    // connectedAt identifies the connection in the lease renewals the ConnectionDO sends.
    return { keepAlive: this.#session.record?.connection?.keepAlive ?? 0, connectedAt: now };
  }

  /** Whole packets from a relayed client, in order. */
  async fromClient(linkId: string, frames: Uint8Array[], error?: ProtocolViolation): Promise<void> {
    this.#meter.count("requests");
    if (!this.#acl.ready) await this.#aclLoaded(); // woken up in a new isolate
    const now = Date.now();
    for (const frame of frames) {
      const link = this.#currentLink();
      if (link === undefined) return; // closed while handling an earlier packet
      if (link.linkId !== linkId) {
        this.#sendRemote(linkId, [], ReasonCode.SessionTakenOver);
        return;
      }
      this.#apply(this.#packetEffects(frame, now));
    }
    if (error && this.#currentLink()?.linkId === linkId) {
      // A framing error, or a refusal for the publish rate (0x96 / 0x97: the ConnectionDO has
      // counted it and closed the socket already).
      this.#apply(this.#session.protocolError(error.reasonCode, error.message, now));
    }
  }

  /** The relayed connection ended (socket closed, keep alive timeout, framing error). */
  async linkLost(linkId: string, reason: number, ending: Ending = "lost"): Promise<void> {
    this.#meter.count("requests");
    if (this.#authenticating.has(linkId)) this.#cancelled.add(linkId);
    if (!this.#acl.ready) await this.#aclLoaded(); // the Will is checked
    if (this.#currentLink()?.linkId !== linkId) return;
    this.#clearLink();
    this.#apply(this.#session.connectionLost(reason, Date.now(), ending));
    this.#scheduleAlarm();
  }

  // ------------------------------------------------------------ the admin API (an operator)

  /**
   * The live session (GET /api/v1/devices/<id>), with the route its connection came by;
   * null when there is none. Looking creates nothing: no row is written.
   */
  async describe(): Promise<(SessionView & { route: "fast" | "relay" | null }) | null> {
    this.#meter.count("requests");
    const view = this.#session.admin.describe();
    if (!view) return null;
    const link = view.connected ? this.#currentLink() : undefined;
    if (link === undefined) return { ...view, route: null };
    // Relayed: by a ConnectionDO (remote link), or by the Worker (a local socket it opened).
    const ws = link.kind === "local" ? this.#localSocket(link.linkId) : undefined;
    const relayed = link.kind === "remote" || (ws !== undefined && readState(ws)?.relayed === true);
    return { ...view, route: relayed ? "relay" : "fast" };
  }

  /**
   * Close the client's connection (5.0: DISCONNECT 0x98 first) and keep its session; the
   * Will is published as for any connection the server closed (core/session/admin.ts).
   */
  async adminDisconnect(): Promise<{ wasConnected: boolean; willPublished: boolean; sessionKept: boolean }> {
    this.#meter.count("requests");
    if (!this.#acl.ready) await this.#aclLoaded();
    const effects = this.#session.admin.disconnect(Date.now());
    this.#apply(effects);
    return {
      wasConnected: effects.length > 0,
      willPublished: effects.some((e) => e.kind === "route"),
      sessionKept: this.#session.record !== undefined,
    };
  }

  /**
   * End the session of a decommissioned device: connection closed, Will discarded, queue and
   * in-flight state dropped, subscriptions removed from the shards. Unlike a client's
   * UNSUBSCRIBE, the removal is awaited: once this returns, no shard routes to this client.
   */
  async adminEnd(): Promise<AdminEnd> {
    this.#meter.count("requests");
    const { effects, result } = this.#session.admin.end(Date.now());
    const isUnsubscribe = (e: Effect): e is Extract<Effect, { kind: "unsubscribe" }> => e.kind === "unsubscribe";
    this.#apply(effects.filter((e) => !isUnsubscribe(e)));
    await Promise.all(effects.filter(isUnsubscribe).map((e) => this.#router.unsubscribe(e.clientId, e.filters)));
    return result;
  }

  // ------------------------------------------------------------ from the topic shards

  /**
   * Messages routed to this session. The call returns once each QoS 1/2 message is safe: the
   * shard answers the publisher's session only then, and only then is PUBACK sent, so PUBACK
   * means "durably accepted on the way to every subscriber".
   *
   * QoS 1 messages with room in the window go to the client at once, before anything is
   * written (Outbound.addSentDeferred). Those the client acknowledges within
   * QOS1_STORE_DELAY_MS (6 ms) are never written; the rest are written then, all in one row and one
   * commit, whichever calls (from several shards) brought them. If the object dies before,
   * the call fails, the publisher gets no PUBACK and sends the message again: at least once
   * (4.3.2), never lost. QoS 2 is stored at once: it is in doubt until stored here (after a
   * crash its publisher's session routes it again and the copy is dropped by its message
   * identifier), and that time is kept as short as it can be. QoS 0 is not stored.
   */
  async deliver(deliveries: Delivery[]): Promise<{ live: boolean }> {
    this.#meter.count("requests");
    return this.#deliver(deliveries);
  }

  async #deliver(deliveries: Delivery[]): Promise<{ live: boolean }> {
    // What the subscriber may read. Calls arrive in the order the shard made them (several in
    // flight): one waiting for the rules holds back the ones after it, so they stay in order.
    if (!this.#acl.ready || this.#deliveriesGate) {
      await (this.#deliveriesGate ??= this.#aclLoaded().finally(() => (this.#deliveriesGate = undefined)));
    }
    const defer = deliveries.some((d) => d.qos === 1) && !deliveries.some((d) => d.qos === 2);
    const result = this.#deliverNow(deliveries, defer);
    const tickets = defer ? this.#session.takeDeferredDeliveries() : [];
    if (tickets.every((t) => this.#session.deliverySettled(t))) return result;
    return new Promise((resolve) => {
      this.#awaitingStore.push({ tickets, result, resolve });
      this.#storeTimer ??= setTimeout(() => {
        this.#storeTimer = undefined;
        this.#session.storeDeliveries();
        this.#settleDeliveries();
      }, this.#storeDelayMs);
    });
  }

  /** Answer the deliver() calls whose messages are all acknowledged or stored (the output gate holds the answer until the commit). */
  #settleDeliveries(): void {
    if (this.#awaitingStore.length === 0) return;
    const waiting: PendingDeliver[] = [];
    for (const call of this.#awaitingStore) {
      if (call.tickets.every((t) => this.#session.deliverySettled(t))) call.resolve(call.result);
      else waiting.push(call);
    }
    this.#awaitingStore = waiting;
  }

  #deliverNow(deliveries: Delivery[], defer = false): { live: boolean } {
    const { effects, live } = this.#session.deliver(deliveries, Date.now(), this.#backlog(), defer);
    this.#apply(effects);
    return { live };
  }

  /**
   * Bytes on their way to the client and not yet on the network: the socket's send buffer
   * here, or, for a relayed client, what waits for the ConnectionDO and what its socket
   * holds (as of its last answer). Past the bound, QoS 0 to this client is dropped.
   */
  #backlog(): number {
    const link = this.#currentLink();
    if (!link) return 0;
    if (link.kind === "local") return socketBacklog(this.#localSocket(link.linkId));
    const waiting = this.#outboxes.get(link.linkId)?.frames.reduce((n, f) => n + f.byteLength, 0) ?? 0;
    return waiting + (this.#relays.get(link.linkId)?.queuedWeight ?? 0) + this.#remoteBuffered;
  }

  // ------------------------------------------------------------ timers

  override async alarm(): Promise<void> {
    this.#meter.count("requests");
    this.#meter.count("alarms");
    if (!this.#acl.ready) await this.#aclLoaded(); // a Will may fire
    this.#alarmAt = null;
    const now = Date.now();
    const link = this.#currentLink();
    if (link?.kind === "local") {
      const ws = this.#localSocket(link.linkId);
      const state = ws && readState(ws);
      const deadline = state && keepAliveDeadline(state);
      if (!ws || !state) {
        // The socket vanished while we slept (runtime restart): the connection is lost, and
        // its lease is what told (presence reason "lease-expired").
        this.#clearLink();
        this.#apply(this.#session.connectionLost(ReasonCode.UnspecifiedError, now, "vanished"));
      } else if (deadline !== undefined && deadline <= now) {
        this.#apply(this.#session.protocolError(ReasonCode.KeepAliveTimeout, "keep alive timeout", now));
      } else if (this.#session.connected && now >= renewalDeadline(state.leaseAt ?? 0, this.#leaseMs)) {
        this.#renewLease(ws, state, now); // no packet renewed it in time (keep alive 0 or long)
      }
    }
    for (const ws of this.ctx.getWebSockets(CLIENT_TAG)) {
      const state = readState(ws);
      const deadline = state && connectDeadline(state);
      if (deadline !== undefined && deadline <= now) closeForConnectTimeout(ws, state!);
    }
    this.#apply(this.#session.alarm(now));
    this.#scheduleAlarm();
  }

  #scheduleAlarm(): void {
    const times: number[] = [];
    const deadline = this.#session.nextDeadline();
    if (deadline !== undefined) times.push(deadline);
    const link = this.#currentLink();
    if (link?.kind === "local") {
      const ws = this.#localSocket(link.linkId);
      const state = ws && readState(ws);
      // Without keep alive, still look now and then whether the socket survived a restart.
      if (state) times.push(keepAliveDeadline(state) ?? Date.now() + LIVENESS_CHECK_MS);
      // The presence lease, when no packet renews it in time.
      if (state && this.#session.connected) times.push(renewalDeadline(state.leaseAt ?? Date.now(), this.#leaseMs));
    }
    for (const ws of this.ctx.getWebSockets(CLIENT_TAG)) {
      const state = readState(ws);
      const deadline = state && connectDeadline(state);
      if (deadline !== undefined) times.push(deadline);
    }
    if (times.length === 0) return;
    const at = Math.min(...times);
    // Moved later too, not only earlier: the CONNECT timeout set when the socket opened must
    // not stay once CONNECT has arrived, or it wakes the object 10 s later for nothing (and
    // keeps it, and its SQLite files, in memory 10 s longer).
    if (this.#alarmAt === at) return;
    this.#alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  // ------------------------------------------------------------ effects

  /**
   * Carry out the session's effects. Deadlines (keep alive, Will Delay, session expiry) only
   * change when a connection comes or goes, which always brings a presence or ended effect:
   * only then is the alarm looked at, not on every packet.
   */
  #apply(effects: Effect[]): void {
    let deadlinesChanged = false;
    // Consecutive packets leave together (sendPackets: several to a WebSocket message).
    let packets: Uint8Array[] = [];
    for (const effect of effects) {
      if (effect.kind === "presence" || effect.kind === "ended") deadlinesChanged = true;
      if (effect.kind === "send") {
        if (effect.packet.type === "publish") this.#meter.count("delivered");
        packets.push(effect.bytes);
        continue;
      }
      if (packets.length > 0) {
        this.#send(packets);
        packets = [];
      }
      switch (effect.kind) {
        case "close":
          this.#close(effect.reason);
          break;
        case "route": {
          this.#meter.count("published");
          const { ticket } = effect;
          const done = this.#router.publish(effect.message, effect.receivedAt);
          if (ticket === undefined) {
            done.catch((e) => console.error("route failed", e));
          } else {
            done.then(
              (matched) => this.#afterAsync(() => this.#session.routed(ticket, matched)),
              (e) => {
                console.error("route failed", e);
                this.#afterAsync(() => this.#session.routeFailed(ticket, Date.now()));
              },
            );
          }
          break;
        }
        case "subscribe": {
          const { ticket, clientId, subscriptions, receivedAt, connectedAt } = effect;
          this.#router.subscribe(clientId, subscriptions, receivedAt, connectedAt).then(
            (retained) =>
              this.#afterAsync(() => [
                ...this.#session.subscribed(ticket),
                ...this.#session.deliver(retained, Date.now(), this.#backlog()).effects,
              ]),
            (e) => {
              console.error("subscribe failed", e);
              this.#afterAsync(() =>
                this.#session.protocolError(ReasonCode.UnspecifiedError, "subscription could not be stored", Date.now()),
              );
            },
          );
          break;
        }
        case "unsubscribe": {
          this.#router.unsubscribe(effect.clientId, effect.filters).catch((e) => console.error("unsubscribe failed", e));
          break;
        }
        case "presence":
          void this.#presence.send(effect.event.online && !effect.event.renewal ? { ...effect.event, ...this.#addressOf() } : effect.event);
          break;
        case "dropped":
          this.#drops.record(effect.clientId, effect.drop, effect.count, Date.now());
          break;
        case "denied":
          this.#meter.count(DENIED_COUNTER[effect.action], effect.count);
          break;
        case "ended":
          // A CONNECT with Clean Start ends the old session and starts a new one on the link
          // just set: keep that link, or the CONNACK that follows is never sent.
          if (!this.#session.connected) this.#clearLink();
          break;
      }
    }
    if (packets.length > 0) this.#send(packets);
    if (deadlinesChanged) this.#scheduleAlarm();
    if (this.#session.unflushedWrites) this.#scheduleWriteFlush();
    // An acknowledgement, or a connection lost (which stores what was in flight), may settle deliver() calls.
    this.#settleDeliveries();
  }

  /** Acknowledged rows are deleted with the next write, or by this timer (one commit for the lot). */
  #scheduleWriteFlush(): void {
    this.#writeFlushTimer ??= setTimeout(() => {
      this.#writeFlushTimer = undefined;
      this.#session.flushWrites();
    }, ACK_FLUSH_MS);
  }

  #afterAsync(step: () => Effect[]): void {
    this.#apply(step());
  }

  #send(frames: Uint8Array[]): void {
    const link = this.#currentLink();
    if (!link) return;
    if (link.kind === "local") {
      const ws = this.#localSocket(link.linkId);
      if (ws) sendPackets(ws, frames, this.#session.record?.connection?.maximumPacketSize);
      return;
    }
    this.#outboxFor(link.linkId).frames.push(...frames);
  }

  #close(reason: number): void {
    const link = this.#currentLink();
    if (!link) return;
    if (link.kind === "local") {
      const ws = this.#localSocket(link.linkId);
      if (ws) {
        const state = readState(ws);
        if (state) dropPending(state, this.ctx.storage);
        safeClose(ws, 1000, `reason 0x${reason.toString(16)}`);
      }
    } else {
      this.#outboxFor(link.linkId).close = reason;
    }
    this.#clearLink();
  }

  #outboxFor(linkId: string): Outbox {
    let box = this.#outboxes.get(linkId);
    if (!box) this.#outboxes.set(linkId, (box = { frames: [] }));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return box;
  }

  #flush(): void {
    this.#flushScheduled = false;
    const boxes = this.#outboxes;
    this.#outboxes = new Map();
    for (const [linkId, box] of boxes) this.#sendRemote(linkId, box.frames, box.close);
  }

  /**
   * To a relayed client: one toClient() call in flight per connection, what is sent meanwhile
   * goes in the next call, in order.
   */
  #sendRemote(linkId: string, frames: Uint8Array[], close: number | undefined): void {
    let queue = this.#relays.get(linkId);
    if (!queue) {
      for (const [id, q] of this.#relays) if (q.idle) this.#relays.delete(id); // finished connections
      const stub = this.env.CONNECTIONS.get(this.env.CONNECTIONS.idFromString(linkId));
      queue = new Batcher<Outbox, undefined>(
        async (items) => {
          const closing = items.find((i) => i.close !== undefined)?.close;
          const { buffered } = await stub.toClient(
            items.flatMap((i) => i.frames),
            closing,
            this.#session.record?.connection?.maximumPacketSize,
          );
          if (this.#currentLink()?.linkId === linkId) this.#remoteBuffered = buffered;
          return items.map(() => undefined);
        },
        512,
        (box) => box.frames.reduce((n, f) => n + f.byteLength, 0),
        RPC_CALL_BYTES,
      );
      this.#relays.set(linkId, queue);
    }
    const pieces = piecesOf(frames, RPC_CALL_BYTES);
    pieces.forEach((piece, i) => {
      const last = i === pieces.length - 1;
      queue.push({ frames: piece, ...(last && close !== undefined && { close }) }).catch((e: unknown) => console.error("relay to connection failed", e));
    });
  }

  /** A new connection for this client identifier: the current one is closed first [MQTT-3.1.4-3]. */
  #takeOver(now: number): void {
    const old = this.#currentLink();
    if (!old) return;
    if (this.#session.connected && this.#session.protocolVersion === 5) {
      this.#send([encodePacket({ type: "disconnect", reasonCode: ReasonCode.SessionTakenOver }, 5)]);
    }
    this.#close(ReasonCode.SessionTakenOver);
    this.#apply(this.#session.connectionLost(ReasonCode.SessionTakenOver, now));
  }

  /** The socket of a local link; remembered, since looking it up reads every socket's attachment. */
  #localSocket(linkId: string): WebSocket | undefined {
    if (this.#socketCache?.linkId === linkId) return this.#socketCache.ws;
    const ws = this.ctx.getWebSockets(CLIENT_TAG).find((w) => readState(w)?.linkId === linkId);
    this.#socketCache = ws && { linkId, ws };
    return ws;
  }


  /** The connecting client's IP address (CF-Connecting-IP), for its presence event. */
  #addressOf(): { remoteAddress?: string } {
    const link = this.#currentLink();
    const ws = link?.kind === "local" ? this.#localSocket(link.linkId) : undefined;
    const address = link?.kind === "local" ? (ws && readState(ws)?.remoteAddress) : this.#remoteAddress;
    return address === undefined ? {} : { remoteAddress: address };
  }

  #currentLink(): Link | undefined {
    if (!this.#linkLoaded) {
      const row = this.#meter.sql.exec(`SELECT kind, link_id FROM link WHERE id = 1`).toArray()[0] as
        | { kind: string; link_id: string }
        | undefined;
      this.#link = row ? ({ kind: row.kind, linkId: row.link_id } as Link) : undefined;
      this.#linkLoaded = true;
    }
    return this.#link;
  }

  #setLink(link: Link): void {
    this.#link = link;
    this.#remoteBuffered = 0;
    this.#linkLoaded = true;
    this.#meter.sql.exec(`INSERT OR REPLACE INTO link (id, kind, link_id) VALUES (1, ?, ?)`, link.kind, link.linkId);
  }

  #clearLink(): void {
    if (this.#currentLink() === undefined) return;
    this.#link = undefined;
    this.#meter.sql.exec(`DELETE FROM link`);
  }
}
