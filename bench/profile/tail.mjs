#!/usr/bin/env node
// What makes the latency tail: the bench's latency load (10 lean publishers at a fixed total
// rate, one subscriber, the same client process, fast path) against a local broker whose
// workerd prints V8's GC trace, and each delivery set against the GC pauses it lived through.
//
//   node bench/profile/tail.mjs [--qos 0|1] [--rate 1000] [--windows 2] [--window-s 15]
//                               [--threshold-ms 10] [--out FILE]
//                               [--config wrangler.toml] [--var K=V ...] [--phases]
//
// workerd gets MINIFLARE_WORKERD_V8_FLAGS=--trace-gc with its stdout line-buffered (coreutils'
// libstdbuf), and this process stamps each trace line with the wall time it arrived: a pause
// of d ms printed at time T covered [T - d, T]. A message sent at s and received at r "lived
// through" a pause when the two intervals overlap. Prints, per window, p99, the pauses by kind,
// and how many of the messages over the threshold lived through a full GC (Mark-Compact), only
// a scavenge, or neither (then: the runtime's other work, a commit, eviction, or the client's
// own loop, whose worst delay is printed too); and the p99 of the messages that lived through
// no full GC, which is the figure the broker would have without them.
// CPU starvation, the other suspect on a shared machine: the time the broker's workerd threads
// and the client process were runnable but waiting for a core (/proc/<pid>/task/*/schedstat,
// second field), per window.
// --phases: V8's name-value trace instead (--trace-gc-nvp), which also splits each full GC's
// pause into V8's own phases (mark, clear, evacuate, sweep, finish): printed per window, the
// full GCs' pause beside the sum of those phases; the rest is the embedder's (the runtime's own
// heap) and the wait for the parallel GC threads to get a core.
// The arrival stamp lags the pause's end by the pipe (under a millisecond when the machine is
// quiet), so the attribution is approximate at the edges; the counts are what it is for.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { argFromArgs, getFreePort, NO_NETWORK_ENV, startBroker, varsFromArgs } from "../../scripts/broker-process.mjs";
import { bundleCodec, startWorker } from "../lib/workers.mjs";
import { schedstat, treePids } from "../lib/proc.mjs";
import { runMain } from "../lib/main.mjs";

const now = () => performance.timeOrigin + performance.now();
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
const args = process.argv.slice(2);
const qos = /** @type {0 | 1} */ (Number(argFromArgs("--qos", args) ?? "0"));
if (qos !== 0 && qos !== 1) throw new Error("--qos 0 or 1");
const rate = Number(argFromArgs("--rate", args) ?? "1000");
const windows = Math.max(1, Number(argFromArgs("--windows", args) ?? "2"));
const windowMs = 1000 * Number(argFromArgs("--window-s", args) ?? "15");
const thresholdMs = Number(argFromArgs("--threshold-ms", args) ?? "10");
const out = argFromArgs("--out", args);
// Another Worker in the broker's place (an experiment's wrangler.toml), and extra vars (K=V).
const configPath = argFromArgs("--config", args);
const extraVars = varsFromArgs(args);
const phases = args.includes("--phases");
const PUBLISHERS = 10;
const WARMUP_MS = 1_000;
const STDBUF = "/usr/libexec/coreutils/libstdbuf.so";

/** @param {number} x @param {number} [d] */
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
/** @param {number[]} v @param {number} p */
function pct(v, p) {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  return round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN);
}

/** @typedef {{ kind: string, pauseMs: number, endAt: number, isolate: string, phasesMs?: number }} Pause */
/** @type {Pause[]} */
const pauses = [];
let partial = "";
/** `[pid:0xisolate]  7123 ms: Mark-Compact 35.2 (40.1) -> 2.9 (10.0) MB, pooled: 0 MB, 63.21 / 0.00 ms ...` @param {string} chunk */
function onOutput(chunk) {
  const at = now();
  const lines = (partial + chunk).split("\n");
  partial = lines.pop() ?? "";
  for (const line of lines) {
    const m = /\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Mark-Compact|Mark-Compact \(reduce\)|Minor Mark-Sweep|Mark-Sweep)\b.*?, ([\d.]+) \/ [\d.]+ ms/.exec(line);
    if (m) pauses.push({ kind: m[2] ?? "?", isolate: m[1] ?? "?", pauseMs: Number(m[3]), endAt: at });
    // --trace-gc-nvp: `[pid:0xisolate:n]  7123 ms: GC: {"pause":31.8,"gc":"mc",...,"mark":5.6,...}`
    const nvp = /\[\d+:(0x[0-9a-f]+)(?::\d+)?\]\s+\d+ ms: GC: (\{.*\})\s*$/.exec(line);
    if (nvp) {
      const j = JSON.parse(nvp[2] ?? "{}");
      const kind = j.gc === "mc" ? "Mark-Compact" : j.gc === "s" ? "Scavenge" : j.gc === "mmc" ? "Minor Mark-Sweep" : String(j.gc);
      const phasesMs = ["prologue", "mark", "clear", "evacuate", "sweep", "finish", "epilogue"].reduce((sum, k) => sum + (Number(j[k]) || 0), 0);
      pauses.push({ kind, isolate: nvp[1] ?? "?", pauseMs: Number(j.pause), endAt: at, phasesMs });
    }
    if ((m || nvp) && process.env.GC_LOG) process.stderr.write(`${line}\n`);
    else if (process.env.BROKER_LOG) process.stderr.write(`${line}\n`);
  }
}

