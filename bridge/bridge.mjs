// MQTT over TCP -> MQTT over WebSocket (docs/tcp-bridge.md).
//
// Cloudflare Workers take no raw TCP, so TCP-only clients (mosquitto_pub/sub, embedded
// libraries, industrial gateways) reach the broker through this bridge: each accepted TCP
// connection gets one WebSocket to the broker (subprotocol "mqtt"), and bytes are copied both
// ways unchanged. The bridge never parses MQTT: the broker sees the client's own packets, cut
// at arbitrary WebSocket frame boundaries, which MQTT allows [MQTT-6.0.0-2].
import { createServer as createTcpServer } from "node:net";
import { createServer as createTlsServer, rootCertificates } from "node:tls";
import WebSocket from "ws";

/** Where the bridge listens by default: loopback, the MQTT TCP port. */
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 1883;
export const DEFAULT_MAX_CONNECTIONS = 1000;
/** Milliseconds the broker has to complete the WebSocket handshake before the TCP client is closed. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Bytes a connection may have queued towards the broker before its TCP socket is paused
 * (resumed below LOW_WATER). Towards the client, Node's own write buffer is the bound: the
 * WebSocket is paused whenever `socket.write` says the buffer is full, until it drains.
 */
export const HIGH_WATER = 1 << 20;
export const LOW_WATER = HIGH_WATER / 4;

/** Headers of the trusted address forwarding (worker/routes/mqtt.ts: BRIDGE_SECRET_HEADER / BRIDGE_ADDRESS_HEADER). */
export const SECRET_HEADER = "X-Edge-Mqtt-Bridge-Secret";
export const ADDRESS_HEADER = "X-Edge-Mqtt-Forwarded-For";

/**
 * @typedef {object} BridgeOptions
 * @property {string} broker ws:// or wss:// URL of the broker's MQTT endpoint, e.g. wss://mqtt.example.com/mqtt
 * @property {string} [host] address to listen on (default 127.0.0.1)
 * @property {number} [port] port to listen on (default 1883; 0: any free port)
 * @property {string | Buffer} [ca] extra CA certificate(s), PEM, trusted for a wss:// broker (with the system's)
 * @property {{ cert: string | Buffer, key: string | Buffer }} [tls] listen with TLS (MQTT over TLS, port 8883 by convention)
 * @property {string} [secret] BRIDGE_SECRET: sent with the client's address on each upgrade
 * @property {number} [maxConnections] TCP connections at once; more are refused (closed at once)
 * @property {number} [handshakeTimeoutMs] see DEFAULT_HANDSHAKE_TIMEOUT_MS
 * @property {number} [idleTimeoutMs] close a connection after this long without a byte either way (0: never; MQTT keep-alive is the broker's)
 * @property {(line: string) => void} [log] one line per connection opened and closed (default: console.log); never payloads
 */

/**
 * @typedef {object} Bridge
 * @property {string} host
 * @property {number} port the port listened on (the real one when 0 was asked)
 * @property {string} url mqtt://host:port (mqtts:// with `tls`)
 * @property {() => number} connections TCP connections open now
 * @property {() => Promise<void>} close stops listening and closes every connection (TCP and WebSocket)
 */

/**
 * Listens for MQTT over TCP and bridges each connection to `options.broker`.
 * Rejects with the listen error (e.g. EADDRINUSE) when the port cannot be had.
 * @param {BridgeOptions} options
 * @returns {Promise<Bridge>}
 */
export async function startBridge(options) {
  const brokerUrl = parseBrokerUrl(options.broker);
  const host = options.host ?? DEFAULT_HOST;
  const log = options.log ?? ((line) => console.log(line));
  /** @type {Set<() => void>} */
  const open = new Set();
  const server = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }) : createTcpServer();
  server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on(options.tls ? "secureConnection" : "connection", (/** @type {import("node:net").Socket} */ socket) => {
    const teardown = bridgeConnection(socket, brokerUrl, options, log, () => open.delete(teardown));
    open.add(teardown);
  });
  // A TLS handshake that fails (plain MQTT sent to the TLS port, a client that distrusts us).
  server.on("tlsClientError", (err, socket) => {
    log(`tls ${peerOf(socket)} refused: ${err.message}`);
    socket.destroy();
  });
  server.on("drop", (data) => log(`refused ${data?.remoteAddress ?? "?"}:${data?.remotePort ?? "?"}: ${server.maxConnections} connections open (--max-connections)`));
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port: options.port ?? DEFAULT_PORT, exclusive: true }, () => {
      server.off("error", reject);
      resolve(undefined);
    });
  });
  server.on("error", (err) => log(`listener error: ${err.message}`));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    host,
    port,
    url: `${options.tls ? "mqtts" : "mqtt"}://${host.includes(":") ? `[${host}]` : host}:${port}`,
    connections: () => open.size,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        for (const teardown of [...open]) teardown();
      }),
  };
}

/**
 * A broker URL the bridge can dial: ws:// or wss://, else an Error naming what is expected.
 * @param {string | undefined} value
 * @returns {URL}
 */
