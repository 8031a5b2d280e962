#!/usr/bin/env node
// `npm run bench:overload`: how the broker holds up when clients outpace it or stop reading.
// Each scenario starts its own broker exactly as `npm start` does (startBroker of the chosen
// repository's scripts/broker-process.mjs, a fresh persist directory, a free port on
// 127.0.0.1), runs, stops it; one scenario at a time. Prints a table per scenario and writes
// the figures (with per-second series) as JSON.
//
//   npm run bench:overload                         full run (about 4–5 minutes)
//   npm run bench:overload -- --quick              shorter floods, fewer messages (about 2 minutes)
//   --only flood,stalled,fairness                  some scenarios only
//   --rate R                                       at most R messages/s per publisher, in every
//                                                  scenario (default: no cap; for code that
//                                                  disconnects clients publishing faster)
//   --stalled-messages N                           messages of the stalled scenario (default
//                                                  70,000; --quick 5,000)
//   --var NAME=VALUE                               a wrangler.toml [vars] value for the brokers
//                                                  (repeatable), e.g. --var MAX_PUBLISH_RATE=0
//   --root DIR                                     the repository whose broker to start (default:
//                                                  this one), e.g. a git worktree of older code;
//                                                  the clients are always this repository's
//   --out FILE                                     JSON path (default bench/results/overload.json)
//
// Scenarios (all clients on plain `/mqtt`, the route every standard client takes):
//
// flood     A QoS 0 subscriber that stops reading. One subscriber on `flood/#` (QoS 0, a bare
//           WebSocket client, bench/overload/raw-client.mjs) subscribes, then pauses its socket:
//           it keeps its connection (and sends PINGREQ, so keep alive never ends it) but reads
//           nothing more. Five MQTT.js publishers (MQTT 5, another process) send 200-byte
//           messages to `flood/<i>` flat out for 60 s (--quick 15 s). workerd's RSS is read
//           every second. Measures: RSS before, at its peak, 10 s after the flood ends (the
//           subscriber still connected), and 10 s after the subscriber's connection is reset;
//           messages published; whether and when the broker ended the stalled connection (its
//           TCP state in /proc/net/tcp, and the DISCONNECT reason code when it sent one), and how
//           much the kernel held for it; the /metrics counters, including any field about
//           drops. What is not in the kernel's socket buffers is held by workerd.
//
// stalled   A QoS 1 subscriber that never acknowledges. An MQTT 5 subscriber (bare client,
//           Receive Maximum left at its default, 65,535) subscribes to `stall/#` at QoS 1, reads
//           every packet and never sends PUBACK. One MQTT.js publisher sends N 8 KB QoS 1
//           messages (N = 70,000; --quick 5,000), at most 64 unacknowledged, each payload
//           starting with its sequence number. Measures: publishes acknowledged (and PUBACK
//           reason codes), PUBLISH packets the subscriber received, rows left in its session's
//           `outbound` table by state (read from the SessionDO's SQLite file under the persist
//           directory, read-only, while the broker runs) and the file's size, and which
//           acknowledged messages are in neither (dropped: the oldest or the newest).
//
// fairness  Does one busy client slow the others down? Five MQTT.js publishers send 200-byte
//           QoS 0 messages to `noise/<i>` flat out for 20 s (--quick 10 s), nobody subscribed. A
//           bystander (MQTT.js, MQTT 5, in this process) subscribed to its own `probe/<id>` at
//           QoS 1 does one round trip every 50 ms: it publishes there at QoS 1 and waits for
//           both the PUBACK and its own message (10 s at most). Measures: the bystander's round
//           trip (p50, p99, max) before, during and after the flood; which clients the broker
//           disconnected and with which reason code; how long the broker keeps processing the
//           flood after the publishers stop (until the `published` counter of /metrics, less
//           the bystander's own, stops moving) and until the round trip is fast again.
//
// Every loop is bounded in count and time, and every connection goes to 127.0.0.1. The
// machine is shared: compare runs made one after the other, not across days.
import { execFile, execFileSync, fork } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import mqtt from "mqtt";
import { treeRss } from "../lib/proc.mjs";
import { packageVersion, workerdVersion } from "../lib/versions.mjs";
import {
  dropFields,
  fmt,
  formatRanges,
  metricsDelta,
  mib,
  now,
  percentiles,
  pollMetrics,
  printFigures,
  ranges,
  readMetrics,
  round,
  SEQ_DIGITS,
  sleep,
  tcpPair,
  tcpServerQueues,
} from "./lib.mjs";
import { RawClient } from "./raw-client.mjs";
import { runMain } from "../lib/main.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const OWN_ROOT = resolve(HERE, "..", "..");

// ---------------------------------------------------------------- options

const args = process.argv.slice(2);
/** @param {string} name */
function option(name) {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (a === name) return args[i + 1];
    if (a.startsWith(`${name}=`)) return a.slice(name.length + 1);
  }
  return undefined;
}
const quick = args.includes("--quick");
/** @param {string} name @param {number | undefined} fallback */
function numberOption(name, fallback) {
  const v = option(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(n > 0)) {
    console.error(`${name}: expected a positive number, got ${v}`);
    process.exit(2);
  }
  return n;
}
const rate = numberOption("--rate", undefined);
/**
 * `--var NAME=VALUE` (repeatable): wrangler.toml [vars] overridden for every broker started.
 * ALLOW_ANONYMOUS defaults to "true" (the clients connect without a user name; a fresh clone
 * has no .dev.vars and the committed wrangler.toml has it off).
 */
