// The bench's lean MQTT client: the `ws` package and the broker's own codec (core/mqtt/codec,
// bundled for Node by bench/run.mjs). One WebSocket message per packet. Handles CONNACK,
// SUBACK, PUBACK, PUBREC/PUBREL/PUBCOMP in both directions and PINGREQ on keep alive.
// Everything a benchmark needs and nothing else: no reconnect, no offline queue.
// `mqtt://host:port` (or `tcp://`) speaks MQTT over plain TCP instead (one write per packet,
// Nagle off as `ws` has it), so the same client measures a broker without WebSockets
// (Debian's Mosquitto: bench/mosquitto/).
import { connect as tcpConnect } from "node:net";
import WebSocket from "ws";

/**
 * A TCP socket behind the part of the `ws` interface the client uses (send, close, terminate,
 * readyState, bufferedAmount; open, message, error and close events). MQTT over TCP is a byte
 * stream: `message` hands over chunks, which the client frames like WebSocket messages.
 */
class TcpTransport {
  /** @param {string} url mqtt://host:port or tcp://host:port (port 1883 when absent) */
  constructor(url) {
    const u = new URL(url);
    /** @type {Map<string, ((...a: any[]) => void)[]>} */
    this.handlers = new Map();
    /** @type {number} WebSocket.CONNECTING, OPEN, CLOSING or CLOSED */
    this.readyState = WebSocket.CONNECTING;
    this.socket = tcpConnect({ host: u.hostname, port: Number(u.port || 1883), noDelay: true });
    this.socket.on("connect", () => {
      this.readyState = WebSocket.OPEN;
      this.#emit("open");
    });
    this.socket.on("data", (chunk) => this.#emit("message", chunk));
    this.socket.on("error", (e) => this.#emit("error", e));
    this.socket.on("close", () => {
      this.readyState = WebSocket.CLOSED;
      this.#emit("close", 1006, "tcp closed");
    });
  }
  /** @param {string} event @param {(...a: any[]) => void} fn */
  on(event, fn) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
  }
  /** @param {string} event @param {any[]} a */
  #emit(event, ...a) {
    for (const fn of this.handlers.get(event) ?? []) fn(...a);
  }
  get bufferedAmount() {
    return this.socket.writableLength;
  }
  /** @param {Uint8Array} bytes */
  send(bytes) {
    if (this.readyState === WebSocket.OPEN) this.socket.write(bytes);
  }
  /** Ends the stream after what is written (the DISCONNECT before it); `ws`'s close code has no TCP equivalent. @param {number} [_code] */
  close(_code) {
    if (this.readyState !== WebSocket.OPEN) return;
    this.readyState = WebSocket.CLOSING;
    this.socket.end();
  }
  terminate() {
    this.readyState = WebSocket.CLOSED;
    this.socket.destroy();
  }
}

/** @param {string} url */
const isTcp = (url) => url.startsWith("mqtt://") || url.startsWith("tcp://");

/** @typedef {{ encodePacket: Function, decodePacket: Function, splitFrames: Function }} Codec */

export class LeanClient {
  /**
   * @param {{ url: string, clientId: string, codec: Codec, version?: 4 | 5, keepAlive?: number,
   *           username?: string, password?: string,
   *           onPublish?: (packet: any) => void, onClose?: (client: LeanClient) => void }} options
   *   `username` / `password`: the CONNECT's (a password alone is sent only with a user name in
   *   3.1.1 [MQTT-3.1.2-22]; 5.0 allows it alone).
   */
  constructor({ url, clientId, codec, version = 4, keepAlive = 60, username, password, onPublish, onClose }) {
    this.url = url;
    this.clientId = clientId;
    this.username = username;
    this.password = password;
    this.codec = codec;
    this.version = version;
    this.keepAlive = keepAlive;
    this.onPublish = onPublish ?? (() => {});
    this.onClose = onClose ?? (() => {});
    /** @type {WebSocket | TcpTransport | undefined} */
    this.ws = undefined;
    this.pending = new Uint8Array(0);
    this.nextId = 1;
    /** @type {Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>} */
    this.waiting = new Map();
    this.inflight = 0;
    this.open = false;
    this.closeReason = "";
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pinger = undefined;
    this.lastSent = Date.now();
    /** @type {(() => void)[]} PINGRESP waiters, in order */
    this.pings = [];
  }

  /**
   * PINGREQ; resolves on its PINGRESP. The broker answers in order, so every packet sent
   * before it has been taken in by then: the bench's flow control for QoS 0 floods.
   */
  ping() {
    return new Promise((/** @type {(v?: unknown) => void} */ resolve) => {
      this.pings.push(resolve);
      this.#send({ type: "pingreq" });
    });
  }

