#!/usr/bin/env node
// What the broker's isolate keeps alive: a V8 heap snapshot of workerd's isolate after the
// latency load (10 lean publishers, one subscriber, fast path) has run for a while, summed by
// node type and by constructor. The live heap is what every full garbage collection walks, so
// its size sets how long the pauses that make the latency tail last (docs/benchmarks.md).
//
//   node bench/profile/heap.mjs [--load-s 5] [--top 25] [--http]   (--http: also call the HTTP API first)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyMigrations, argFromArgs, getFreePort } from "../../scripts/broker-process.mjs";
import { startLocalRuntime } from "../../scripts/local-runtime.mjs";
import { CdpSession, listTargets } from "./cdp.mjs";
import { bundleCodec, startWorker } from "../lib/workers.mjs";
import { runMain } from "../lib/main.mjs";

const args = process.argv.slice(2);
const loadMs = 1000 * Number(argFromArgs("--load-s", args) ?? "5");
const top = Number(argFromArgs("--top", args) ?? "25");
const PUBLISHERS = 10;
const RATE = 1000;

/** Heap snapshot JSON → totals by node type and by (type, name). @param {any} snap */
function summarize(snap) {
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = [f.indexOf("type"), f.indexOf("name"), f.indexOf("self_size")];
  const nodes = snap.nodes;
  const strings = snap.strings;
  /** @type {Map<string, { count: number, bytes: number }>} */
  const byType = new Map();
  /** @type {Map<string, { count: number, bytes: number }>} */
  const byName = new Map();
  let total = 0;
  for (let i = 0; i < nodes.length; i += f.length) {
    const type = types[nodes[i + iType]];
    const size = nodes[i + iSize];
    total += size;
    const t = byType.get(type) ?? { count: 0, bytes: 0 };
    t.count++;
    t.bytes += size;
    byType.set(type, t);
    const key = `${type}: ${type === "string" || type === "concatenated string" || type === "sliced string" ? "(strings)" : String(strings[nodes[i + iName]]).slice(0, 60)}`;
    const n = byName.get(key) ?? { count: 0, bytes: 0 };
    n.count++;
    n.bytes += size;
    byName.set(key, n);
  }
  /** The largest single strings (a bundle's source is one). */
  const bigStrings = [];
  for (let i = 0; i < nodes.length; i += f.length) {
    if (types[nodes[i + iType]] === "string" && nodes[i + iSize] > 50_000) bigStrings.push({ bytes: nodes[i + iSize], head: String(strings[nodes[i + iName]]).slice(0, 70).replace(/\s+/g, " ") });
  }
  bigStrings.sort((a, b) => b.bytes - a.bytes);
  return { total, byType, byName, bigStrings };
}

async function main() {
  const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-heap-"));
  const [port, inspectorPort, codecPath] = await Promise.all([getFreePort(), getFreePort(), bundleCodec()]);
  await applyMigrations({ persistTo, stdio: "ignore" });
  const rt = await startLocalRuntime({ port, persistTo, inspectorPort, stdio: "ignore", vars: { ALLOW_ANONYMOUS: "true", MAX_PUBLISH_RATE: "0", MAX_PUBLISH_BYTES_RATE: "0" } });
  const A = await startWorker("A", codecPath);
  try {
    if (args.includes("--http")) for (const path of ["/api/v1/stats", "/metrics", "/openapi.json"]) await fetch(`http://127.0.0.1:${port}${path}`).catch(() => {});
    const base = { kind: "lean", url: `ws://127.0.0.1:${port}/mqtt`, route: "fast", keepAlive: 60 };
    await A.call("connect", { ...base, group: "sub", count: 1, idPrefix: "heap-sub-", recordLatency: true, subscribe: { filter: "bench/lat/#", qos: 0 } });
    await A.call("connect", { ...base, group: "pub", count: PUBLISHERS, idPrefix: "heap-pub-" });
    await A.call("publish", { group: "pub", topic: "bench/lat/{i}", qos: 0, payloadBytes: 64, rate: RATE, stamp: true, durationMs: loadMs, maxMessages: Math.ceil((RATE * loadMs) / 1000 / PUBLISHERS) + 1 });
    // The broker's own isolate only ("core:user:<name>"): Miniflare's asset Workers are idle, and
    // a snapshot of one of them never finished here.
    const targets = (await listTargets(inspectorPort)).filter((t) => t.id.startsWith("core:user:"));
    if (targets.length === 0) throw new Error("no inspector target for the broker's isolate");
    for (const t of targets) {
      const s = new CdpSession(t.webSocketDebuggerUrl.replace("localhost", "127.0.0.1"));
      await s.open();
      let json = "";
      s.on("HeapProfiler.addHeapSnapshotChunk", (p) => (json += p.chunk));
      await s.send("HeapProfiler.enable");
      await s.send("HeapProfiler.collectGarbage");
      await s.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      await s.send("HeapProfiler.disable");
      s.close();
      const { total, byType, byName, bigStrings } = summarize(JSON.parse(json));
      const mb = (/** @type {number} */ b) => (b / 1048576).toFixed(2);
      console.log(`target ${t.id} "${t.title ?? ""}": ${mb(total)} MB live after a full GC`);
      for (const [type, v] of [...byType].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 12)) console.log(`  ${type.padEnd(22)} ${mb(v.bytes).padStart(7)} MB  ${String(v.count).padStart(8)} nodes`);
      console.log("  strings over 50 kB:");
      for (const b of bigStrings.slice(0, 8)) console.log(`    ${mb(b.bytes)} MB  ${JSON.stringify(b.head)}`);
      console.log("  largest by constructor / name:");
      for (const [key, v] of [...byName].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) console.log(`    ${key.padEnd(72)} ${mb(v.bytes).padStart(7)} MB  ${String(v.count).padStart(8)}`);
    }
  } finally {
    await A.call("exit").catch(() => {});
    await rt.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}

runMain(main);