const vars = Object.fromEntries(
  [["ALLOW_ANONYMOUS", "true"], ...args.flatMap((a, i) => {
    const pair = a === "--var" ? args[i + 1] : undefined;
    return pair?.includes("=") ? [pair.split(/=(.*)/s).slice(0, 2)] : [];
  })],
);
const root = resolve(option("--root") ?? OWN_ROOT);
const out = resolve(option("--out") ?? join(OWN_ROOT, "bench", "results", "overload.json"));
const SCENARIOS = ["flood", "stalled", "fairness"];
const only = (option("--only") ?? "").split(",").filter(Boolean);
for (const o of only) {
  if (SCENARIOS.includes(o)) continue;
  console.error(`--only: unknown scenario ${o} (expected ${SCENARIOS.join(", ")})`);
  process.exit(2);
}

const P = {
  flood: { publishers: 5, payloadBytes: 200, durationMs: quick ? 15_000 : 60_000, settleMs: 10_000, maxPerClient: 50_000_000 },
  stalled: { messages: Math.round(/** @type {number} */ (numberOption("--stalled-messages", quick ? 5_000 : 70_000))), payloadBytes: 8_192, window: 64, maxMs: quick ? 180_000 : 900_000, ackWaitMs: 30_000 },
  fairness: { publishers: 5, payloadBytes: 200, durationMs: quick ? 10_000 : 20_000, maxPerClient: 50_000_000, probeEveryMs: 50, probeTimeoutMs: 60_000, baselineMs: 3_000, drainMaxMs: quick ? 60_000 : 120_000 },
};

/** The broker's process helpers, from the repository under test. */
const bp = await import(pathToFileURL(join(root, "scripts", "broker-process.mjs")).href);

// ---------------------------------------------------------------- the broker

/**
 * @typedef {object} Target
 * @property {any} broker what startBroker returned (url, httpUrl, pid, stop)
 * @property {number} port
 * @property {string} persistTo
 * @property {() => number} rssKib workerd's resident memory now
 */

/**
 * Starts a broker as `npm start` does (fresh state, free port), runs `fn`, stops it.
 * A free port may be taken before workerd binds it; such a start is tried again.
 * @template T @param {(t: Target) => Promise<T>} fn @returns {Promise<T>}
 */
async function withBroker(fn) {
  for (let attempt = 1; ; attempt++) {
    const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-overload-"));
    const port = await bp.getFreePort();
    let log = "";
    /** @type {any} */
    let broker;
    try {
      broker = await bp.startBroker({
        port,
        persistTo,
        vars,
        onOutput: (/** @type {string} */ chunk) => {
          log = (log + chunk).slice(-20_000);
          if (process.env.BROKER_LOG) process.stderr.write(chunk);
        },
      });
    } catch (e) {
      rmSync(persistTo, { recursive: true, force: true });
      const msg = e instanceof Error ? e.message : String(e);
      if (/ADDRESS_IN_USE|address already in use/i.test(msg) && attempt < 3) continue;
      throw new Error(`${msg}\n--- broker output ---\n${log}`);
    }
    try {
      return await fn({ broker, port, persistTo, rssKib: () => treeRss(broker.pid, "workerd").kib });
    } finally {
      await broker.stop();
      rmSync(persistTo, { recursive: true, force: true });
    }
  }
}

/**
 * RSS of workerd once a second (and whatever `extra` adds), from `t0` on.
 * @param {Target} t @param {number} t0 @param {() => Record<string, unknown>} [extra]
 */
function sampleEverySecond(t, t0, extra = () => ({})) {
  /** @type {{ t: number, rssMiB: number, [k: string]: unknown }[]} */
  const series = [];
  const peak = { kib: 0, atMs: 0 };
  const sample = () => {
    const kib = t.rssKib();
    const at = now() - t0;
    if (kib > peak.kib) Object.assign(peak, { kib, atMs: at });
    series.push({ t: round(at / 1000, 1), rssMiB: mib(kib), ...extra() });
    return kib;
  };
  sample();
  const timer = setInterval(sample, 1_000);
  return { series, peak, sample, stop: () => clearInterval(timer) };
}

// ---------------------------------------------------------------- the publishers' process

