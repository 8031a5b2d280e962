// Plain `/mqtt` without a Durable Object in between: the stateless Worker holds the client's
// WebSocket, reads its CONNECT to learn the client identifier, opens the session object's own
// upgrade (the fast path's, `/mqtt/<clientId>`) and pipes the bytes both ways unchanged (the
// client's messages of one event-loop turn go on as one message). The session object does
// everything MQTT (keep alive, PINGREQ, protocol errors, takeover, Will): to it this
// connection looks like a fast-path one. docs/architecture.md, "Who holds the socket", says
// why and what it costs.
import { connectTimeoutMsFromEnv, limitsFromEnv } from "../durable-objects/config";
import { zeroCounters, type ClientDrops } from "../durable-objects/metrics";
import { admitFirstPacket, chooseSubprotocol, closeCodeToEcho, safeClose } from "../durable-objects/socket";
import type { Env } from "./env";
import { FirstPacketReader, join, withoutDroppable } from "./relay-framing";

/** Who holds the socket of a plain `/mqtt` connection (`MQTT_RELAY`): this Worker, or a ConnectionDO. */
export type RelayMode = "worker" | "object";

/** `MQTT_RELAY` from wrangler.toml [vars]: "object" keeps the ConnectionDO; anything else is "worker". */
export function relayMode(env: Pick<Env, "MQTT_RELAY">): RelayMode {
  return env.MQTT_RELAY?.trim().toLowerCase() === "object" ? "object" : "worker";
}

/** A batch of the client's messages leaves for the session at once from this size (#toSession). */
const COALESCE_BYTES = 256 * 1024;

/** Opens the session object's WebSocket for a client identifier (the fast path's upgrade request). */
export type OpenSession = (clientId: string) => Promise<Response>;

/** What the relay needs of the request's execution context: to keep a drop report alive. */
interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * Accept the client's WebSocket here (101, echoing the MQTT subprotocol [MQTT-6.0.0-3]) and
 * relay it to the session its CONNECT names. `openSession` forwards the upgrade with the
 * admission token; `release` frees that token when the connection ends before it went on.
 */
export function relayToSession(env: Env, request: Request, ctx: WaitUntil, openSession: OpenSession, release: () => void): Response {
  const pair = new WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  // Binary messages as ArrayBuffer (the standard default, and workerd's from 2026, is Blob).
  server.binaryType = "arraybuffer";
  server.accept();
  new Relay(server, env, ctx, openSession, release);
  const headers = new Headers();
  const protocol = chooseSubprotocol(request);
  if (protocol) headers.set("Sec-WebSocket-Protocol", protocol);
  return new Response(null, { status: 101, webSocket: client, headers });
}

/**
 * One relayed connection. Phases: `reading` the CONNECT (at most one maximum-size packet, for
 * at most CONNECT_TIMEOUT), `opening` the session's socket (what the client sends meanwhile
 * waits, at most one more maximum-size packet's worth), `open` (a pipe), `closed`.
 */
class Relay {
  #phase: "reading" | "opening" | "open" | "closed" = "reading";
  readonly #client: WebSocket;
  #upstream: WebSocket | undefined;
  readonly #reader: FirstPacketReader;
  readonly #maximumPacketSize: number;
  readonly #maxBacklog: number;
  /** Messages that came after the CONNECT while the session's socket was opening. */
  #queued: (ArrayBuffer | string)[] = [];
  #queuedBytes = 0;
  /** The client's close while the session's socket was opening: passed on once it is open. */
  #clientClose: { code: number; reason: string } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The client's messages of this turn, on their way to the session as one (#toSession). */
  #batch: Uint8Array[] = [];
  #batchBytes = 0;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #clientId = "";
  #protocolVersion = 4;
  readonly #env: Env;
  readonly #ctx: WaitUntil;
  readonly #openSession: OpenSession;
  readonly #release: () => void;

