#!/usr/bin/env node
// `npm start`: apply D1 migrations locally, run the broker on workerd on
// 127.0.0.1:8787 (PORT env or --port), state under .wrangler/state
// (--persist-to DIR to change), no outbound network. Ctrl-C / SIGTERM stop it.
// `--runtime local` (default; EDGE_MQTT_RUNTIME sets another default) runs
// workerd through Miniflare's API, `--runtime wrangler` through `wrangler dev`
// (see docs/local-runtime.md).
// Secrets come from .dev.vars (--dev-vars PATH for another file), created from
// .dev.vars.example with a random ADMIN_TOKEN when it is missing (docs/admin.md).
// A port already taken: "port N is in use", exit status 1, nothing started.
// `--tls` (or TLS=1): wss:// and https:// with a local CA and a server certificate created on
// first run under <persist-to>/tls (scripts/tls.mjs) and reused; the CA file's path is printed.
// MQTT over TCP on 127.0.0.1:1883 too, bridged to the WebSocket endpoint (docs/tcp-bridge.md;
// plain TCP even with --tls: loopback only): `--tcp-port N` (MQTT_TCP_PORT) for another port,
// `--no-tcp` or `--tcp-port 0` for none. A taken port is a warning; the broker runs on.
import { relative, resolve } from "node:path";
import { argFromArgs, assertPortFree, defaultRuntime, HOST, parseRuntime, PortInUseError, portFromArgs, ROOT, startBroker, tcpPortFromArgs, tlsFromArgs } from "./broker-process.mjs";
import { DEV_VARS, ensureDevVars } from "./dev-vars.mjs";
import { tlsUsage } from "./tls.mjs";

const port = portFromArgs();
const persistTo = argFromArgs("--persist-to");
// Not `--env-file`: Node itself takes that flag from anywhere in argv (and fails on a missing file).
const envFileArg = argFromArgs("--dev-vars");
const envFile = envFileArg !== undefined ? resolve(envFileArg) : DEV_VARS;
const tls = tlsFromArgs();
/** @type {import("./broker-process.mjs").Runtime} */
let runtime;
/** MQTT over TCP (0: none). */
let tcpPort;
try {
  tcpPort = tcpPortFromArgs();
  const arg = argFromArgs("--runtime");
  runtime = arg !== undefined ? parseRuntime(arg) : defaultRuntime();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(2);
}
/** @type {import("./broker-process.mjs").Broker | undefined} */
let broker;
let stopping = false;

/** @param {NodeJS.Signals} signal */
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the broker...`);
  if (broker) await broker.stop();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

// Nothing is started or written when the port is taken (startBroker checks it again).
try {
  await assertPortFree(port);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}

const devVars = ensureDevVars({ path: envFile });
const shownPath = relative(process.cwd(), devVars.path) || devVars.path;
if (devVars.created) {
  // The token itself is never printed (terminal scrollback, CI logs): the file has it.
  console.log(`created ${shownPath} with a random ADMIN_TOKEN (the admin API's bearer token; \`npm run admin\` reads it from there)`);
} else if (!devVars.hasAdminToken) {
  console.warn(`${shownPath} sets no ADMIN_TOKEN: the admin API will answer 503 (see .dev.vars.example)`);
}
if (devVars.addedAllowAnonymous) {
  // A .dev.vars from before ALLOW_ANONYMOUS existed: without it the broker would take the
  // committed production default (off) and lock out the clients that connected yesterday.
  console.log(`${shownPath} had no ALLOW_ANONYMOUS: appended ALLOW_ANONYMOUS=true (clients may connect without a user name, as before; set it to false there to require credentials)`);
}

try {
  broker = await startBroker({
    port,
    runtime,
    ...(persistTo ? { persistTo } : {}),
    // wrangler's own default is .dev.vars next to wrangler.toml: pass the file only when it is another.
    ...(envFile !== resolve(ROOT, ".dev.vars") ? { envFile } : {}),
    tls,
    tcpPort,
  });
} catch (err) {
  if (err instanceof PortInUseError) {
    console.error(err.message);
    process.exit(1);
  }
  console.error(`failed to start the broker: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
if (stopping) {
  await broker.stop();
  process.exit(0);
}
console.log(`\nMQTT broker ready: ${broker.url}  (runtime: ${runtime})`);
console.log(`HTTP: ${broker.httpUrl} (GET /health)  API reference: ${broker.httpUrl}/api/v1/docs`);
if (broker.tcpUrl) console.log(`MQTT over TCP: ${broker.tcpUrl} (bridged)`);
if (broker.tcpWarning) console.warn(broker.tcpWarning);
if (broker.tls) {
  const made = { created: "created a new local CA and server certificate", renewed: "renewed the server certificate (same CA)", reused: "reusing the local CA and server certificate" }[broker.tls.status];
  console.log(`${made} in ${relative(process.cwd(), broker.tls.dir) || broker.tls.dir}`);
  for (const line of tlsUsage(broker.tls.caFile, { host: HOST, port })) console.log(line);
}
console.log(`admin token: ADMIN_TOKEN in ${shownPath}  Ctrl-C to stop`);

const { code, signal } = await broker.exited;
if (!stopping) {
  console.error(`the broker (${runtime}) exited unexpectedly (${signal ?? code})`);
  process.exit(code || 1);
}