/** @returns {Promise<{ call: (op: string, a?: any) => Promise<any>, exit: () => Promise<void> }>} */
function forkPublishers() {
  const child = fork(join(HERE, "publishers.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  let seq = 0;
  /** @type {Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>} */
  const waiting = new Map();
  const exited = new Promise((r) => child.once("exit", r));
  return new Promise((resolveReady, rejectReady) => {
    child.on("message", (/** @type {any} */ m) => {
      if (m.ready) {
        resolveReady({
          call: (op, a = {}) =>
            new Promise((res, rej) => {
              const id = ++seq;
              waiting.set(id, { resolve: res, reject: rej });
              child.send({ id, op, args: a });
            }),
          exit: async () => {
            if (child.connected) child.send({ id: ++seq, op: "exit", args: {} });
            await Promise.race([exited, sleep(3_000)]);
            if (child.exitCode === null) child.kill("SIGKILL");
          },
        });
        return;
      }
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.ok) w?.resolve(m.result);
      else w?.reject(new Error(`publishers: ${m.error}`));
    });
    child.once("exit", (code) => {
      rejectReady(new Error(`publishers process exited (${code})`));
      for (const w of waiting.values()) w.reject(new Error(`publishers process exited (${code})`));
      waiting.clear();
    });
  });
}

/**
 * Publisher clients the broker disconnected: how many, and DISCONNECT reason codes by code.
 * @param {any[]} events @param {number} t0
 */
function disconnectSummary(events, t0) {
  /** @type {Record<string, number>} */
  const reasons = {};
  let closed = 0;
  for (const e of events) {
    for (const d of e.disconnects) reasons[hex(d.reasonCode)] = (reasons[hex(d.reasonCode)] ?? 0) + 1;
    if (e.closedAt) closed++;
  }
  const first = events.map((e) => e.closedAt).filter(Boolean).sort((a, b) => a - b)[0];
  return { closed, disconnectReasons: reasons, firstClosedAtS: first ? round((first - t0) / 1000, 1) : null, errors: events.map((e) => e.error).filter(Boolean).slice(0, 5) };
}

/**
 * The /metrics fields about drops, totals only (the JSON has them by kind of object too).
 * @param {Record<string, number> | undefined} fields
 */
function dropRow(fields) {
  const totals = Object.entries(fields ?? {}).filter(([k]) => k.startsWith("total."));
  return /** @type {[string, string]} */ (["/metrics drop fields", totals.length ? totals.map(([k, v]) => `${k.slice(6)}=${fmt(v)}`).join(", ") : "none"]);
}

/** Publisher clients the broker disconnected, for a figure. @param {any} p @param {number} of */
function disconnectedRow(p, of) {
  const reasons = Object.keys(p.disconnectReasons).length ? ` (DISCONNECT ${JSON.stringify(p.disconnectReasons)})` : "";
  const first = p.firstClosedAtS !== null ? `, first at ${p.firstClosedAtS} s` : "";
  return /** @type {[string, string]} */ ([of > 1 ? "publishers disconnected" : "publisher disconnected", `${p.closed} of ${of}${reasons}${first}`]);
}

/** @param {number} code */
const hex = (code) => `0x${code.toString(16).padStart(2, "0")}`;

// ---------------------------------------------------------------- scenario: flood

/** @param {Target} t */
async function flood(t) {
  const s = P.flood;
  const t0 = now();
  const rssBrokerStarted = t.rssKib();
  const sub = new RawClient({ url: t.broker.url, clientId: "flood-stalled-sub", version: 5, keepAlive: 60 });
  await sub.connect();
  await sub.subscribe("flood/#", 0);
  sub.pause();
  const clientPort = sub.localPort;
  const pubs = await forkPublishers();
  try {
    const c = await pubs.call("connect", { url: t.broker.url, count: s.publishers, idPrefix: "flood-pub-", version: 5 });
    if (c.connected < s.publishers) throw new Error(`publishers: ${c.connected}/${s.publishers} connected: ${c.errors.join("; ")}`);
    await sleep(1_500); // objects report to /metrics at most once a second
    const m0 = await readMetrics(t.broker.httpUrl);

    /** @type {{ atMs: number, how: string } | undefined} */
    let subGone;
    let closedByUs = false;
    let maxKernel = { serverTxQueue: 0, clientRxQueue: 0 };
    let maxInbound = 0;
    const floodStart = now();
    const watch = () => {
      const pair = tcpPair(t.port, clientPort);
      const serverState = pair.server?.state ?? "gone";
      const clientState = pair.client?.state ?? "gone";
      if (!subGone && !closedByUs && (serverState !== "ESTABLISHED" || clientState !== "ESTABLISHED" || sub.closed)) {
        subGone = { atMs: now() - floodStart, how: `broker side ${serverState}, client side ${clientState}` };
      }
      const serverTxQueue = pair.server?.txQueue ?? 0;
      const clientRxQueue = pair.client?.rxQueue ?? 0;
      if (serverTxQueue + clientRxQueue > maxKernel.serverTxQueue + maxKernel.clientRxQueue) maxKernel = { serverTxQueue, clientRxQueue };
      const inbound = tcpServerQueues(t.port).rxQueue;
      maxInbound = Math.max(maxInbound, inbound);
      return { serverState, serverTxQueue, clientRxQueue, brokerRxQueue: inbound };
    };
    const samples = sampleEverySecond(t, floodStart, watch);
    const rssStart = samples.series[0]?.rssMiB ?? null;
    const counted = pollMetrics(t.broker.httpUrl, floodStart);

    process.stderr.write(`  flooding for ${s.durationMs / 1000} s ...\n`);
    const progress = setInterval(async () => {
      const p = await pubs.call("progress").catch(() => null);
      const last = samples.series[samples.series.length - 1];
      process.stderr.write(`  ${fmt(last?.t)} s: RSS ${fmt(last?.rssMiB)} MiB, published ${fmt(p?.published)}, kernel ${fmt(last?.serverTxQueue)} + ${fmt(last?.clientRxQueue)} B, subscriber ${subGone ? "gone" : "connected"}\n`);
    }, 10_000);
    const r = await pubs.call("run", { topic: "flood/{i}", qos: 0, payloadBytes: s.payloadBytes, durationMs: s.durationMs, maxPerClient: s.maxPerClient, rate });
    clearInterval(progress);
    const floodEnd = now();
    const rssEndOfFlood = mib(samples.sample());

    await sleep(s.settleMs);
    const rssAfterFlood = mib(samples.sample());
    // Asked now, awaited later: /metrics may take seconds to answer while the broker is behind.
    const m1Asked = readMetrics(t.broker.httpUrl, 20_000);
    const events = await pubs.call("events");

    // The subscriber's connection: if the broker ended it, read what it sent last (a bounded
    // amount: it closed the connection, so nothing more is coming) for the DISCONNECT.
    const bytesBeforeResume = sub.bytesIn;
    if (subGone) {
      sub.resume();
      const until = now() + 5_000;
      while (!sub.closed && now() < until) await sleep(100);
    }
    const subClosed = sub.closed;
    const bytesAfterResume = sub.bytesIn - bytesBeforeResume;
    closedByUs = true;
    sub.close();
    const closedAt = now();
    await sleep(s.settleMs);
    const rssAfterClose = mib(samples.sample());
    samples.stop();
    await counted.stop();
    const m1 = await m1Asked;
    const m2 = await readMetrics(t.broker.httpUrl, 20_000);
    await pubs.call("close");

    const publishedS = (r.endAt - r.startAt) / 1000;
    return {
      publishers: s.publishers,
      payloadBytes: s.payloadBytes,
      durationMs: s.durationMs,
      rssAtBrokerStartMiB: mib(rssBrokerStarted),
      rssStartMiB: rssStart,
      rssPeakMiB: mib(samples.peak.kib),
      rssPeakAtS: round(samples.peak.atMs / 1000, 1),
      rssEndOfFloodMiB: rssEndOfFlood,
      rssAfterFlood10sMiB: rssAfterFlood,
      rssAfterSubscriberClosed10sMiB: rssAfterClose,
      published: r.published,
      publishedPerSec: Math.round(r.published / publishedS),
      publishedBySecond: r.perSecond,
      // When the publishers were last able to write (the broker stopped reading them after that).
      lastWriteAtS: r.perSecond.findIndex((/** @type {number} */ n) => n === r.published) + 1,
      kernelInboundMaxBytes: maxInbound,
      publisherClients: disconnectSummary(events, floodStart),
      stalledSubscriber: {
        disconnected: subGone !== undefined,
        disconnectedAtS: subGone ? round(subGone.atMs / 1000, 1) : null,
        how: subGone?.how ?? null,
        afterResume: subClosed ? { how: subClosed.how, disconnectReason: subClosed.disconnectReason !== undefined ? hex(subClosed.disconnectReason) : null } : null,
        bytesReadBeforePause: bytesBeforeResume,
        bytesReadAfterResume: bytesAfterResume,
        kernelQueuedMax: maxKernel,
      },
      metricsFlood: metricsDelta(m0, m1),
      metricsToEnd: metricsDelta(m0, m2),
      metricsDropFields: dropFields(m2),
      metricsFinal: m2,
      subscriberClosedAtS: round((closedAt - floodStart) / 1000, 1),
      floodEndedAtS: round((floodEnd - floodStart) / 1000, 1),
      series: samples.series,
      countedSeries: counted.series,
    };
  } finally {
    sub.close();
    await pubs.exit();
  }
}

/** @param {any} r */
function floodFigures(r) {
  const sub = r.stalledSubscriber;
  const m = r.metricsFlood;
  return /** @type {[string, string][]} */ ([
    ["workerd RSS after start / before flood", `${fmt(r.rssAtBrokerStartMiB)} / ${fmt(r.rssStartMiB)} MiB`],
    ["peak RSS", `${fmt(r.rssPeakMiB)} MiB at ${fmt(r.rssPeakAtS)} s`],
    ["RSS at end of flood", `${fmt(r.rssEndOfFloodMiB)} MiB`],
    ["RSS 10 s after the flood", `${fmt(r.rssAfterFlood10sMiB)} MiB (subscriber ${sub.disconnected ? "gone" : "still connected"})`],
    ["RSS 10 s after the subscriber was reset", `${fmt(r.rssAfterSubscriberClosed10sMiB)} MiB`],
    ["messages published", `${fmt(r.published)} (${fmt(r.publishedPerSec)}/s, ${r.publishers} publishers, ${r.payloadBytes} B), last write at ~${fmt(r.lastWriteAtS)} s`],
    ["kernel backlog toward the broker, max", `${fmt(r.kernelInboundMaxBytes)} B (received, not yet read by workerd)`],
    ["broker counted published by +10 s / end", `${fmt(m?.published)} / ${fmt(r.metricsToEnd?.published)} (delivered ${fmt(m?.delivered)} / ${fmt(r.metricsToEnd?.delivered)}; end = ${fmt(r.subscriberClosedAtS + 10)} s)`],
    ["stalled subscriber disconnected", sub.disconnected ? `yes, at ${fmt(sub.disconnectedAtS)} s (${sub.how}${sub.afterResume?.disconnectReason ? `, DISCONNECT ${sub.afterResume.disconnectReason}` : ""})` : "no"],
    ["kernel buffers for it, max", `${fmt(sub.kernelQueuedMax.serverTxQueue)} B broker side + ${fmt(sub.kernelQueuedMax.clientRxQueue)} B client side`],
    disconnectedRow(r.publisherClients, r.publishers),
    dropRow(r.metricsDropFields),
  ]);
}

// ---------------------------------------------------------------- scenario: stalled

/** @param {Target} t */
async function stalled(t) {
  const s = P.stalled;
  const t0 = now();
  const received = new Uint8Array(s.messages);
  let publishes = 0;
  let dups = 0;
  let qos1 = 0;
  let outOfRange = 0;
  const sub = new RawClient({
    url: t.broker.url,
    clientId: "stall-sub",
    version: 5,
    keepAlive: 60,
    onPacket: (p) => {
      if (p.cmd !== "publish") return;
      publishes++;
      if (p.dup) dups++;
      if (p.qos === 1) qos1++;
      const seq = Number(/** @type {Buffer} */ (p.payload).toString("latin1", 0, SEQ_DIGITS));
      if (Number.isInteger(seq) && seq >= 0 && seq < s.messages) received[seq] = Math.min(255, (received[seq] ?? 0) + 1);
      else outOfRange++;
    },
  });
  await sub.connect();
  await sub.subscribe("stall/#", 1);
  const pubs = await forkPublishers();
  try {
    const c = await pubs.call("connect", { url: t.broker.url, count: 1, idPrefix: "stall-pub-", version: 5 });
    if (c.connected < 1) throw new Error(`publisher did not connect: ${c.errors.join("; ")}`);
    const samples = sampleEverySecond(t, t0);
    process.stderr.write(`  ${fmt(s.messages)} QoS 1 messages of ${fmt(s.payloadBytes)} B ...\n`);
    const progress = setInterval(async () => {
      const p = await pubs.call("progress").catch(() => null);
      const last = samples.series[samples.series.length - 1];
      process.stderr.write(`  ${fmt(last?.t)} s: acknowledged ${fmt(p?.acked)} of ${fmt(p?.published)}, subscriber received ${fmt(publishes)}, RSS ${fmt(last?.rssMiB)} MiB, session files ${fmt(mib(sessionFiles(t.persistTo).bytes / 1024))} MiB\n`);
    }, 10_000);
    const r = await pubs.call("run", { topic: "stall/data", qos: 1, payloadBytes: s.payloadBytes, durationMs: s.maxMs, maxPerClient: s.messages, window: s.window, rate, stamp: true, ackWaitMs: s.ackWaitMs });
    clearInterval(progress);
    // Let deliveries still on their way arrive: until nothing new for 3 s (30 s at most).
    const until = now() + 30_000;
    let last = -1;
    let lastChange = now();
    while (now() < until && now() - lastChange < 3_000) {
      if (publishes !== last) [last, lastChange] = [publishes, now()];
      await sleep(250);
    }
    samples.stop();
    const events = await pubs.call("events");
    const storage = await subscriberStorage(t.persistTo, "stall/#");

    // Which acknowledged messages are neither received nor stored.
    const kept = new Uint8Array(s.messages); // 1 received, 2 stored, 3 both
    for (let i = 0; i < s.messages; i++) if (received[i]) kept[i] = 1;
    for (const seq of storage.seqs ?? []) if (seq >= 0 && seq < s.messages) kept[seq] = (kept[seq] ?? 0) | 2;
    const acked = new Uint8Array(s.messages);
    for (let i = 0; i < r.published; i++) acked[i] = 1;
    for (const [a, b] of r.notAcked ?? []) for (let i = a; i <= b; i++) acked[i] = 0;
    const droppedFlags = Uint8Array.from(acked, (v, i) => (v && !kept[i] ? 1 : 0));
    const dropped = ranges(droppedFlags, (v) => v === 1);
    const droppedCount = droppedFlags.reduce((a, v) => a + v, 0);
    const storedUndelivered = storage.seqs ? storage.seqs.filter((q) => !received[q]) : [];
    const maxKept = kept.findLastIndex((v) => v > 0);
    const minStoredUndelivered = storedUndelivered.length ? Math.min(...storedUndelivered) : Infinity;
    const which =
      droppedCount === 0 ? "none" : storage.seqs === undefined ? "unknown (outbound rows unreadable)"
        : dropped.every(([a]) => a > maxKept) ? "newest"
          : dropped.every(([, b]) => b < minStoredUndelivered) ? "oldest" : "mixed";
    const rssEnd = mib(t.rssKib());
    const metrics = await readMetrics(t.broker.httpUrl);
    return {
      messages: s.messages,
      payloadBytes: s.payloadBytes,
      window: s.window,
      published: r.published,
      acked: r.acked,
      refused: r.failed,
      unacked: r.unacked,
      pubackReasons: Object.fromEntries(Object.entries(r.pubackReasons).map(([k, v]) => [hex(Number(k)), v])),
      publishSeconds: round((r.endAt - r.startAt) / 1000, 1),
      subscriber: {
        publishesReceived: publishes,
        distinctReceived: received.reduce((a, v) => a + (v ? 1 : 0), 0),
        dup: dups,
        qos1,
        outOfRange,
        receivedRanges: ranges(received, (v) => v > 0),
        disconnected: sub.closed ? { atS: round((sub.closed.at - t0) / 1000, 1), how: sub.closed.how, disconnectReason: sub.closed.disconnectReason !== undefined ? hex(sub.closed.disconnectReason) : null } : null,
      },
      storage: { ...storage, seqs: undefined, storedRanges: storage.seqs ? ranges(kept, (v) => (v & 2) !== 0) : null },
      dropped: { count: droppedCount, which, ranges: dropped.slice(0, 20) },
      publisher: disconnectSummary(events, t0),
      rssPeakMiB: mib(samples.peak.kib),
      rssEndMiB: rssEnd,
      metricsDropFields: dropFields(metrics),
      metricsFinal: metrics,
      series: samples.series,
    };
  } finally {
    sub.close();
    await pubs.call("close").catch(() => {});
    await pubs.exit();
  }
}

/**
 * The SessionDO SQLite files under a persist directory (wrangler's layout:
 * <persist>/v3/do/<worker>-SessionDO/<id>.sqlite, with -wal and -shm beside them).
 * @param {string} persistTo
 */
function sessionFiles(persistTo) {
  const doDir = join(persistTo, "v3", "do");
  const dirs = existsSync(doDir) ? readdirSync(doDir).filter((d) => d.endsWith("-SessionDO")).map((d) => join(doDir, d)) : [];
  /** @type {{ path: string, bytes: number }[]} */
  const dbs = [];
  let bytes = 0;
  for (const dir of dirs) {
    for (const name of readdirSync(dir)) {
      const size = statSync(join(dir, name), { throwIfNoEntry: false })?.size ?? 0;
      bytes += size;
      if (name.endsWith(".sqlite")) dbs.push({ path: join(dir, name), bytes: size });
    }
  }
  return { dbs, bytes };
}

const execFileP = promisify(execFile);

/**
 * One read-only query on a Durable Object's SQLite file, with the broker's Node (node:sqlite).
 * @param {string} file @param {string} sql @returns {Promise<any[]>}
 */
async function query(file, sql) {
  const { stdout } = await execFileP(bp.nodeBinary(), ["--no-warnings", join(HERE, "sqlite-query.mjs"), file, sql], { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
  return JSON.parse(stdout);
}

/**
 * The session of the client subscribed to `filter`: its file, the size of its storage, its
 * `outbound` rows by state, and the sequence numbers of the messages in them (the first 16
 * base64 characters of each stored payload are the 12 digits the payload starts with).
 * @param {string} persistTo @param {string} filter
 */
async function subscriberStorage(persistTo, filter) {
  const { dbs } = sessionFiles(persistTo);
  /** @type {string | undefined} */
  let file;
  /** @type {string[]} */
  const errors = [];
  for (const db of dbs) {
    try {
      const rows = await query(db.path, "SELECT filter FROM subscriptions");
      if (rows.some((r) => r.filter === filter)) file = db.path;
    } catch (e) {
      errors.push(e instanceof Error ? e.message.split("\n")[0] ?? "" : String(e));
    }
  }
  if (!file) return { file: null, sessionFiles: dbs.length, error: `no session subscribed to ${filter} (${errors[0] ?? "no error"})`, seqs: undefined };
  const size = (/** @type {string} */ p) => statSync(p, { throwIfNoEntry: false })?.size ?? 0;
  const fileBytes = { sqlite: size(file), wal: size(`${file}-wal`), shm: size(`${file}-shm`) };
  /** @type {Record<string, number> | null} */
  let byState = null;
  /** @type {number[] | undefined} */
  let seqs;
  /** @type {string | null} */
  let error = null;
  try {
    byState = Object.fromEntries((await query(file, "SELECT state, count(*) AS n FROM outbound GROUP BY state")).map((r) => [r.state, r.n]));
    const heads = await query(file, `SELECT substr(delivery, instr(delivery, '"$b64":"') + 8, 16) AS head FROM outbound`);
    seqs = heads.map((r) => Number(Buffer.from(r.head, "base64").toString("latin1"))).filter((n) => Number.isInteger(n));
  } catch (e) {
    error = e instanceof Error ? e.message.split("\n")[0] ?? "" : String(e);
  }
  const rows = byState ? Object.values(byState).reduce((a, n) => a + n, 0) : null;
  return { file: relative(persistTo, file), fileBytes, outboundRows: rows, outboundByState: byState, error, seqs };
}

/** @param {any} r */
function stalledFigures(r) {
  const st = r.storage;
  const bytes = st.fileBytes ? st.fileBytes.sqlite + st.fileBytes.wal : null;
  return /** @type {[string, string][]} */ ([
    ["QoS 1 publishes sent / acknowledged", `${fmt(r.published)} / ${fmt(r.acked)} in ${fmt(r.publishSeconds)} s (${fmt(r.messages)} × ${fmt(r.payloadBytes)} B, window ${r.window})`],
    ["PUBACK reason codes", JSON.stringify(r.pubackReasons)],
    ["PUBLISH received by the subscriber", `${fmt(r.subscriber.publishesReceived)} (${fmt(r.subscriber.distinctReceived)} distinct: ${formatRanges(r.subscriber.receivedRanges)})`],
    ["outbound rows of its session", st.outboundRows === null ? `- (${st.error})` : `${fmt(st.outboundRows)} ${JSON.stringify(st.outboundByState)}`],
    ["its SQLite file (+ WAL)", bytes === null ? "-" : `${fmt(mib(bytes / 1024))} MiB`],
    ["acknowledged but dropped", `${fmt(r.dropped.count)}: ${r.dropped.which} (${formatRanges(r.dropped.ranges)})`],
    ["subscriber disconnected", r.subscriber.disconnected ? `at ${r.subscriber.disconnected.atS} s (${r.subscriber.disconnected.how}${r.subscriber.disconnected.disconnectReason ? `, DISCONNECT ${r.subscriber.disconnected.disconnectReason}` : ""})` : "no"],
    disconnectedRow(r.publisher, 1),
    ["workerd RSS peak / end", `${fmt(r.rssPeakMiB)} / ${fmt(r.rssEndMiB)} MiB`],
    dropRow(r.metricsDropFields),
  ]);
}

// ---------------------------------------------------------------- scenario: fairness

/** @param {Target} t */
async function fairness(t) {
  const s = P.fairness;
  const t0 = now();
  const id = `probe-${process.pid}`;
  const topic = `probe/${id}`;
  const probe = mqtt.connect(t.broker.url, { clientId: id, protocolVersion: 5, keepalive: 60, clean: true, reconnectPeriod: 0, connectTimeout: 30_000, wsOptions: { perMessageDeflate: false } });
  /** @type {{ at: number, reasonCode: number }[]} */
  const probeDisconnects = [];
  /** @type {number | undefined} */
  let probeClosedAt;
  /** @type {Map<number, () => void>} */
  const echoes = new Map();
  probe.on("disconnect", (p) => probeDisconnects.push({ at: now(), reasonCode: p.reasonCode ?? 0 }));
  probe.on("close", () => (probeClosedAt ??= now()));
  probe.on("error", () => {});
  probe.on("message", (_topic, payload) => echoes.get(Number(payload.toString("latin1", 0, SEQ_DIGITS)))?.());
  await new Promise((res, rej) => {
    probe.once("connect", res);
    probe.once("close", () => rej(new Error("bystander: closed before CONNACK")));
  });
  await probe.subscribeAsync(topic, { qos: 1 });

  /** @type {{ at: number, ms: number | null }[]} round trips (null: timed out) */
  const trips = [];
  let probesSent = 0;
  let probing = true;
  const probeLoop = (async () => {
    while (probing && probe.connected && trips.length < 100_000) {
      const start = now();
      const seq = probesSent++;
      const body = Buffer.alloc(64, 0x78);
      body.write(String(seq).padStart(SEQ_DIGITS, "0"), 0, "latin1");
      const echoed = new Promise((/** @type {(v?: unknown) => void} */ r) => echoes.set(seq, r));
      const acked = new Promise((r) => probe.publish(topic, body, { qos: 1 }, r));
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      const ok = await Promise.race([Promise.all([echoed, acked]).then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), s.probeTimeoutMs)))]);
      clearTimeout(timer);
      echoes.delete(seq);
      trips.push({ at: start, ms: ok ? now() - start : null });
      await sleep(Math.max(0, start + s.probeEveryMs - now()));
    }
  })();

  const pubs = await forkPublishers();
  try {
    const c = await pubs.call("connect", { url: t.broker.url, count: s.publishers, idPrefix: "noise-pub-", version: 5 });
    if (c.connected < s.publishers) throw new Error(`publishers: ${c.connected}/${s.publishers} connected: ${c.errors.join("; ")}`);
    await sleep(s.baselineMs);
    const m0 = await readMetrics(t.broker.httpUrl);
    const probesAtM0 = probesSent;
    const floodStart = now();
    const samples = sampleEverySecond(t, floodStart, () => ({ brokerRxQueue: tcpServerQueues(t.port).rxQueue }));
    process.stderr.write(`  flooding for ${s.durationMs / 1000} s while the bystander probes every ${s.probeEveryMs} ms ...\n`);
    const r = await pubs.call("run", { topic: "noise/{i}", qos: 0, payloadBytes: s.payloadBytes, durationMs: s.durationMs, maxPerClient: s.maxPerClient, rate });
    const floodEnd = now();

    // After the flood: until the broker's `published` counter, less the bystander's own
    // publishes, has not moved for 3 s and the round trip is fast again (or drainMaxMs).
    const before = percentiles(trips.filter((x) => x.at >= floodStart - s.baselineMs && x.at < floodStart && x.ms !== null).map((x) => /** @type {number} */ (x.ms)));
    const fastMs = Math.max(15, 3 * (before.p50 ?? 5));
    /** @type {{ t: number, noise: number }[]} */
    const noiseSeries = [];
    let noiseSettledAt = 0;
    let lastNoise = -1;
    const until = floodEnd + s.drainMaxMs;
    while (now() < until) {
      const m = await readMetrics(t.broker.httpUrl);
      const d = metricsDelta(m0, m);
      // Counted published messages that are not the bystander's (± the ones in flight).
      const noise = d ? (d.published ?? 0) - (probesSent - probesAtM0) : 0;
      noiseSeries.push({ t: round((now() - floodEnd) / 1000, 1), noise });
      // Up to a second's worth of the bystander's publishes (20) either way is report lag.
      if (noise > lastNoise + 50) [lastNoise, noiseSettledAt] = [noise, now()];
      const recent = trips.slice(-5);
      const fast = recent.length === 5 && recent.every((x) => x.ms !== null && x.ms < fastMs && x.at > floodEnd);
      if ((now() - noiseSettledAt >= 3_000 && fast) || !probe.connected) break;
      await sleep(500);
    }
    const stillProcessing = now() - noiseSettledAt < 3_000;
    probing = false;
    await probeLoop;
    samples.stop();
    const m1 = await readMetrics(t.broker.httpUrl);
    const events = await pubs.call("events");
    await pubs.call("close");

    const inFlood = trips.filter((x) => x.at >= floodStart && x.at < floodEnd);
    const after = trips.filter((x) => x.at >= floodEnd);
    const ms = (/** @type {typeof trips} */ xs) => xs.filter((x) => x.ms !== null).map((x) => /** @type {number} */ (x.ms));
    // The first of five fast round trips in a row after the flood.
    let recoveredAt = null;
    for (let i = 0; i + 5 <= after.length; i++) {
      if (after.slice(i, i + 5).every((x) => x.ms !== null && x.ms < fastMs)) {
        recoveredAt = /** @type {{ at: number }} */ (after[i]).at;
        break;
      }
    }
    // The longest the bystander went without a completed round trip, from the flood's start on.
    const completions = trips.filter((x) => x.ms !== null).map((x) => x.at + /** @type {number} */ (x.ms)).filter((at) => at >= floodStart);
    let longestGap = 0;
    for (let i = 0, prev = floodStart; i < completions.length; prev = /** @type {number} */ (completions[i]), i++) longestGap = Math.max(longestGap, /** @type {number} */ (completions[i]) - prev);
    const d1 = metricsDelta(m0, m1);
    return {
      publishers: s.publishers,
      payloadBytes: s.payloadBytes,
      durationMs: s.durationMs,
      published: r.published,
      publishedPerSec: Math.round(r.published / ((r.endAt - r.startAt) / 1000)),
      brokerCountedNoise: d1 ? (d1.published ?? 0) - (probesSent - probesAtM0) : null,
      rttBefore: before,
      rttDuringFlood: { ...percentiles(ms(inFlood)), timedOut: inFlood.filter((x) => x.ms === null).length, started: inFlood.length },
      rttAfterFlood: { ...percentiles(ms(after)), timedOut: after.filter((x) => x.ms === null).length },
      fastMs,
      longestWithoutRoundTripMs: Math.round(longestGap),
      rttFastAgainAfterMs: recoveredAt === null ? null : Math.max(0, Math.round(recoveredAt - floodEnd)),
      processingContinuedMs: noiseSettledAt ? Math.max(0, Math.round(noiseSettledAt - floodEnd)) : null,
      stillProcessingAtEndOfWait: stillProcessing,
      waitedMs: s.drainMaxMs,
      publisherClients: disconnectSummary(events, floodStart),
      bystander: {
        disconnects: probeDisconnects.map((d) => ({ atS: round((d.at - floodStart) / 1000, 1), reasonCode: hex(d.reasonCode) })),
        closedAtS: probeClosedAt ? round((probeClosedAt - floodStart) / 1000, 1) : null,
      },
      rssPeakMiB: mib(samples.peak.kib),
      metricsDropFields: dropFields(m1),
      metricsFinal: m1,
      trips: trips.map((x) => ({ t: round((x.at - floodStart) / 1000, 2), ms: x.ms === null ? null : round(x.ms, 1) })),
      noiseSeries,
      series: samples.series,
      setupS: round((floodStart - t0) / 1000, 1),
    };
  } finally {
    probing = false;
    probe.end(true);
    await pubs.exit();
  }
}

