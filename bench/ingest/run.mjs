// HTTP ingest throughput beside MQTT publish, on one local broker in one run (issue 11).
//
//   npm run bench:ingest [-- --messages 2000 --concurrency 16 --bulk 100 --qos 1 --rounds 3 --json out.json]
//
// One MQTT.js 5.0 subscriber (QoS 1) counts arrivals on bench/ingest/#. Each phase sends
// --messages messages and is timed from its first send until the subscriber has every one
// of them and every publisher has its answer (PUBACK or HTTP 2xx):
//   mqtt        one MQTT.js client, QoS --qos, up to --concurrency publishes in flight
//   http-raw    POST /api/v1/publish/<topic> (raw body), --concurrency requests in flight
//   http-json   POST /api/v1/publish (one JSON message each), --concurrency in flight
//   http-bulk   POST /api/v1/publish/bulk with --bulk messages each, 4 requests in flight
// The phases run --rounds times, in a rotated order each round (a shared machine's noise
// then falls on every phase alike); each phase reports its median round.
// The broker runs as `npm start` runs it (scripts/broker-process.mjs), with the per-client
// and per-key rate limits off (MAX_PUBLISH_RATE=0, HTTP_PUBLISH_RATE=0).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { argFromArgs, getFreePort, startBroker } from "../../scripts/broker-process.mjs";

const MESSAGES = Number(argFromArgs("--messages") ?? 2000);
const CONCURRENCY = Number(argFromArgs("--concurrency") ?? 16);
const BULK = Number(argFromArgs("--bulk") ?? 100);
const QOS = /** @type {0 | 1 | 2} */ (Number(argFromArgs("--qos") ?? 1));
const JSON_OUT = argFromArgs("--json");
const ROUNDS = Number(argFromArgs("--rounds") ?? 3);
const ADMIN_TOKEN = `bench-${Math.random().toString(36).slice(2)}`;

const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-bench-ingest-"));
const port = await getFreePort();
const broker = await startBroker({
  port,
  persistTo,
  stdio: "ignore",
  // ALLOW_ANONYMOUS: the MQTT subscriber connects without a user name (a fresh clone has no .dev.vars).
  vars: { ADMIN_TOKEN, ALLOW_ANONYMOUS: "true", HTTP_PUBLISH_RATE: "0", MAX_PUBLISH_RATE: "0", MAX_PUBLISH_BYTES_RATE: "0", MAX_BULK_ITEMS: String(Math.max(1000, BULK)) },
});

