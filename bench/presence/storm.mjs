#!/usr/bin/env node
// `npm run bench:presence`: a reconnect storm. N clients (default 5,000) open MQTT
// connections within a few seconds, then all close (clean DISCONNECT); the broker's presence
// turns that into batched D1 writes. Starts its own broker exactly as `npm start` does
// (scripts/broker-process.mjs, fresh persist directory, free port on 127.0.0.1), then reads:
//   - D1 requests made by the presence objects (GET /metrics, byKind.presence.d1Requests),
//     per presence event (one connect and one disconnect per client),
//   - the wall time of the connects, the closes, and until D1 shows every client online,
//     then every client offline (GET /api/v1/devices).
//
//   npm run bench:presence                       5,000 clients on plain /mqtt (the relay route)
//   npm run bench:presence -- --clients 1000
//   npm run bench:presence -- --route fast       /mqtt/<clientId> (the session holds the socket)
//   npm run bench:presence -- --concurrency 200  connects in flight at once (default 100)
//   npm run bench:presence -- --var NAME=VALUE   a wrangler.toml [vars] value (repeatable)
//
// The clients are bare WebSockets with hand-encoded MQTT 3.1.1 CONNECT / DISCONNECT, so the
// client side costs little; like real clients, one whose connection fails (e.g. closed by
// the CONNECT timeout of a broker too busy to read it) tries again after 1 s (at most 5
// times; counted). Every connection goes to 127.0.0.1; every wait is bounded.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { getFreePort, startBroker } from "../../scripts/broker-process.mjs";

const args = process.argv.slice(2);
/** @param {string} name @param {string} fallback @returns {string} */
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] ?? fallback) : fallback;
};
const CLIENTS = Number(opt("clients", "5000"));
const ROUTE = opt("route", "relay");
const CONCURRENCY = Number(opt("concurrency", "100"));
/** @type {Record<string, string>} */
const vars = {};
args.forEach((a, i) => {
  if (a === "--var") {
    const [k = "", ...v] = (args[i + 1] ?? "").split("=");
    vars[k] = v.join("=");
  }
});
const TOKEN = "bench-admin-token-0123456789";
const AUTH = { Authorization: `Bearer ${TOKEN}` };
const now = () => performance.timeOrigin + performance.now();
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * MQTT 3.1.1 CONNECT, clean session, keep alive 0: the bare clients send nothing between
 * CONNECT and DISCONNECT (with a keep alive they would have to ping, or be closed for it while
 * the others connect), so the object holding each socket renews its presence lease by alarm.
 * @param {string} clientId
 */
function connectPacket(clientId) {
  const id = Buffer.from(clientId, "utf8");
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x00]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  const len = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x10, ...len]), body]);
}
const DISCONNECT = Buffer.from([0xe0, 0x00]);

/**
 * Opens a socket, sends CONNECT, resolves with the socket on CONNACK 0.
 * @param {string} base @param {string} clientId @returns {Promise<WebSocket>}
 */
