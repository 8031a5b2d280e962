/**
 * Access control in the session (core/policy decides; this applies it): the principal a
 * connection acts as, kept on the session record; PUBLISH, Will, SUBSCRIBE and delivery
 * checked against the host's Authorizer; what was refused reported as `denied` effects for
 * the metrics. Without an Authorizer everything is allowed.
 */
import type { ConnectPacket } from "../mqtt/packets";
import type { Authorizer, Principal } from "../policy/types";
import { parseSharedFilter } from "../topics";
import { willMessage } from "./message";
import type { SessionRecord, SessionStore } from "./store";
import type { Effect } from "./types";

export type Denied = Extract<Effect, { kind: "denied" }>;

export function denied(action: Denied["action"], topic: string, count = 1): Denied {
  return { kind: "denied", action, topic, count };
}

/** The principal of a CONNECT: the host's (authenticated), else anonymous with the CONNECT's user name. */
export function connectPrincipal(packet: ConnectPacket, given: Principal | undefined): Principal {
  if (given) return given;
  return { clientId: packet.clientId, method: "anonymous", ...(packet.username !== undefined && { username: packet.username }) };
}

/** The principal of a session record (an anonymous one for records written before access control). */
export function recordPrincipal(record: SessionRecord): Principal {
  if (record.principal) return record.principal;
  const username = record.connection?.username;
  return { clientId: record.clientId, method: "anonymous", ...(username !== undefined && { username }) };
}

export class SessionAccess {
  readonly #authorizer: Authorizer | undefined;

  constructor(authorizer: Authorizer | undefined) {
    this.#authorizer = authorizer;
  }

  /** May `principal` publish to `topic` (a PUBLISH after alias resolution, or a Will)? */
  mayPublish(principal: Principal | SessionRecord, topic: string): boolean {
    return this.#authorizer?.authorizePublish(principalOf(principal), topic) ?? true;
  }

  /**
   * May the principal of a CONNECT (absent: anonymous) publish its Will? Refused: CONNACK
   * not-authorized. The host asks before it takes over a connection, so that a refusal
   * touches nothing of the session; `Session.connect` checks again.
   */
  willAllowed(packet: ConnectPacket, principal?: Principal): boolean {
    return !packet.will || this.mayPublish(connectPrincipal(packet, principal), packet.will.topic);
  }

  /** May the session subscribe to `filter`? A `$share/<group>/` prefix is checked as its inner filter (5.0 4.8.2). */
  maySubscribe(record: SessionRecord, filter: string): boolean {
    if (!this.#authorizer) return true;
    return this.#authorizer.authorizeSubscribe(recordPrincipal(record), parseSharedFilter(filter)?.filter ?? filter);
  }

  /** May a message on `topic` be delivered to the session (live, retained, queued or resent)? */
  mayRead(record: SessionRecord | undefined, topic: string): boolean {
    if (!this.#authorizer || !record) return true;
    return this.#authorizer.authorizeRead(recordPrincipal(record), topic);
  }

  /**
   * The pending Will of `record`, firing now: routed when its principal may publish to its
   * topic, checked again now (the rules may have changed since CONNECT); else not.
   */
  will(record: SessionRecord, now: number): Effect {
    const will = record.will!;
    if (!this.mayPublish(record, will.topic)) return denied("publish", will.topic);
    return { kind: "route", message: willMessage(will, record.clientId, now) };
  }
}

function principalOf(who: Principal | SessionRecord): Principal {
  return "method" in who ? who : recordPrincipal(who);
}

/**
 * A denied 3.1.1 QoS 2 PUBLISH is acknowledged as if accepted (3.1.1 has no way to refuse
 * it): remembered as handled until its PUBREL, like any other [MQTT-4.3.3-2], so a
 * retransmission is answered with PUBREC and never routed, also after a restart.
 */
export function rememberRefusedQos2(store: Pick<SessionStore, "addInboundQos2" | "markInboundQos2Routed">, packetId: number, messageId: string): void {
  store.addInboundQos2(packetId, messageId);
  store.markInboundQos2Routed(packetId);
}

/** Messages not delivered because their topic may not be read, during one input: one `denied` effect. */
export class ReadDenials {
  #count = 0;
  #topic = "";

  add(topic: string): undefined {
    if (this.#count++ === 0) this.#topic = topic;
    return undefined;
  }

  effects(): Effect[] {
    return this.#count > 0 ? [denied("read", this.#topic, this.#count)] : [];
  }
}