/** @type {Record<string, { messages: number, seconds: number, perSecond: number, requests: number, rounds: number[] }>} */
const results = {};
/** @type {import("mqtt").MqttClient | undefined} */
let sub;
try {
  const keyRes = await fetch(`${broker.httpUrl}/api/v1/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "bench", scopes: ["bench/ingest/#"] }),
  });
  if (keyRes.status !== 201) throw new Error(`key: ${keyRes.status} ${await keyRes.text()}`);
  const auth = { Authorization: `Bearer ${/** @type {{ key: string }} */ (await keyRes.json()).key}` };

  sub = await mqttClient("bench-ingest-sub");
  let arrived = 0;
  /** @type {() => void} */
  let onArrival = () => {};
  sub.on("message", () => {
    arrived++;
    onArrival();
  });
  await sub.subscribeAsync("bench/ingest/#", { qos: 1 });

  /** Waits until `n` messages arrived since `from` (bounded). @param {number} from @param {number} n */
  const arrivals = (from, n) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${arrived - from} of ${n} arrived`)), 120_000);
      onArrival = () => {
        if (arrived - from >= n) {
          clearTimeout(timer);
          resolve(undefined);
        }
      };
      onArrival();
    });

  /**
   * Runs `send(i)` for i < count with `window` in flight.
   * @param {number} count @param {number} window @param {(i: number) => Promise<unknown>} send
   */
  const pool = async (count, window, send) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(window, count) }, async () => {
        while (next < count) await send(next++);
      }),
    );
  };

  /** @param {string} name @param {number} requests @param {() => Promise<unknown>} run */
  const phase = async (name, requests, run) => {
    const from = arrived;
    const t0 = performance.now();
    const got = arrivals(from, MESSAGES);
    await run();
    await got;
    const seconds = (performance.now() - t0) / 1000;
    const perSecond = Math.round(MESSAGES / seconds);
    const r = (results[name] ??= { messages: MESSAGES, seconds: 0, perSecond: 0, requests, rounds: [] });
    r.rounds.push(perSecond);
    const sorted = [...r.rounds].sort((a, b) => a - b);
    r.perSecond = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
    r.seconds = round(MESSAGES / r.perSecond, 3);
    console.log(`${name.padEnd(10)} ${String(perSecond).padStart(7)} msg/s  (${MESSAGES} messages, ${requests} publishes/requests, ${seconds.toFixed(2)} s)`);
  };

  const payload = "x".repeat(64);
  /** @param {number} i */
  const topic = (i) => `bench/ingest/t${i % 16}`;
  /** @param {Response} res */
  const ok = async (res) => {
    if (res.status !== 200 && res.status !== 202) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  };

  // Warm-up: every object on the path exists before timing (shards, sessions, isolates).
  await pool(64, 8, async (i) => ok(await fetch(`${broker.httpUrl}/api/v1/publish/${topic(i)}?qos=${QOS}`, { method: "POST", headers: auth, body: payload })));
  await new Promise((r) => setTimeout(r, 500));

  const pub = await mqttClient("bench-ingest-pub");
  const batches = Math.ceil(MESSAGES / BULK);
  /** @type {Array<[string, () => Promise<unknown>]>} */
  const phases = [
    ["mqtt", () => phase("mqtt", MESSAGES, () => pool(MESSAGES, CONCURRENCY, (i) => pub.publishAsync(topic(i), payload, { qos: QOS })))],
    [
      "http-raw",
      () =>
        phase("http-raw", MESSAGES, () =>
          pool(MESSAGES, CONCURRENCY, async (i) => ok(await fetch(`${broker.httpUrl}/api/v1/publish/${topic(i)}?qos=${QOS}`, { method: "POST", headers: auth, body: payload }))),
        ),
    ],
    [
      "http-json",
      () =>
        phase("http-json", MESSAGES, () =>
          pool(MESSAGES, CONCURRENCY, async (i) =>
            ok(await fetch(`${broker.httpUrl}/api/v1/publish`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ topic: topic(i), payload, qos: QOS }) })),
          ),
        ),
    ],
    [
      "http-bulk",
      () =>
        phase("http-bulk", batches, () =>
          pool(batches, 4, async (b) => {
            const items = [];
            for (let i = b * BULK; i < Math.min(MESSAGES, (b + 1) * BULK); i++) items.push({ topic: topic(i), payload, qos: QOS });
            await ok(await fetch(`${broker.httpUrl}/api/v1/publish/bulk`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify(items) }));
          }),
        ),
    ],
  ];
  for (let r = 0; r < ROUNDS; r++) {
    console.log(`round ${r + 1} of ${ROUNDS}`);
    for (let k = 0; k < phases.length; k++) await phases[(k + r) % phases.length]?.[1]();
  }
  await pub.endAsync();

  console.log(`\nmedians: ` + Object.entries(results).map(([n, r]) => `${n} ${r.perSecond} msg/s`).join(", "));
  const base = results.mqtt?.perSecond ?? 1;
  console.log(`\nratios to MQTT (QoS ${QOS}, ${CONCURRENCY} in flight): ` + ["http-raw", "http-json", "http-bulk"].map((n) => `${n} ${((results[n]?.perSecond ?? 0) / base).toFixed(2)}`).join(", "));
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ at: new Date().toISOString(), qos: QOS, concurrency: CONCURRENCY, bulk: BULK, results }, null, 2));
} finally {
  await sub?.endAsync().catch(() => undefined);
  await broker.stop();
  rmSync(persistTo, { recursive: true, force: true });
}

/** @param {number} n @param {number} digits */
function round(n, digits) {
  return Math.round(n * 10 ** digits) / 10 ** digits;
}

/** @param {string} clientId @returns {Promise<import("mqtt").MqttClient>} */
async function mqttClient(clientId) {
  const client = mqtt.connect(`ws://127.0.0.1:${port}/mqtt/${clientId}`, { protocolVersion: 5, clientId, reconnectPeriod: 0, clean: true });
  await new Promise((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  return client;
}
