#!/usr/bin/env node
// What the full garbage collections collect, by the code that allocated it: V8's sampling heap
// profiler on workerd's broker isolate during the latency load (10 lean publishers at a fixed
// total rate, one subscriber, fast path), keeping the samples of objects that survived the
// young generation (freed by a full GC, or still alive) and dropping those a scavenge freed.
// Those objects are what fills the old space and so triggers the full GCs that make the
// latency tail (docs/benchmarks.md, "What the tail is made of").
//
//   node bench/profile/promoted.mjs [--qos 0|1] [--load-s 10] [--rate 1000] [--top 30]
//                                   [--config wrangler.toml] [--var K=V ...]
//
// Prints the bytes sampled per allocating function (self), and per function with what it
// called (total), as bytes per message: V8 samples one allocation per --interval bytes
// (default 32 KiB) on average, so the figures are estimates, their ratios are what counts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, argFromArgs, getFreePort, varsFromArgs } from "../../scripts/broker-process.mjs";
import { startLocalRuntime } from "../../scripts/local-runtime.mjs";
import { CdpSession, listTargets } from "./cdp.mjs";
import { bundleCodec, startWorker } from "../lib/workers.mjs";
import { runMain } from "../lib/main.mjs";

const args = process.argv.slice(2);
const qos = Number(argFromArgs("--qos", args) ?? "1");
const loadMs = 1000 * Number(argFromArgs("--load-s", args) ?? "10");
const rate = Number(argFromArgs("--rate", args) ?? "1000");
const top = Number(argFromArgs("--top", args) ?? "30");
const interval = Number(argFromArgs("--interval", args) ?? "32768");
// Another Worker in the broker's place (an experiment's wrangler.toml, bench/runtime/hops).
const configPath = argFromArgs("--config", args);
// --callers NAME: also the self bytes of function NAME by its callers, --depth frames up.
const callers = argFromArgs("--callers", args);
const depth = Number(argFromArgs("--depth", args) ?? "3");
const PUBLISHERS = 10;

/**
 * @typedef {{ callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }, selfSize: number, children: Node[] }} Node
 * @param {Node} root
 */
function aggregate(root) {
  /** @type {Map<string, number>} */
  const self = new Map();
  /** @type {Map<string, number>} */
  const total = new Map();
  let sum = 0;
  /** @param {Node} node @param {Set<string>} onStack @returns {number} */
  function walk(node, onStack) {
    const f = node.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url ? `${f.url.split("/").pop()}:${f.lineNumber + 1}` : ""}`.trim();
    self.set(key, (self.get(key) ?? 0) + node.selfSize);
    sum += node.selfSize;
    const inner = new Set(onStack).add(key);
    let bytes = node.selfSize;
    for (const c of node.children) bytes += walk(c, inner);
    if (!onStack.has(key)) total.set(key, (total.get(key) ?? 0) + bytes);
    return bytes;
  }
  walk(root, new Set());
  return { self, total, sum };
}

/**
 * The self bytes of the functions named `name`, by the chain of their callers (`depth` frames up).
 * @param {Node} root @param {string} name @param {number} depth
 */
function callersOf(root, name, depth) {
  /** @type {Map<string, number>} */
  const chains = new Map();
  /** @param {Node} node @param {string[]} stack */
  function walk(node, stack) {
    const f = node.callFrame;
    const here = `${f.functionName || "(anonymous)"}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    if ((f.functionName || "(anonymous)") === name && node.selfSize > 0) {
      const key = stack.slice(-depth).join(" < ");
      chains.set(key, (chains.get(key) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, [...stack, here]);
  }
  walk(root, []);
  return chains;
}

async function main() {
  const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-promoted-"));
  const [port, inspectorPort, codecPath] = await Promise.all([getFreePort(), getFreePort(), bundleCodec()]);
  await applyMigrations({ persistTo, stdio: "ignore" });
  const vars = { ALLOW_ANONYMOUS: "true", MAX_PUBLISH_RATE: "0", MAX_PUBLISH_BYTES_RATE: "0", ...varsFromArgs(args) };
  const rt = await startLocalRuntime({ port, persistTo, inspectorPort, stdio: "ignore", vars, ...(configPath ? { configPath } : {}) });
  const A = await startWorker("A", codecPath);
  try {
    const base = { kind: "lean", url: `ws://127.0.0.1:${port}/mqtt`, route: "fast", keepAlive: 60 };
    await A.call("connect", { ...base, group: "sub", count: 1, idPrefix: "promoted-sub-", recordLatency: true, subscribe: { filter: "bench/lat/#", qos } });
    await A.call("connect", { ...base, group: "pub", count: PUBLISHERS, idPrefix: "promoted-pub-" });
    const publish = (/** @type {number} */ ms) =>
      A.call("publish", { group: "pub", topic: "bench/lat/{i}", qos, payloadBytes: 64, rate, stamp: true, durationMs: ms, maxMessages: Math.ceil((rate * ms) / 1000 / PUBLISHERS) + 1 });
    await publish(2000); // warm-up: links open, code optimised
    const targets = (await listTargets(inspectorPort)).filter((t) => t.id.startsWith("core:user:"));
    if (targets.length === 0) throw new Error("no inspector target for the broker's isolate");
    const sessions = await Promise.all(
      targets.map(async (t) => {
        const s = new CdpSession(t.webSocketDebuggerUrl.replace("localhost", "127.0.0.1"));
        await s.open();
        await s.send("HeapProfiler.enable");
        await s.send("HeapProfiler.startSampling", { samplingInterval: interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
        return { t, s };
      }),
    );
    const r = await publish(loadMs);
    const messages = Number(r?.published ?? (rate * loadMs) / 1000);
    for (const { t, s } of sessions) {
      const { profile } = await s.send("HeapProfiler.stopSampling");
      await s.send("HeapProfiler.disable");
      s.close();
      const { self, total, sum } = aggregate(profile.head);
      const perMsg = (/** @type {number} */ b) => (b / messages).toFixed(0).padStart(7);
      console.log(`target ${t.id}: QoS ${qos}, ${messages} messages; sampled ${(sum / 1048576).toFixed(1)} MB that outlived the young generation, ${perMsg(sum).trim()} B per message`);
      console.log("  self (B/msg)  function");
      for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${perMsg(v)}       ${k}`);
      if (callers) {
        console.log(`  ${callers} (B/msg) by callers, innermost last`);
        for (const [k, v] of [...callersOf(profile.head, callers, depth)].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${perMsg(v)}       ${k}`);
      }
      console.log("  total (B/msg) function");
      for (const [k, v] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${perMsg(v)}       ${k}`);
    }
  } finally {
    await A.call("exit").catch(() => {});
    await rt.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}

runMain(main);
