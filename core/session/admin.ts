import { ReasonCode, type Packet, type ProtocolVersion } from "../mqtt/packets";
import type { Outbound } from "./outbound";
import type { SessionRecord, SessionStore } from "./store";
import type { Effect, Subscription } from "./types";

/** What the operator flows need from their session (see Session). */
export interface AdminHost {
  readonly store: Pick<SessionStore, "subscriptions" | "inboundQos2Count">;
  readonly outbound: Outbound;
  /** The current session record, undefined when there is no session. */
  record(): SessionRecord | undefined;
  save(record: SessionRecord): void;
  /** Encodes a packet for the attached client. */
  send(packet: Packet): Effect;
  /** The connection is gone: Will, presence, session expiry (Session.connectionLost). */
  connectionLost(reason: number, now: number): Effect[];
  /** End the session: unsubscribe everything, clear the store (Session's end). */
  end(now: number): Effect[];
}

/** A live session as an operator sees it (GET /api/v1/devices/<id>). */
export interface SessionView {
  clientId: string;
  connected: boolean;
  protocolVersion: ProtocolVersion;
  /** Seconds; 0xFFFFFFFF never expires. */
  expiryInterval: number;
  /** When the session ends while disconnected (epoch ms); undefined while connected or never. */
  expiresAt?: number;
  /** When the connection was made (epoch ms), while connected. */
  connectedAt?: number;
  keepAlive?: number;
  username?: string;
  /** A Will waits: on the connection (published if it is lost) or after it (Will Delay). */
  willPending: boolean;
  willAt?: number;
  subscriptions: Subscription[];
  /** QoS 1/2 messages sent to the client and not yet acknowledged. */
  outboundInFlight: number;
  outboundInFlightBytes: number;
  /** QoS 1/2 messages waiting behind the window (or for the client to come back). */
  queued: number;
  queuedBytes: number;
  /** QoS 2 messages from the client whose PUBREL has not come yet. */
  inboundAwaitingRelease: number;
}

/** What ending a session by an operator did. */
export interface AdminEnd {
  /** There was a session to end. */
  existed: boolean;
  wasConnected: boolean;
  subscriptions: number;
  /** QoS 1/2 messages dropped (queued and in flight). */
  messagesDropped: number;
  /** A Will was pending and was discarded. */
  willDiscarded: boolean;
}

/**
 * Ending a session by an operator (the admin API): a disconnect that keeps the session, and
 * the end of a decommissioned device's session. Pure: the effects go to the host like every
 * other flow's (close, route, unsubscribe, presence, ended).
 */
export class AdminFlow {
  readonly #host: AdminHost;

  constructor(host: AdminHost) {
    this.#host = host;
  }

  /** The session as it is now; undefined when there is none (nothing is created by looking). */
  describe(): SessionView | undefined {
    const r = this.#host.record();
    if (!r) return undefined;
    const out = this.#host.outbound;
    const conn = r.connection;
    return {
      clientId: r.clientId,
      connected: r.connected,
      protocolVersion: r.protocolVersion,
      expiryInterval: r.expiryInterval,
      ...(!r.connected && r.expiresAt !== undefined && { expiresAt: r.expiresAt }),
      ...(conn && { connectedAt: conn.connectedAt, keepAlive: conn.keepAlive }),
      ...(conn?.username !== undefined && { username: conn.username }),
      willPending: r.will !== undefined,
      ...(r.willAt !== undefined && { willAt: r.willAt }),
      subscriptions: this.#host.store.subscriptions(),
      outboundInFlight: out.inFlightCount,
      outboundInFlightBytes: out.inFlightBytes,
      queued: out.queuedCount,
      queuedBytes: out.queuedBytes,
      inboundAwaitingRelease: this.#host.store.inboundQos2Count(),
    };
  }

  /**
   * Close the client's connection and keep its session: 5.0 is told why, DISCONNECT 0x98
   * Administrative action, then the connection closes; in 3.1.1 DISCONNECT goes from
   * client to server only (3.14), so the connection is only closed. The server
   * closed it, not a client DISCONNECT, so the Will is published [MQTT-3.1.2-8] (or
   * scheduled after its Will Delay); a persistent session keeps its subscriptions and queue,
   * and its expiry starts now. Nothing happens when no connection is attached.
   */
  disconnect(now: number): Effect[] {
    const r = this.#host.record();
    if (!r?.connected) return [];
    return [...this.#closeConnection(r), ...this.#host.connectionLost(ReasonCode.AdministrativeAction, now)];
  }

  /**
   * End the session completely (a decommissioned device): the connection, if any, is closed
   * as by `disconnect`, but the Will is discarded first, never published, even when it waits
   * for its Will Delay; then the queue, the messages in flight both ways and the
   * subscriptions are dropped (an `unsubscribe` effect for the shards) and the record goes.
   * A later CONNECT finds no session (Session Present 0).
   */
  end(now: number): { effects: Effect[]; result: AdminEnd } {
    const r = this.#host.record();
    if (!r) {
      return { effects: [], result: { existed: false, wasConnected: false, subscriptions: 0, messagesDropped: 0, willDiscarded: false } };
    }
    const out = this.#host.outbound;
    const result: AdminEnd = {
      existed: true,
      wasConnected: r.connected,
      subscriptions: this.#host.store.subscriptions().length,
      messagesDropped: out.queuedCount + out.inFlightCount,
      willDiscarded: r.will !== undefined,
    };
    const effects: Effect[] = [];
    if (r.will !== undefined || r.willAt !== undefined) {
      delete r.will;
      delete r.willAt;
      this.#host.save(r);
    }
    if (r.connected) {
      // A session with expiry 0 ends here already, and end() below finds nothing left. The
      // offline presence event is left out: the registry records the decommission itself,
      // in one write, and a batched event arriving after it must not overwrite its reason.
      const lost = this.#host.connectionLost(ReasonCode.AdministrativeAction, now).filter((e) => e.kind !== "presence");
      effects.push(...this.#closeConnection(r), ...lost);
    }
    effects.push(...this.#host.end(now));
    return { effects, result };
  }

  #closeConnection(r: SessionRecord): Effect[] {
    const effects: Effect[] = [];
    if (r.protocolVersion === 5) {
      effects.push(
        this.#host.send({
          type: "disconnect",
          reasonCode: ReasonCode.AdministrativeAction,
          properties: { reasonString: "disconnected by an administrator" },
        }),
      );
    }
    effects.push({ kind: "close", reason: ReasonCode.AdministrativeAction });
    return effects;
  }
}