async function main() {
  Object.assign(process.env, NO_NETWORK_ENV, {
    MINIFLARE_WORKERD_V8_FLAGS: phases ? "--trace-gc --trace-gc-nvp" : "--trace-gc",
    ...(existsSync(STDBUF) ? { LD_PRELOAD: STDBUF, _STDBUF_O: "L" } : {}),
  });
  if (!existsSync(STDBUF)) process.stderr.write(`${STDBUF} absent: the trace is block-buffered and its times are late\n`);
  const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-bench-tail-"));
  const codecPath = await bundleCodec();
  const [A] = await Promise.all([startWorker("A", codecPath)]);
  if (!A) throw new Error("no client process");
  const broker = await startBroker(/** @type {any} */ ({ port: await getFreePort(), persistTo, onOutput, ...(configPath ? { configPath, migrate: false } : {}), vars: { MAX_PUBLISH_RATE: "0", MAX_PUBLISH_BYTES_RATE: "0", ALLOW_ANONYMOUS: "true", ...extraVars } }));
  try {
    const base = { kind: "lean", url: broker.url, route: "fast", keepAlive: 60 };
    const sub = await A.call("connect", { ...base, group: "latsub", count: 1, idPrefix: "tail-sub-", recordLatency: true, subscribe: { filter: "bench/lat/#", qos } });
    if (sub.connected !== 1) throw new Error(`subscriber: ${sub.errors.join("; ")}`);
    const pub = await A.call("connect", { ...base, group: "latpub", count: PUBLISHERS, idPrefix: "tail-pub-" });
    if (pub.connected !== PUBLISHERS) throw new Error(`publishers: ${pub.errors.join("; ")}`);
    const rateArgs = { group: "latpub", topic: "bench/lat/{i}", qos, payloadBytes: 64, rate, stamp: true };
    const warm = await A.call("publish", { ...rateArgs, durationMs: WARMUP_MS, maxMessages: Math.ceil((rate * WARMUP_MS) / 1000 / PUBLISHERS) + 1 });
    await sleep(1_000);
    const s0 = await A.call("stats", { group: "latsub" });
    await A.call("cpu");
    const workerd = treePids(broker.pid, "workerd");
    const clientPid = /** @type {number} */ (A.child.pid);
    /** @type {{ at: number, broker: ReturnType<typeof schedstat>, client: ReturnType<typeof schedstat> }[]} */
    const sched = [];
    const sample = () => sched.push({ at: now(), broker: schedstat(workerd), client: schedstat([clientPid]) });
    sample();
    const sampler = setInterval(sample, 250);
    const durationMs = windows * windowMs;
    const r = await A.call("publish", { ...rateArgs, durationMs, maxMessages: Math.ceil((rate * durationMs) / 1000 / PUBLISHERS) + 1, startAt: now() + 100 });
    clearInterval(sampler);
    sample();
    await sleep(2_000);
    const all = await A.call("stats", { group: "latsub", latencies: true });
    const loop = await A.call("cpu");
    /** @type {number[]} */
    const lat = all.latencies.slice(s0.delivered);
    /** @type {number[]} */
    const at = all.latencyAt.slice(s0.delivered);
    // The broker's isolate is the one that collects most often (Miniflare's own isolates are idle).
    /** @type {Map<string, number>} */
    const perIsolate = new Map();
    for (const p of pauses) if (p.endAt >= r.startAt && p.endAt <= r.endAt) perIsolate.set(p.isolate, (perIsolate.get(p.isolate) ?? 0) + 1);
    const main = [...perIsolate.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    const gcs = pauses.filter((p) => p.endAt >= r.startAt - 1_000 && p.endAt <= r.endAt + 2_000);
    const isFull = (/** @type {Pause} */ p) => p.kind.startsWith("Mark");
    const report = [];
    for (let k = 0; k < windows; k++) {
      const from = r.startAt + k * windowMs;
      const to = from + windowMs;
      /** @type {number[]} */ const w = [];
      /** @type {number[]} */ const noFull = [];
      let slow = 0;
      let slowFull = 0;
      let slowScavenge = 0;
      let slowNone = 0;
      lat.forEach((l, i) => {
        const recv = at[i] ?? 0;
        const sent = recv - l;
        if (sent < from || sent >= to) return;
        w.push(l);
        const lived = gcs.filter((p) => p.endAt - p.pauseMs < recv && p.endAt > sent);
        const full = lived.some(isFull);
        if (!full) noFull.push(l);
        if (l > thresholdMs) {
          slow++;
          if (full) slowFull++;
          else if (lived.length > 0) slowScavenge++;
          else slowNone++;
        }
      });
      const inWindow = gcs.filter((p) => p.endAt >= from && p.endAt < to);
      const byKind = (/** @type {(p: Pause) => boolean} */ f) => {
        const ps = inWindow.filter(f);
        return {
          count: ps.length,
          totalMs: round(ps.reduce((a, p) => a + p.pauseMs, 0), 1),
          maxMs: round(Math.max(0, ...ps.map((p) => p.pauseMs)), 1),
          ...(phases ? { v8PhasesMs: round(ps.reduce((a, p) => a + (p.phasesMs ?? 0), 0), 1) } : {}),
        };
      };
      const inSched = sched.filter((x) => x.at >= from - 125 && x.at < to + 125);
      const first = inSched[0];
      const last = inSched[inSched.length - 1];
      /** Most waiting in one 250 ms sample interval. */
      let worstWait = 0;
      for (let i = 1; i < inSched.length; i++) worstWait = Math.max(worstWait, (inSched[i]?.broker.waitMs ?? 0) - (inSched[i - 1]?.broker.waitMs ?? 0));
      report.push({
        window: k + 1,
        brokerCpuMs: first && last ? round(last.broker.runMs - first.broker.runMs, 0) : null,
        brokerWaitingForCpuMs: first && last ? round(last.broker.waitMs - first.broker.waitMs, 0) : null,
        brokerWaitingForCpuWorst250msMs: round(worstWait, 1),
        clientWaitingForCpuMs: first && last ? round(last.client.waitMs - first.client.waitMs, 0) : null,
        messages: w.length,
        p50Ms: pct(w, 50),
        p99Ms: pct(w, 99),
        maxMs: pct(w, 100),
        overThreshold: slow,
        overThresholdLivedThroughFullGc: slowFull,
        overThresholdLivedThroughScavengeOnly: slowScavenge,
        overThresholdLivedThroughNoGc: slowNone,
        p99WithoutFullGcMs: pct(noFull, 99),
        fullGc: byKind((p) => p.isolate === main && isFull(p)),
        scavenge: byKind((p) => p.isolate === main && !isFull(p)),
        otherIsolatesGc: byKind((p) => p.isolate !== main),
      });
    }
    const result = { qos, rate, windowMs, thresholdMs, published: r.published, delivered: lat.length, clientLoopDelayMaxMs: round(loop.loopDelayMaxMs ?? NaN), loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "), windows: report };
    console.log(`QoS ${qos}, ${rate} msg/s, ${windows} × ${windowMs / 1000} s; client loop delay max ${result.clientLoopDelayMaxMs} ms; load average ${result.loadAverage}`);
    for (const w of report) {
      console.log(
        `window ${w.window}: p50 ${w.p50Ms} p99 ${w.p99Ms} max ${w.maxMs} ms; >${thresholdMs} ms: ${w.overThreshold} (full GC ${w.overThresholdLivedThroughFullGc}, scavenge only ${w.overThresholdLivedThroughScavengeOnly}, no GC ${w.overThresholdLivedThroughNoGc}); ` +
          `p99 without full-GC messages ${w.p99WithoutFullGcMs}; full GCs ${w.fullGc.count} (${w.fullGc.totalMs} ms${phases ? `, V8's phases ${w.fullGc.v8PhasesMs}` : ""}, max ${w.fullGc.maxMs}), scavenges ${w.scavenge.count} (${w.scavenge.totalMs} ms, max ${w.scavenge.maxMs}), other isolates ${w.otherIsolatesGc.count}; ` +
          `workerd CPU ${w.brokerCpuMs} ms, waiting for a core ${w.brokerWaitingForCpuMs} ms (worst 250 ms: ${w.brokerWaitingForCpuWorst250msMs}), client waiting ${w.clientWaitingForCpuMs} ms`,
      );
    }
    if (out) writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    await Promise.all([A.call("close", { group: "latpub" }), A.call("close", { group: "latsub" })]);
  } finally {
    await broker.stop();
    await A.call("exit").catch(() => {});
    rmSync(persistTo, { recursive: true, force: true });
  }
}

runMain(main);