export function parseBrokerUrl(value) {
  let url;
  try {
    url = new URL(value ?? "");
  } catch {
    throw new Error(`--broker: not a URL: ${JSON.stringify(value ?? "")} (expected ws://host:port/mqtt or wss://host/mqtt)`);
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") throw new Error(`--broker: ${url.protocol}// is not a WebSocket URL (expected ws:// or wss://)`);
  return url;
}

/**
 * The client's address as the broker should see it: IPv4 without the IPv6-mapped prefix.
 * @param {{ remoteAddress?: string | undefined }} socket
 */
export function clientAddressOf(socket) {
  const address = socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice("::ffff:".length) : address;
}

/** @param {{ remoteAddress?: string | undefined, remotePort?: number | undefined }} socket */
function peerOf(socket) {
  const address = clientAddressOf(socket);
  return address.includes(":") ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
}

/**
 * Joins one TCP client to a new WebSocket to the broker. Returns its teardown (idempotent);
 * `onClosed` runs once when both sides are done.
 * @param {import("node:net").Socket} socket
 * @param {URL} brokerUrl
 * @param {BridgeOptions} options
 * @param {(line: string) => void} log
 * @param {() => void} onClosed
 */
function bridgeConnection(socket, brokerUrl, options, log, onClosed) {
  const peer = peerOf(socket);
  const openedAt = Date.now();
  let up = 0; // bytes client -> broker
  let down = 0; // bytes broker -> client
  let closed = false;
  let opened = false;
  // Nothing is read until the WebSocket is open: bytes wait in the kernel, not in our memory.
  socket.pause();
  socket.setNoDelay(true);
  if (options.idleTimeoutMs) socket.setTimeout(options.idleTimeoutMs);

  /** @type {Record<string, string>} */
  const headers = options.secret ? { [SECRET_HEADER]: options.secret, [ADDRESS_HEADER]: clientAddressOf(socket) } : {};
  const ws = new WebSocket(brokerUrl, "mqtt", {
    headers,
    handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    perMessageDeflate: false,
    ...(options.ca !== undefined ? { ca: withSystemCas(options.ca) } : {}),
  });
  log(`open ${peer} -> ${brokerUrl.origin}`);

  /** @param {string} why */
  const teardown = (why) => {
    if (closed) return;
    closed = true;
    // A WebSocket close without an MQTT DISCONNECT before it is an abnormal end for the
    // broker, which publishes the client's Will [MQTT-3.1.2-8]; a DISCONNECT the client
    // sent was forwarded ahead of this close.
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, "tcp client gone");
    else ws.terminate();
    // end(), not destroy(): what the broker sent last (a CONNACK refusing, a DISCONNECT) still reaches the client.
    socket.end();
    setTimeout(() => socket.destroy(), 2_000).unref();
    const seconds = ((Date.now() - openedAt) / 1000).toFixed(1);
    log(`close ${peer} after ${seconds} s, ${up} B up, ${down} B down: ${why}`);
    onClosed();
  };

  ws.on("open", () => {
    opened = true;
    socket.resume();
  });
  ws.on("unexpected-response", (_req, res) => {
    // The broker refused the upgrade (429 rate limit, 503, 401...): no CONNACK can be invented, just close.
    res.resume();
    teardown(`broker refused the WebSocket: HTTP ${res.statusCode}${res.headers["retry-after"] ? ` (Retry-After ${res.headers["retry-after"]})` : ""}`);
  });
  ws.on("error", (err) => teardown(`broker ${opened ? "error" : "unreachable"}: ${err.message}`));
  ws.on("close", (code) => teardown(`broker closed the WebSocket (${code})`));

  socket.on("data", (chunk) => {
    up += chunk.length;
    ws.send(chunk, { binary: true }, () => {
      // Sent (or failed: then close/error tear down): resume reading once the queue is short.
      if (socket.isPaused() && !closed && ws.bufferedAmount <= LOW_WATER) socket.resume();
    });
    if (ws.bufferedAmount > HIGH_WATER) socket.pause();
  });
  ws.on("message", (data, isBinary) => {
    // MQTT travels in binary frames only [MQTT-6.0.0-1].
    if (!isBinary) return teardown("broker sent a text frame");
    const bytes = /** @type {Buffer} */ (data);
    down += bytes.length;
    if (!socket.write(bytes)) ws.pause();
  });
  socket.on("drain", () => {
    if (ws.readyState === WebSocket.OPEN) ws.resume();
  });
  socket.on("end", () => teardown("client closed the connection"));
  socket.on("error", (err) => teardown(`client error: ${err.message}`));
  socket.on("close", () => teardown("client connection closed"));
  socket.on("timeout", () => teardown(`idle for ${options.idleTimeoutMs} ms`));

  return () => teardown("bridge stopping");
}

/**
 * Node replaces its trusted CAs with `ca` when given; a deployed broker behind a public CA
 * should still verify, so the system's roots are kept next to the extra one.
 * @param {string | Buffer} ca
 */
function withSystemCas(ca) {
  return [...rootCertificates, ca.toString()];
}