/** @param {any} r */
function fairnessFigures(r) {
  const p = (/** @type {any} */ x) => `p50 ${fmt(x.p50)}, p99 ${fmt(x.p99)}, max ${fmt(x.max)} ms (${fmt(x.n)})`;
  const by = r.bystander;
  return /** @type {[string, string][]} */ ([
    ["flood published", `${fmt(r.published)} (${fmt(r.publishedPerSec)}/s, ${r.publishers} publishers, ${r.payloadBytes} B), broker counted ${fmt(r.brokerCountedNoise)}`],
    ["bystander round trip before", p(r.rttBefore)],
    ["bystander round trip during flood", `${p(r.rttDuringFlood)}, ${fmt(r.rttDuringFlood.timedOut)} timed out`],
    ["bystander round trip after flood", `${p(r.rttAfterFlood)}, ${fmt(r.rttAfterFlood.timedOut)} timed out`],
    ["longest without a round trip", `${fmt(round(r.longestWithoutRoundTripMs / 1000, 1))} s (from the flood's start)`],
    ["processing went on after the flood", r.stillProcessingAtEndOfWait ? `still going after the ${fmt(r.waitedMs / 1000)} s wait` : r.processingContinuedMs === null ? "-" : `${fmt(round(r.processingContinuedMs / 1000, 1))} s (/metrics, reported up to 1 s late)`],
    ["round trip fast again after", r.rttFastAgainAfterMs === null ? "not within the wait" : `${fmt(round(r.rttFastAgainAfterMs / 1000, 1))} s (5 in a row under ${fmt(r.fastMs)} ms)`],
    disconnectedRow(r.publisherClients, r.publishers),
    ["bystander disconnected", by.closedAtS === null ? "no" : `at ${by.closedAtS} s${by.disconnects.length ? ` (DISCONNECT ${by.disconnects.map((/** @type {any} */ d) => d.reasonCode).join(", ")})` : ""}`],
    ["workerd RSS peak", `${fmt(r.rssPeakMiB)} MiB`],
    dropRow(r.metricsDropFields),
  ]);
}