  constructor(client: WebSocket, env: Env, ctx: WaitUntil, openSession: OpenSession, release: () => void) {
    const limits = limitsFromEnv(env);
    this.#client = client;
    this.#env = env;
    this.#ctx = ctx;
    this.#openSession = openSession;
    this.#release = release;
    this.#maximumPacketSize = limits.maximumPacketSize;
    this.#maxBacklog = limits.maxClientBacklogBytes;
    this.#reader = new FirstPacketReader(limits.maximumPacketSize);
    // 5.0 3.1.4: a connection that does not send CONNECT in time is closed; counted from the
    // upgrade, whatever bytes trickle in. It runs until the session's socket is open.
    this.#timer = setTimeout(() => this.#connectTimeout(), connectTimeoutMsFromEnv(env));
    client.addEventListener("message", (event) => this.#fromClient(event.data));
    client.addEventListener("close", (event) => this.#clientClosed(event.code, event.reason));
    client.addEventListener("error", () => this.#clientClosed(1006, ""));
  }

  #fromClient(data: ArrayBuffer | string): void {
    switch (this.#phase) {
      case "open":
        this.#toSession(data);
        return;
      case "opening":
        this.#queue(data);
        return;
      case "reading":
        this.#read(data);
        return;
      case "closed":
        return;
    }
  }

  /** Bytes before the CONNECT is whole; then the client identifier, and the session's socket. */
  #read(data: ArrayBuffer | string): void {
    const step = this.#reader.push(data);
    if (step.kind === "more") return;
    if (step.kind === "refuse") return this.#refuse(1002, step.reason);
    // Decoded and checked as the objects do: a malformed or non-CONNECT packet, an unsupported
    // version or an unacceptable identifier is answered (CONNACK, where the spec asks) and
    // closed. An empty identifier gets one here [MQTT-3.1.3-6]; the session assigns it, as
    // the URL's hint (core/session/admit.ts), and tells a 5.0 client in CONNACK.
    const admitted = admitFirstPacket(this.#client, step.frame, this.#maximumPacketSize);
    if (!admitted) return this.#end(true);
    this.#clientId = admitted.connect.clientId;
    this.#protocolVersion = admitted.connect.protocolVersion;
    this.#phase = "opening";
    void this.#open(step.bytes);
  }

  /** Open the session's socket and send it what came so far, the CONNECT first. */
  async #open(first: Uint8Array): Promise<void> {
    let response: Response;
    try {
      response = await this.#openSession(this.#clientId); // releases the token if it fails
    } catch (e) {
      console.error("relay: the session's upgrade failed", e);
      return this.#sessionUnavailable();
    }
    const upstream = response.webSocket;
    if (response.status !== 101 || !upstream) return this.#sessionUnavailable();
    upstream.binaryType = "arraybuffer";
    upstream.accept();
    this.#upstream = upstream;
    upstream.addEventListener("message", (event) => this.#fromSession(event.data));
    upstream.addEventListener("close", (event) => this.#sessionClosed(event.code, event.reason));
    upstream.addEventListener("error", () => this.#sessionClosed(1011, "session connection failed"));
    // The session has the token now, and frees it when it answers the CONNECT or the socket ends.
    if (this.#phase === "closed") {
      // Refused while opening (the CONNECT timeout, too much pipelined): the client was told;
      // the session gets a socket that ends before any CONNECT, and forgets it.
      return safeClose(upstream, 1000, "client connection ended");
    }
    this.#send(upstream, first);
    for (const data of this.#queued) this.#send(upstream, data);
    this.#queued = [];
    this.#stopTimer();
    if (this.#ended()) return; // a send failed: both sides are closed
    this.#phase = "open";
    // The client left meanwhile: the session sees the close after what it sent, as on the fast path.
    if (this.#clientClose) this.#clientClosed(this.#clientClose.code, this.#clientClose.reason);
  }

  /**
   * To the session, the client's messages that arrive within one turn of the event loop as one
   * message: bytes and order unchanged, only the WebSocket message boundaries move, which MQTT
   * allows [MQTT-6.0.0-2] (a packet may span messages, a message hold several). The session then
   * takes in, say, 20 PUBLISHes of an MQTT.js client (one per message) in one event and one
   * turn, and routes them in one call to each shard instead of one call each: measured, 0.07
   * object calls per message against 1.4 when each message went on alone (docs/architecture.md).
   * The wait is one timer turn (no added delay when nothing else is queued); a batch leaves at
   * once when it reaches COALESCE_BYTES.
   */
  #toSession(data: ArrayBuffer | string): void {
    if (typeof data === "string") {
      // Not MQTT [MQTT-6.0.0-1]: after what came before it; the session closes the connection.
      this.#flushToSession();
      return this.#send(this.#upstream!, data);
    }
    this.#batch.push(new Uint8Array(data));
    this.#batchBytes += data.byteLength;
    if (this.#batchBytes >= COALESCE_BYTES) return this.#flushToSession();
    if (this.#flushTimer === undefined) this.#flushTimer = setTimeout(() => this.#flushToSession(), 0);
  }

  #flushToSession(): void {
    if (this.#flushTimer !== undefined) clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const batch = this.#batch;
    const bytes = this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    if (batch.length === 0 || !this.#upstream || this.#ended()) return;
    this.#send(this.#upstream, batch.length === 1 ? batch[0]! : join(batch, bytes));
  }

  /** While opening: held in order, within one maximum-size packet's worth of bytes. */
  #queue(data: ArrayBuffer | string): void {
    const bytes = typeof data === "string" ? data.length * 3 : data.byteLength;
    this.#queuedBytes += bytes;
    if (this.#queuedBytes > this.#maximumPacketSize) {
      this.#queued = [];
      return this.#refuse(1009, "too much data before the session answered");
    }
    this.#queued.push(data);
  }

  /**
   * To the client. One that does not read piles what it is sent up in this Worker's socket
   * (the session's socket to us is read at once, so the session cannot see it): past
   * MAX_CLIENT_BACKLOG_BYTES, QoS 0 is dropped here and counted, as the session does for a
   * socket it holds (core/session/deliver.ts).
   */
  #fromSession(data: ArrayBuffer | string): void {
    // bufferedAmount is undefined where the runtime does not count it (a WebSocketPair in tests).
    const behind = (this.#client.bufferedAmount ?? 0) > this.#maxBacklog;
    if (!behind) return this.#send(this.#client, data);
    const { kept, dropped } = withoutDroppable(data, this.#protocolVersion);
    if (dropped > 0) relayDrops.record(this.#env, this.#ctx, this.#clientId, dropped);
    if (kept !== undefined) this.#send(this.#client, kept);
  }

  /** The client's close (or its connection's loss): passed on, so the session sees a socket end. */
  #clientClosed(code: number, reason: string): void {
    const echo = closeCodeToEcho(code);
    switch (this.#phase) {
      case "open":
        // What the client sent before its close goes first. Without DISCONNECT before it, the
        // session takes the close as a lost connection: the Will is published [MQTT-3.1.2-8].
        this.#flushToSession();
        safeClose(this.#upstream!, echo, reason);
        break;
      case "opening":
        this.#clientClose = { code, reason };
        return; // #open closes the session's socket once it has it
      case "reading":
        this.#end(true);
        break;
      case "closed":
        break;
    }
    this.#phase = "closed";
    this.#stopTimer();
    safeClose(this.#client, echo); // complete the closing handshake the client started
  }

  /** The session closed its socket (takeover, DISCONNECT, a protocol error, keep alive): so do we. */
  #sessionClosed(code: number, reason: string): void {
    const echo = closeCodeToEcho(code);
    this.#phase = "closed";
    safeClose(this.#client, echo, reason);
    if (this.#upstream) safeClose(this.#upstream, echo);
  }

  #sessionUnavailable(): void {
    const wasOpen = this.#phase !== "closed";
    this.#phase = "closed";
    this.#stopTimer();
    if (wasOpen) safeClose(this.#client, 1011, "session unavailable");
  }

  /** A method, so that TypeScript does not narrow the phase across a call that may end it. */
  #ended(): boolean {
    return this.#phase === "closed";
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #connectTimeout(): void {
    if (this.#phase !== "reading" && this.#phase !== "opening") return;
    if (this.#phase === "reading") this.#release();
    this.#phase = "closed";
    safeClose(this.#client, 1002, "CONNECT timeout");
  }

  #refuse(code: number, reason: string): void {
    if (this.#phase === "reading") this.#release();
    this.#phase = "closed";
    this.#stopTimer();
    safeClose(this.#client, code, reason);
  }

  /** Closed before the session was reached (admitFirstPacket closed it, or the client left). */
  #end(releaseToken: boolean): void {
    if (releaseToken && this.#phase === "reading") this.#release();
    this.#phase = "closed";
    this.#stopTimer();
  }

  /** A send that fails (the socket closing) closes both sides. */
  #send(ws: WebSocket, data: ArrayBuffer | ArrayBufferView | string): void {
    try {
      ws.send(data);
    } catch {
      this.#sessionClosed(1011, "relay send failed");
    }
  }
}

/** Drops of QoS 0 by relays of this isolate, reported with the client identifier about once a second. */
class RelayDrops {
  #drops: Record<string, ClientDrops> = {};
  #total = 0;
  #flush: Promise<void> | undefined;
  /** When each client's current episode of drops was logged (once per minute of drops). */
  readonly #logged = new Map<string, number>();

  record(env: Env, ctx: WaitUntil, clientId: string, count: number): void {
    const now = Date.now();
    const d = (this.#drops[clientId] ??= { qos0: 0, queue: 0, rate: 0, at: now });
    d.qos0 += count;
    d.at = now;
    this.#total += count;
    const logged = this.#logged.get(clientId);
    if (logged === undefined || now - logged > 60_000) {
      this.#logged.set(clientId, now);
      if (this.#logged.size > 1000) this.#logged.delete(this.#logged.keys().next().value!);
      console.warn(`client ${JSON.stringify(clientId)}: does not keep up with its messages: QoS 0 messages to it are dropped by the relay (counted in GET /metrics under drops)`);
    }
    if (this.#flush) return;
    this.#flush = new Promise<void>((resolve) => setTimeout(resolve, 1000))
      .then(async () => {
        const drops = this.#drops;
        const counters = { ...zeroCounters(), droppedQos0: this.#total };
        this.#drops = {};
        this.#total = 0;
        this.#flush = undefined;
        await env.METRICS.get(env.METRICS.idFromName("metrics")).add("worker", counters, drops);
      })
      .catch((e: unknown) => console.error("metrics report failed", e));
    ctx.waitUntil(this.#flush);
  }
}

const relayDrops = new RelayDrops();
