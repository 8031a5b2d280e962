#!/usr/bin/env node
// edge-mqtt-bridge: MQTT over TCP in front of the broker's MQTT over WebSocket (docs/tcp-bridge.md).
//
//   node bridge/cli.mjs --broker wss://mqtt.example.com/mqtt --listen 0.0.0.0:1883
//
// Every option has an environment variable (the flag wins). Bad options: usage on stderr, exit 2.
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_HOST, DEFAULT_MAX_CONNECTIONS, DEFAULT_PORT, parseBrokerUrl, startBridge } from "./bridge.mjs";

export const USAGE = `usage: edge-mqtt-bridge --broker <ws(s)://host/mqtt> [options]

Listens for MQTT over TCP and bridges each connection to the broker's MQTT over WebSocket.

  --broker URL            the broker's MQTT WebSocket URL (required)
  --listen HOST:PORT      where to listen (default ${DEFAULT_HOST}:${DEFAULT_PORT})
  --ca FILE               extra CA (PEM) trusted for a wss:// broker
  --cert FILE --key FILE  listen with TLS (MQTT over TLS; port 8883 by custom)
  --secret SECRET         the broker's BRIDGE_SECRET: forward each client's address
  --max-connections N     TCP connections at once (default ${DEFAULT_MAX_CONNECTIONS})
  --handshake-timeout S   seconds for the broker's WebSocket handshake (default ${DEFAULT_HANDSHAKE_TIMEOUT_MS / 1000})
  --idle-timeout S        close a connection silent for S seconds (default 0: never)
  -h, --help              this text

Each option can come from the environment instead: EDGE_MQTT_BRIDGE_<OPTION> in capitals
with _ for -, e.g. EDGE_MQTT_BRIDGE_BROKER, EDGE_MQTT_BRIDGE_MAX_CONNECTIONS. Give the
secret as EDGE_MQTT_BRIDGE_SECRET: a command-line flag shows in \`ps\`.`;

/** A mistake in the options: the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {}

/** Flag -> environment variable. */
const ENV = /** @type {const} */ ({
  broker: "EDGE_MQTT_BRIDGE_BROKER",
  listen: "EDGE_MQTT_BRIDGE_LISTEN",
  ca: "EDGE_MQTT_BRIDGE_CA",
  cert: "EDGE_MQTT_BRIDGE_CERT",
  key: "EDGE_MQTT_BRIDGE_KEY",
  secret: "EDGE_MQTT_BRIDGE_SECRET",
  "max-connections": "EDGE_MQTT_BRIDGE_MAX_CONNECTIONS",
  "handshake-timeout": "EDGE_MQTT_BRIDGE_HANDSHAKE_TIMEOUT",
  "idle-timeout": "EDGE_MQTT_BRIDGE_IDLE_TIMEOUT",
});

/**
 * The bridge's options from argv and the environment; `help` when asked for the usage.
 * @param {string[]} argv
 * @param {NodeJS.ProcessEnv} env
 * @returns {import("./bridge.mjs").BridgeOptions | "help"}
 */
export function parseOptions(argv, env) {
  /** @type {ReturnType<typeof parseArgs<{ options: typeof FLAGS }>>["values"]} */
  let flags;
  try {
    flags = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (flags.help) return "help";
  /** @param {keyof typeof ENV} name */
  const get = (name) => {
    const value = flags[name] ?? env[ENV[name]];
    return value === "" ? undefined : value;
  };
  const broker = get("broker");
  if (broker === undefined) throw new UsageError("--broker is required (or EDGE_MQTT_BRIDGE_BROKER)");
  try {
    parseBrokerUrl(broker);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { host, port } = parseListen(get("listen") ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`);
  const cert = get("cert");
  const key = get("key");
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--cert and --key go together");
  const ca = get("ca");
  const secret = get("secret");
  const maxConnections = get("max-connections");
  const handshake = get("handshake-timeout");
  const idle = get("idle-timeout");
  return {
    broker,
    host,
    port,
    ...(ca !== undefined ? { ca: readPem("--ca", ca) } : {}),
    ...(cert !== undefined && key !== undefined ? { tls: { cert: readPem("--cert", cert), key: readPem("--key", key) } } : {}),
    ...(secret !== undefined ? { secret } : {}),
    ...(maxConnections !== undefined ? { maxConnections: wholeNumber("--max-connections", maxConnections, 1) } : {}),
    ...(handshake !== undefined ? { handshakeTimeoutMs: wholeNumber("--handshake-timeout", handshake, 1) * 1000 } : {}),
    ...(idle !== undefined ? { idleTimeoutMs: wholeNumber("--idle-timeout", idle, 0) * 1000 } : {}),
  };
}

const FLAGS = /** @type {const} */ ({
  broker: { type: "string" },
  listen: { type: "string" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  secret: { type: "string" },
  "max-connections": { type: "string" },
  "handshake-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  help: { type: "boolean", short: "h" },
});

/**
 * `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (host 127.0.0.1).
 * @param {string} value
 */
export function parseListen(value) {
  const match = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(value.trim());
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) throw new UsageError(`--listen: expected HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: match[1] ?? (match[2] || DEFAULT_HOST), port };
}

/**
 * @param {string} flag
 * @param {string} value
 * @param {number} min
 */
function wholeNumber(flag, value, min) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag}: expected a whole number >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * @param {string} flag
 * @param {string} path
 */
function readPem(flag, path) {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${path}: ${err instanceof Error ? err.message : err}`);
  }
}

async function main() {
  /** @type {ReturnType<typeof parseOptions>} */
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`edge-mqtt-bridge: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (options === "help") {
    console.log(USAGE);
    return;
  }
  const bridge = await startBridge(options).catch((/** @type {NodeJS.ErrnoException} */ err) => {
    const why = err.code === "EADDRINUSE" ? `${options.host}:${options.port} is in use (another MQTT broker?); pick another with --listen` : err.message;
    console.error(`edge-mqtt-bridge: cannot listen: ${why}`);
    process.exit(1);
  });
  const broker = new URL(options.broker);
  console.log(`edge-mqtt-bridge: ${bridge.url} -> ${broker.origin}${broker.pathname}${options.secret ? " (forwarding client addresses)" : ""}`);
  if (options.secret && broker.protocol === "ws:" && !["127.0.0.1", "localhost", "[::1]"].includes(broker.hostname)) {
    console.warn("edge-mqtt-bridge: warning: the bridge secret goes over plain ws://; use wss:// beyond this machine");
  }
  /** @param {NodeJS.Signals} signal */
  const stop = async (signal) => {
    console.log(`edge-mqtt-bridge: ${signal}: closing ${bridge.connections()} connection(s)`);
    await bridge.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
}

// Run as a program (node bridge/cli.mjs, or the edge-mqtt-bridge bin), not when imported by a test.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) await main();
