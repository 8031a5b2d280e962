#!/usr/bin/env node
// Serves the example page (index.html, app.js) and MQTT.js's browser bundle, so the page
// needs nothing from the internet. Node's standard library only.
//
//   node examples/browser/serve.mjs                       # http://127.0.0.1:8080/
//   node examples/browser/serve.mjs --port 8443 \
//     --cert .wrangler/state/tls/server.pem --key .wrangler/state/tls/server-key.pem
//                                                         # https://localhost:8443/
//
// Over https the page's default broker URL is wss://: a page served over https may only open
// secure WebSockets (mixed content). `npm start -- --tls` made that certificate and its CA
// (.wrangler/state/tls/ca.pem): the browser must trust the CA (README.md).
//
// Options: --host (127.0.0.1), --port (8080; 0 picks a free one), --cert/--key (PEM files:
// https), --mqtt (the bundle to serve; default: MQTT.js's dist/mqtt.esm.js from node_modules).
// Prints "serving <url>" once listening.
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8080" },
    cert: { type: "string" },
    key: { type: "string" },
    mqtt: { type: "string" },
  },
});

/** The only files served: URL path -> [file, Content-Type]. Nothing else on disk is reachable.
 * @type {Map<string, [string, string]>} */
const FILES = new Map([
  ["/", [join(HERE, "index.html"), "text/html; charset=utf-8"]],
  ["/index.html", [join(HERE, "index.html"), "text/html; charset=utf-8"]],
  ["/app.js", [join(HERE, "app.js"), "text/javascript; charset=utf-8"]],
  // The ES module build of MQTT.js for browsers (its package.json maps dist/* to dist/*.js).
  ["/vendor/mqtt.esm.js", [args.mqtt ?? createRequire(import.meta.url).resolve("mqtt/dist/mqtt.esm"), "text/javascript; charset=utf-8"]],
]);

/**
 * @param {import("node:http").IncomingMessage} req
 * @param {import("node:http").ServerResponse} res
 */
async function handle(req, res) {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  const entry = FILES.get(path);
  if (!entry || (req.method !== "GET" && req.method !== "HEAD")) {
    res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    return;
  }
  const [file, type] = entry;
  try {
    const body = await readFile(file);
    // no-store: an edited app.js shows on the next reload.
    res.writeHead(200, { "Content-Type": type, "Content-Length": body.length, "Cache-Control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : body);
  } catch (err) {
    res.writeHead(500, { "Content-Type": "text/plain" }).end(`cannot read ${path}: ${err instanceof Error ? err.message : err}\n`);
  }
}

const tls = args.cert && args.key ? { cert: await readFile(args.cert), key: await readFile(args.key) } : undefined;
if ((args.cert === undefined) !== (args.key === undefined)) {
  console.error("serve.mjs: give both --cert and --key (https), or neither (http)");
  process.exit(64);
}
const onRequest = (/** @type {import("node:http").IncomingMessage} */ req, /** @type {import("node:http").ServerResponse} */ res) =>
  void handle(req, res);
const server = tls ? createHttpsServer(tls, onRequest) : createHttpServer(onRequest);
server.listen(Number(args.port), args.host, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : args.port;
  const host = args.host.includes(":") ? `[${args.host}]` : args.host;
  console.log(`serving ${tls ? "https" : "http"}://${host}:${port}/`);
});
