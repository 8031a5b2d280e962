// A bare MQTT-over-WebSocket client for the overload bench: it sends exactly the packets it is
// told to (CONNECT, SUBSCRIBE, PINGREQ), never acknowledges anything it receives, and can stop
// reading its socket (pause) while still writing to it. Packets are encoded and parsed with
// mqtt-packet; the WebSocket is the `ws` package (one WebSocket message per packet).
import mqttPacket from "mqtt-packet";
import WebSocket from "ws";
import { now } from "./lib.mjs";

/**
 * @typedef {object} Closed
 * @property {number} at epoch ms
 * @property {string} how "close <code> <reason>" or "error: ..."
 * @property {number} [disconnectReason] reason code of a DISCONNECT from the broker (MQTT 5)
 */

export class RawClient {
  /**
   * @param {{ url: string, clientId: string, version?: 4 | 5, keepAlive?: number,
   *           onPacket?: (packet: any) => void }} options
   *   `keepAlive` (s): a PINGREQ is sent every half of it, even while paused, so the broker's
   *   keep-alive timer never ends the connection; `onPacket` sees every packet after CONNACK.
   */
  constructor({ url, clientId, version = 5, keepAlive = 60, onPacket }) {
    this.url = url;
    this.clientId = clientId;
    this.version = version;
    this.keepAlive = keepAlive;
    this.onPacket = onPacket ?? (() => {});
    /** @type {WebSocket | undefined} */
    this.ws = undefined;
    /** @type {Closed | undefined} */
    this.closed = undefined;
    /** @type {number | undefined} DISCONNECT reason code, if the broker sent one */
    this.disconnectReason = undefined;
    this.bytesIn = 0;
    this.packetsIn = 0;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pinger = undefined;
    /** @type {((p: any) => boolean) | undefined} takes the packet a call waits for (returns true) */
    this.waiter = undefined;
    this.nextPacketId = 1;
  }

  /** Opens the socket, sends CONNECT (no properties: Receive Maximum 65,535), resolves on CONNACK. */
  connect(timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close();
        reject(new Error(`${this.clientId}: no CONNACK within ${timeoutMs} ms`));
      }, timeoutMs);
      const ws = new WebSocket(this.url, ["mqtt"], { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      this.ws = ws;
      ws.binaryType = "nodebuffer";
      const parser = mqttPacket.parser({ protocolVersion: this.version });
      parser.on("packet", (p) => this.#packet(p));
      parser.on("error", (e) => this.#closed(`error: parse: ${e.message}`));
      ws.on("message", (data) => {
        const b = /** @type {Buffer} */ (data);
        this.bytesIn += b.length;
        parser.parse(b);
      });
      ws.on("open", () => this.send({ cmd: "connect", protocolId: "MQTT", protocolVersion: this.version, clean: true, keepalive: this.keepAlive, clientId: this.clientId }));
      ws.on("error", (e) => {
        this.#closed(`error: ${e.message}`);
        clearTimeout(timer);
        reject(e);
      });
      ws.on("close", (code, reason) => {
        this.#closed(`close ${code} ${reason}`);
        clearTimeout(timer);
        reject(new Error(`${this.clientId}: closed before CONNACK`));
      });
      this.waiter = (p) => {
        clearTimeout(timer);
        if (p.cmd !== "connack" || (p.reasonCode ?? p.returnCode ?? 0) !== 0) {
          this.close();
          reject(new Error(`${this.clientId}: refused: ${JSON.stringify(p)}`));
          return true;
        }
        if (this.keepAlive > 0) {
          this.pinger = setInterval(() => this.send({ cmd: "pingreq" }), (this.keepAlive * 1000) / 2);
          this.pinger.unref();
        }
        resolve(p);
        return true;
      };
    });
  }

  /** SUBSCRIBE one filter; resolves on SUBACK with the granted QoS (or reason code). */
  subscribe(/** @type {string} */ topic, /** @type {0 | 1 | 2} */ qos, timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const messageId = this.nextPacketId++;
      const timer = setTimeout(() => reject(new Error(`${this.clientId}: no SUBACK within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = (p) => {
        if (p.cmd !== "suback" || p.messageId !== messageId) return false;
        clearTimeout(timer);
        const granted = p.granted?.[0];
        if (granted === undefined || granted >= 0x80) reject(new Error(`${this.clientId}: subscription refused (${granted})`));
        else resolve(granted);
        return true;
      };
      this.send({ cmd: "subscribe", messageId, subscriptions: [{ topic, qos }] });
    });
  }

  /** @param {any} packet */
  send(packet) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(mqttPacket.generate(packet, { protocolVersion: this.version }));
    return true;
  }

  /** Stop reading the socket: the broker's packets pile up in the kernel, then in the broker. */
  pause() {
    this.ws?.pause();
  }

  resume() {
    this.ws?.resume();
  }

  /** Local TCP port of the connection (to find it in /proc/net/tcp). */
  get localPort() {
    return /** @type {any} */ (this.ws)?._socket?.localPort;
  }

  /** Ends the connection at once (TCP reset, nothing read or sent first). */
  close() {
    if (this.pinger) clearInterval(this.pinger);
    try {
      this.ws?.terminate();
    } catch {
      // already closed
    }
  }

  /** @param {any} p */
  #packet(p) {
    this.packetsIn++;
    if (p.cmd === "disconnect") this.disconnectReason = p.reasonCode ?? 0;
    if (this.waiter?.(p)) {
      this.waiter = undefined;
      return;
    }
    this.onPacket(p);
  }

  /** @param {string} how */
  #closed(how) {
    if (this.closed) return;
    if (this.pinger) clearInterval(this.pinger);
    this.closed = { at: now(), how, ...(this.disconnectReason !== undefined && { disconnectReason: this.disconnectReason }) };
  }
}
