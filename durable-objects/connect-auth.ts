/**
 * The SessionDO's door: a CONNECT is authenticated (worker/security/authenticate.ts) and its
 * Will checked against the ACL before anything of the session is touched, on both routes (the
 * socket held here, or open() from a ConnectionDO). Failures of a client identifier slow its
 * next attempts (FailurePenalties, AUTH_FAIL_DELAY doubling up to AUTH_FAIL_DELAY_MAX), and are
 * reported for the client's address to the admission objects (429 at the next upgrade).
 */
import { encodePacket } from "../core/mqtt/codec";
import type { ConnectPacket } from "../core/mqtt/packets";
import { connackRefusal, type ConnectRefusal } from "../core/policy/authenticate";
import { FailurePenalties } from "../core/policy/penalty";
import type { Principal } from "../core/policy/types";
import type { Env } from "../worker/env";
import type { AclCache } from "../worker/security/acl-cache";
import { recordAuthFailure } from "../worker/security/admission";
import { authenticate } from "../worker/security/authenticate";
import { numberVar } from "./config";
import type { Meter } from "./metrics";

export type Admission = { ok: true; principal: Principal } | { ok: false; connack: Uint8Array; refusal: ConnectRefusal };

export interface ConnectContext {
  certificateUser?: string;
  remoteAddress?: string;
  /** Epoch ms the CONNECT timeout of the socket ends: a penalty never waits past it. */
  connectBy?: number;
}

/** How long before the CONNECT deadline an attempt still in its penalty is refused instead (server busy). */
const DEADLINE_MARGIN_MS = 500;

export class ConnectGate {
  readonly #env: Env;
  readonly #acl: AclCache;
  readonly #meter: Meter;
  /** Per client identifier; one object is one client identifier, so this holds one key. */
  readonly #penalties: FailurePenalties;
  #turn: Promise<void> = Promise.resolve();

  constructor(env: Env, acl: AclCache, meter: Meter) {
    this.#env = env;
    this.#acl = acl;
    this.#meter = meter;
    this.#penalties = new FailurePenalties({
      baseMs: numberVar(env, "AUTH_FAIL_DELAY", 1) * 1000,
      maxMs: numberVar(env, "AUTH_FAIL_DELAY_MAX", 60) * 1000,
      maxKeys: 64,
    });
  }

  /**
   * Whether this CONNECT may go on, and as whom; when not, the CONNACK that refuses it (the
   * caller sends it, then closes the connection: 5.0 [MQTT-3.2.2-7], 3.1.1 [MQTT-3.2.2-5]).
   * Counted here: connectRefused for every refusal, authFailures for bad credentials.
   */
  admit(connect: ConnectPacket, context: ConnectContext): Promise<Admission> {
    // One attempt at a time: sockets opened together for one client identifier do not verify
    // in parallel, each waits for the one before it and then for its own penalty.
    const turn = this.#turn.then(() => this.#admit(connect, context));
    this.#turn = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  async #admit(connect: ConnectPacket, context: ConnectContext): Promise<Admission> {
    const { clientId } = connect;
    const wait = this.#penalties.waitMs(clientId, Date.now());
    if (wait > 0) {
      // Recent failures for this client identifier: wait before verifying anything, so
      // guessing runs at the penalty's pace. A wait past the CONNECT timeout is not served:
      // the attempt is refused unverified when it would end (server busy, nothing learnt).
      const left = (context.connectBy ?? Number.POSITIVE_INFINITY) - DEADLINE_MARGIN_MS - Date.now();
      await sleep(Math.max(0, Math.min(wait, left)));
      if (wait > left) return this.#refuse(connect, "server-busy", "too many failed attempts: try again later", false);
    }
    let result: Awaited<ReturnType<typeof authenticate>>;
    try {
      result = await authenticate(this.#env, connect, {
        ...(context.certificateUser !== undefined && { certificateUser: context.certificateUser }),
        ...(context.remoteAddress !== undefined && { remoteAddress: context.remoteAddress }),
      });
    } catch (e) {
      console.error("authentication failed to run (D1?)", e);
      return this.#refuse(connect, "server-busy", "authentication unavailable", false);
    }
    if (!result.ok) {
      if (result.credentials) {
        this.#penalties.failed(clientId, Date.now());
        if (context.remoteAddress) recordAuthFailure(this.#env, context.remoteAddress);
      }
      return this.#refuse(connect, result.refusal, result.reason, result.credentials);
    }
    this.#penalties.succeeded(clientId);
    try {
      await this.#acl.load();
    } catch (e) {
      console.error("ACL rules could not be loaded", e);
      return this.#refuse(connect, "server-busy", "access rules unavailable", false);
    }
    // A Will its client may not publish refuses the CONNECT, before any takeover (the session
    // checks it again when the Will fires, under the rules of that time).
    if (connect.will && !this.#acl.current().authorizePublish(result.principal, connect.will.topic)) {
      this.#meter.count("aclDeniedPublish");
      return this.#refuse(connect, "not-authorized", "Will topic not authorized", false);
    }
    return { ok: true, principal: result.principal };
  }

  #refuse(connect: ConnectPacket, refusal: ConnectRefusal, reason: string, credentials: boolean): Admission {
    this.#meter.count("connectRefused");
    if (credentials) this.#meter.count("authFailures");
    return { ok: false, refusal, connack: refusalConnack(connect, refusal, reason) };
  }
}