function open(base, clientId) {
  return new Promise((resolve, reject) => {
    const url = ROUTE === "fast" ? `${base}/${encodeURIComponent(clientId)}` : base;
    const ws = new WebSocket(url, "mqtt");
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${clientId}: no CONNACK within 60 s`));
    }, 60_000);
    ws.on("open", () => ws.send(connectPacket(clientId)));
    ws.on("message", (/** @type {Buffer} */ data) => {
      const b = Buffer.from(data);
      if (b[0] === 0x20) {
        clearTimeout(timer);
        if (b[3] === 0) resolve(ws);
        else reject(new Error(`${clientId}: CONNACK ${b[3]}`));
      }
    });
    ws.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // Closed before CONNACK: e.g. the CONNECT timeout of a broker too busy to read it in time.
    ws.on("close", (code) => {
      clearTimeout(timer);
      reject(new Error(`${clientId}: closed before CONNACK (${code})`));
    });
  });
}

let retries = 0;
/** As a real client does: tries again (at most 5 times, after 1 s) when the connection failed. @param {string} base @param {string} clientId */
async function openRetrying(base, clientId) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open(base, clientId);
    } catch (e) {
      if (attempt >= 5) throw e;
      retries++;
      await sleep(1_000);
    }
  }
}

/**
 * Runs `fn` over items with at most `limit` in flight.
 * @template T, R @param {T[]} items @param {number} limit @param {(item: T, i: number) => Promise<R>} fn @returns {Promise<R[]>}
 */
async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(/** @type {T} */ (items[i]), i);
      }
    }),
  );
  return results;
}

/** @param {string} httpUrl @returns {Promise<any>} */
async function metrics(httpUrl) {
  const res = await fetch(`${httpUrl}/metrics`, { headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return res.json();
}

/** Devices with the prefix in a status, counted through the API (pages of 1,000). @param {string} httpUrl @param {string} prefix @param {string} status */
async function countDevices(httpUrl, prefix, status) {
  let n = 0;
  let cursor;
  do {
    const q = new URLSearchParams({ prefix, status, limit: "1000", ...(cursor ? { cursor } : {}) });
    const res = await fetch(`${httpUrl}/api/v1/devices?${q}`, { headers: AUTH });
    if (!res.ok) throw new Error(`GET /api/v1/devices: ${res.status} ${await res.text()}`);
    const page = /** @type {{ items: unknown[], next_cursor: string | null }} */ (await res.json());
    n += page.items.length;
    cursor = page.next_cursor;
  } while (cursor);
  return n;
}

/** @param {string} httpUrl @param {string} prefix @param {string} status @param {number} want @param {number} timeoutMs */
async function waitCount(httpUrl, prefix, status, want, timeoutMs) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const n = await countDevices(httpUrl, prefix, status);
    if (n >= want) return now();
    if (now() > deadline) throw new Error(`only ${n}/${want} ${status} after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** Until the presence objects' counters stop moving. @param {string} httpUrl */
async function waitMetricsStill(httpUrl, ms = 3_000) {
  let last = JSON.stringify((await metrics(httpUrl)).byKind?.presence);
  for (;;) {
    await sleep(ms);
    const cur = JSON.stringify((await metrics(httpUrl)).byKind?.presence);
    if (cur === last) return;
    last = cur;
  }
}

const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-bench-presence-"));
const port = await getFreePort();
let log = "";
const broker = await startBroker({ port, persistTo, onOutput: (c) => (log += c), vars: { ADMIN_TOKEN: TOKEN, ALLOW_ANONYMOUS: "true", MAX_PUBLISH_RATE: "0", ...vars } });
const httpUrl = `http://127.0.0.1:${port}`;
const base = `ws://127.0.0.1:${port}/mqtt`;
try {
  const prefix = `storm-${Date.now().toString(36)}-`;
  const ids = Array.from({ length: CLIENTS }, (_, i) => `${prefix}${String(i).padStart(5, "0")}`);
  await sleep(1_500);
  const before = await metrics(httpUrl);
  console.log(`${CLIENTS} clients, route ${ROUTE}, ${CONCURRENCY} connects in flight`);

  const t0 = now();
  const sockets = await pool(ids, CONCURRENCY, (id) => openRetrying(base, id));
  const t1 = now();
  console.log(`connected: ${CLIENTS} in ${((t1 - t0) / 1000).toFixed(1)} s (${retries} connects tried again)`);
  const tOnline = await waitCount(httpUrl, prefix, "online", CLIENTS, 120_000);
  console.log(`all online in D1 ${((tOnline - t1) / 1000).toFixed(1)} s after the last CONNACK`);

  const closedEarly = sockets.filter((ws) => ws.readyState !== WebSocket.OPEN).length;
  if (closedEarly > 0) console.log(`${closedEarly} connections closed by the broker before the close phase`);
  const t2 = now();
  await pool(sockets, CONCURRENCY, (ws) =>
    new Promise((/** @type {(v?: unknown) => void} */ resolve) => {
      if (ws.readyState !== WebSocket.OPEN) return resolve();
      ws.once("close", resolve);
      ws.send(DISCONNECT);
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 10_000);
    }),
  );
  const t3 = now();
  console.log(`closed: ${CLIENTS} in ${((t3 - t2) / 1000).toFixed(1)} s`);
  const tOffline = await waitCount(httpUrl, prefix, "offline", CLIENTS, 120_000);
  console.log(`all offline in D1 ${((tOffline - t3) / 1000).toFixed(1)} s after the last close`);
  await waitMetricsStill(httpUrl);
  const after = await metrics(httpUrl);

  const d1 = (after.byKind?.presence?.d1Requests ?? 0) - (before.byKind?.presence?.d1Requests ?? 0);
  const presenceRequests = (after.byKind?.presence?.requests ?? 0) - (before.byKind?.presence?.requests ?? 0);
  const events = 2 * CLIENTS;
  const figures = {
    clients: CLIENTS,
    route: ROUTE,
    presenceEvents: events,
    d1Requests: d1,
    d1RequestsPerEvent: +(d1 / events).toFixed(4),
    presenceObjectRequests: presenceRequests,
    connectSeconds: +((t1 - t0) / 1000).toFixed(1),
    connectRetries: retries,
    closedBeforeClosePhase: closedEarly,
    closeSeconds: +((t3 - t2) / 1000).toFixed(1),
    onlineInD1AfterLastConnackSeconds: +((tOnline - t1) / 1000).toFixed(1),
    offlineInD1AfterLastCloseSeconds: +((tOffline - t3) / 1000).toFixed(1),
    wallSeconds: +((tOffline - t0) / 1000).toFixed(1),
    presenceShards: vars.PRESENCE_SHARDS ?? "4 (wrangler.toml)",
    flushMs: vars.PRESENCE_FLUSH_MS ?? "1000 (wrangler.toml)",
  };
  console.log(JSON.stringify(figures, null, 2));
} catch (e) {
  console.error(e);
  console.error(log.slice(-3000));
  process.exitCode = 1;
} finally {
  await broker.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
