#!/usr/bin/env node
// `npm start`: apply D1 migrations locally, run the broker on workerd on
// 127.0.0.1:8787 (PORT env or --port), state under .wrangler/state
// (--persist-to DIR to change), no outbound network. Ctrl-C / SIGTERM stop it.
// `--runtime local` (default; EDGE_MQTT_RUNTIME sets another default) runs
// workerd through Miniflare's API, `--runtime wrangler` through `wrangler dev`
// (see docs/local-runtime.md).
import { argFromArgs, defaultRuntime, parseRuntime, portFromArgs, startBroker } from "./broker-process.mjs";

const port = portFromArgs();
const persistTo = argFromArgs("--persist-to");
/** @type {import("./broker-process.mjs").Runtime} */
let runtime;
try {
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

try {
  broker = await startBroker({ port, runtime, ...(persistTo ? { persistTo } : {}) });
} catch (err) {
  console.error(`failed to start the broker: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
if (stopping) {
  await broker.stop();
  process.exit(0);
}
console.log(`\nMQTT broker ready: ${broker.url}  (runtime: ${runtime})`);
console.log(`HTTP: ${broker.httpUrl} (GET /health)  Ctrl-C to stop`);

const { code, signal } = await broker.exited;
if (!stopping) {
  console.error(`the broker (${runtime}) exited unexpectedly (${signal ?? code})`);
  process.exit(code || 1);
}