/**
 * CONNACK refusing a CONNECT: 5.0 with a reason code and a reason string (left out when it would
 * exceed the client's Maximum Packet Size [MQTT-3.2.2-19]); 3.1 / 3.1.1 with a return code.
 */
export function refusalConnack(connect: ConnectPacket, refusal: ConnectRefusal, reason: string): Uint8Array {
  const version = connect.protocolVersion;
  const reasonCode = connackRefusal(version, refusal);
  // Session Present is 0 on a refusing CONNACK (5.0 [MQTT-3.2.2-6], 3.1.1 [MQTT-3.2.2-4]).
  if (version !== 5) return encodePacket({ type: "connack", sessionPresent: false, reasonCode }, version);
  const withReason = encodePacket({ type: "connack", sessionPresent: false, reasonCode, properties: { reasonString: reason } }, 5);
  const max = connect.properties?.maximumPacketSize;
  return max !== undefined && withReason.byteLength > max ? encodePacket({ type: "connack", sessionPresent: false, reasonCode }, 5) : withReason;
}

/**
 * The CONNECT as the session takes it in: with the authenticated user name (a token's or a
 * certificate's, not whatever the client wrote), which presence and the devices API then show.
 */
export function asAuthenticated(connect: ConnectPacket, principal: Principal): ConnectPacket {
  return principal.username === undefined || principal.username === connect.username ? connect : { ...connect, username: principal.username };
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs the steps given for one key (a socket) one after another: a step that returns a promise
 * holds back the steps given after it until it settles; while none is pending a step runs at
 * once, with no promise in between (the per-message path of a connected client stays synchronous).
 */
export class InOrder<K extends object> {
  readonly #tails = new WeakMap<K, Promise<void>>();

  run(key: K, step: () => void | Promise<void>): void | Promise<void> {
    const tail = this.#tails.get(key);
    if (tail) return this.#track(key, tail.then(step));
    const result = step();
    return result instanceof Promise ? this.#track(key, result) : result;
  }

  #track(key: K, running: Promise<void>): Promise<void> {
    const settled = running.then(
      () => undefined,
      (e: unknown) => console.error("socket step failed", e),
    );
    this.#tails.set(key, settled);
    void settled.then(() => {
      if (this.#tails.get(key) === settled) this.#tails.delete(key);
    });
    return running;
  }
}