  /** Opens the socket, sends CONNECT, resolves on a successful CONNACK. */
  connect(timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${this.clientId}: no CONNACK within ${timeoutMs} ms`)), timeoutMs);
      const fail = (/** @type {Error} */ e) => {
        clearTimeout(timer);
        this.connackWaiter = undefined;
        try {
          this.ws?.terminate();
        } catch {
          // already closed
        }
        reject(e);
      };
      this.connackWaiter = { resolve: (/** @type {any} */ p) => (clearTimeout(timer), resolve(p)), reject: fail };
      /** @type {WebSocket | TcpTransport} */
      const ws = isTcp(this.url) ? new TcpTransport(this.url) : new WebSocket(this.url, ["mqtt"], { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      this.ws = ws;
      if (ws instanceof WebSocket) ws.binaryType = "nodebuffer";
      ws.on("open", () => {
        this.#send({
          type: "connect",
          protocolName: "MQTT",
          protocolVersion: this.version,
          clean: true,
          keepAlive: this.keepAlive,
          clientId: this.clientId,
          ...(this.username !== undefined ? { username: this.username } : {}),
          ...(this.password !== undefined && (this.username !== undefined || this.version === 5) ? { password: new TextEncoder().encode(this.password) } : {}),
        });
      });
      ws.on("message", (/** @type {Buffer} */ data) => this.#receive(data));
      ws.on("error", (/** @type {Error} */ e) => {
        this.closeReason ||= `error: ${e.message}`;
        this.connackWaiter?.reject(e);
      });
      ws.on("close", (/** @type {number} */ code, /** @type {string | Buffer} */ reason) => {
        this.closeReason ||= `close ${code} ${reason}`;
        const wasOpen = this.open;
        this.open = false;
        if (this.pinger) clearInterval(this.pinger);
        this.connackWaiter?.reject(new Error(`${this.clientId}: closed before CONNACK (${this.closeReason})`));
        for (const w of this.waiting.values()) w.reject(new Error(`${this.clientId}: closed (${this.closeReason})`));
        for (const p of this.pings.splice(0)) p();
        this.waiting.clear();
        if (wasOpen) this.onClose(this);
      });
    });
  }

  /** @param {string} filter @param {0 | 1 | 2} qos */
  subscribe(filter, qos) {
    const packetId = this.#id();
    return new Promise((resolve, reject) => {
      this.waiting.set(packetId, { resolve, reject });
      this.#send({ type: "subscribe", packetId, subscriptions: [{ topicFilter: filter, qos }] });
    });
  }

  /**
   * QoS 0: sends, returns undefined. QoS 1/2: returns a promise settled by PUBACK / PUBCOMP.
   * @param {string} topic @param {Uint8Array} payload @param {0 | 1 | 2} qos
   */
  publish(topic, payload, qos) {
    if (qos === 0) {
      this.#send({ type: "publish", topic, payload, qos: 0, retain: false, dup: false });
      return undefined;
    }
    const packetId = this.#id();
    this.inflight++;
    return new Promise((resolve, reject) => {
      this.waiting.set(packetId, {
        resolve: (v) => (this.inflight--, resolve(v)),
        reject: (e) => (this.inflight--, reject(e)),
      });
      this.#send({ type: "publish", topic, payload, qos, retain: false, dup: false, packetId });
    });
  }

  /** Bytes the socket has not handed to the kernel yet. */
  get bufferedAmount() {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Sends already encoded bytes (one packet). */
  sendRaw(/** @type {Uint8Array} */ bytes) {
    this.lastSent = Date.now();
    this.ws?.send(bytes);
  }

  /** DISCONNECT, then close. */
  close() {
    if (this.pinger) clearInterval(this.pinger);
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      ws?.terminate();
      return;
    }
    try {
      this.#send({ type: "disconnect" });
      ws.close(1000);
    } catch {
      ws.terminate();
    }
    // Do not wait for the closing handshake of thousands of sockets forever.
    setTimeout(() => ws.terminate(), 2_000).unref();
  }

  #id() {
    for (let n = 0; n < 65535; n++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.waiting.has(id)) return id;
    }
    throw new Error("no free packet identifier");
  }

  /** @param {any} packet */
  #send(packet) {
    this.lastSent = Date.now();
    this.ws?.send(this.codec.encodePacket(packet, this.version));
  }

  /** @param {Buffer} chunk */
  #receive(chunk) {
    const split = this.codec.splitFrames(this.pending, chunk);
    this.pending = split.rest;
    if (split.error) {
      this.closeReason = `framing: ${split.error.message}`;
      this.ws?.terminate();
      return;
    }
    for (const frame of split.frames) {
      const result = this.codec.decodePacket(frame, { protocolVersion: this.version });
      if (!result.ok) {
        this.closeReason = `decode: ${result.error.message}`;
        this.ws?.terminate();
        return;
      }
      this.#handle(result.packet);
    }
  }

  /** @param {any} p */
  #handle(p) {
    switch (p.type) {
      case "connack": {
        const waiter = this.connackWaiter;
        this.connackWaiter = undefined;
        if (p.reasonCode !== 0) {
          waiter?.reject(new Error(`${this.clientId}: CONNACK ${p.reasonCode}`));
          return;
        }
        this.open = true;
        this.connectedAt = Date.now();
        if (this.keepAlive > 0) {
          const ms = this.keepAlive * 1000;
          this.pinger = setInterval(() => {
            if (Date.now() - this.lastSent >= ms / 2 && this.pings.length === 0) this.#send({ type: "pingreq" });
          }, ms / 2);
          this.pinger.unref();
        }
        waiter?.resolve(p);
        return;
      }
      case "publish":
        if (p.qos === 1) this.#send({ type: "puback", packetId: p.packetId });
        else if (p.qos === 2) this.#send({ type: "pubrec", packetId: p.packetId });
        this.onPublish(p);
        return;
      case "pubrel":
        this.#send({ type: "pubcomp", packetId: p.packetId });
        return;
      case "pubrec":
        this.#send({ type: "pubrel", packetId: p.packetId });
        return;
      case "puback":
      case "pubcomp":
      case "suback":
      case "unsuback": {
        const w = this.waiting.get(p.packetId);
        this.waiting.delete(p.packetId);
        w?.resolve(p);
        return;
      }
      case "disconnect":
        this.closeReason = `DISCONNECT ${p.reasonCode ?? 0}`;
        return;
      case "pingresp":
        this.pings.shift()?.();
        return;
      default:
        return;
    }
  }
}