// ---------------------------------------------------------------- main

function describe() {
  const git = (/** @type {string[]} */ a) => {
    try {
      return execFileSync("git", ["-C", root, ...a], { encoding: "utf8" }).trim();
    } catch {
      return null;
    }
  };
  const require = createRequire(import.meta.url);
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  return {
    root,
    commit: git(["rev-parse", "--short", "HEAD"]),
    modifiedFiles: status === null ? null : status.split("\n").filter(Boolean).length,
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    node: process.versions.node,
    workerd: workerdVersion(root),
    mqttjs: packageVersion(require.resolve("mqtt/package.json")),
  };
}

const pace = () => (rate ? `at ${rate} msg/s each` : "flat out");
const FIGURES = { flood: floodFigures, stalled: stalledFigures, fairness: fairnessFigures };
const TITLES = {
  flood: () => `flood: QoS 0 to a subscriber that stopped reading (${P.flood.publishers} publishers ${pace()}, ${P.flood.durationMs / 1000} s)`,
  stalled: () => `stalled: QoS 1 subscriber that never acknowledges (Receive Maximum 65,535, ${fmt(P.stalled.messages)} × 8 KB)`,
  fairness: () => `fairness: bystander round trips while ${P.fairness.publishers} publishers send QoS 0 ${pace()} (${P.fairness.durationMs / 1000} s)`,
};
const RUN = { flood, stalled, fairness };

async function main() {
  Object.assign(process.env, bp.NO_NETWORK_ENV, { WRANGLER_LOG: process.env.WRANGLER_LOG ?? "warn" });
  const t0 = now();
  const info = describe();
  console.log(`overload bench (${quick ? "quick" : "full"}): ${info.root} @ ${info.commit ?? "?"}${info.modifiedFiles ? ` (+${info.modifiedFiles} modified files)` : ""}, ${info.cores}x ${info.cpuModel}, Node ${info.node}, workerd ${info.workerd}, MQTT.js ${info.mqttjs}${rate ? `, at most ${rate} msg/s per publisher` : ""}`);
  /** @type {Record<string, any>} */
  const scenarios = {};
  for (const name of /** @type {(keyof typeof RUN)[]} */ (SCENARIOS)) {
    if (only.length && !only.includes(name)) continue;
    // The machine is shared: what else was running shows in the load average.
    const load = loadavg().map((x) => round(x, 2));
    process.stderr.write(`${name}: starting a broker (load average ${load.join(" ")}) ...\n`);
    const t1 = now();
    try {
      scenarios[name] = { loadAverageAtStart: load, ...(await withBroker(/** @type {(t: Target) => Promise<any>} */ (RUN[name]))) };
      printFigures(TITLES[name](), [...FIGURES[name](scenarios[name]), ["load average at start (1, 5, 15 min)", load.join(", ")]]);
    } catch (e) {
      scenarios[name] = { error: e instanceof Error ? e.message : String(e) };
      console.log(`\n${name}: ERROR ${scenarios[name].error}`);
    }
    process.stderr.write(`${name}: ${round((now() - t1) / 1000)} s\n`);
    await sleep(2_000); // the machine settles before the next broker starts
  }
  for (const [name, r] of Object.entries(scenarios)) if (r.metricsFinal) console.log(`\n${name}: /metrics at the end\n${JSON.stringify(r.metricsFinal)}`);
  const json = { date: new Date().toISOString(), mode: quick ? "quick" : "full", ...info, parameters: { ...P, ratePerPublisher: rate ?? null }, scenarios, elapsedS: round((now() - t0) / 1000) };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwrote ${relative(process.cwd(), out) || out} (${json.elapsedS} s)`);
}

runMain(main);
