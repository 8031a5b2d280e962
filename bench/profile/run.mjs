#!/usr/bin/env node
// CPU profile of workerd while the broker handles fan-in load: where the CPU per message goes.
//
//   node bench/profile/run.mjs --qos 0|1 [--publishers 20] [--duration 10] [--warmup 3]
//                              [--interval 100] [--top 15] [--rate N]
//
// Starts the broker on the local runtime (scripts/local-runtime.mjs) with workerd's inspector
// open and a fresh state directory, runs the bench's fan-in with the bench's own client
// processes (bench/client-worker.mjs, lean client, fast path /mqtt/<id>): N publishers to
// bench/in/<i>, one subscriber on bench/in/#, 64-byte payloads. After a warm-up, attaches the
// DevTools Profiler to every inspector target (sampling every --interval µs), runs the load
// for --duration s, lets deliveries drain, stops the profiler. Writes, per target,
//   bench/results/profile-q<qos>-<target>.cpuprofile.json   (load into DevTools: rename to .cpuprofile)
//   .wrangler/profile/profile-q<qos>-bundle.js               (the bundle the line numbers refer to)
//   bench/results/profile-q<qos>.json                        (the aggregated summary)
// and prints the top functions by self and total time and the per-file totals (analyze.mjs).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { applyMigrations, argFromArgs, getFreePort, ROOT } from "../../scripts/broker-process.mjs";
import { startLocalRuntime } from "../../scripts/local-runtime.mjs";
import { treeCpu, cpuDelta } from "../lib/proc.mjs";
import { analyze, format, sectionMap } from "./analyze.mjs";
import { CdpSession, listTargets } from "./cdp.mjs";
import { threadCpu, threadDelta } from "./threads.mjs";
import { bundleCodec, startWorker } from "../lib/workers.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const RESULTS = join(HERE, "..", "results");
const now = () => performance.timeOrigin + performance.now();
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

const args = process.argv.slice(2);
const qos = /** @type {0 | 1} */ (Number(argFromArgs("--qos", args) ?? "0"));
if (qos !== 0 && qos !== 1) throw new Error("--qos 0 or 1");
const publishers = Number(argFromArgs("--publishers", args) ?? "20");
const durationMs = 1000 * Number(argFromArgs("--duration", args) ?? "10");
const warmupMs = 1000 * Number(argFromArgs("--warmup", args) ?? "3");
const intervalUs = Number(argFromArgs("--interval", args) ?? "100");
const top = Number(argFromArgs("--top", args) ?? "15");
/** A fixed total rate (messages per second) instead of as fast as the broker takes them. */
const rate = argFromArgs("--rate", args) === undefined ? undefined : Number(argFromArgs("--rate", args));
const PAYLOAD = 64;

/** @typedef {{ name: string, child: import("node:child_process").ChildProcess, call: (op: string, a?: any) => Promise<any> }} Worker */


/** @param {Worker} sub @param {number} expected @param {number} maxMs */
async function drain(sub, expected, maxMs, idleMs = 1_500) {
  const deadline = now() + maxMs;
  let last = -1;
  let lastChange = now();
  for (;;) {
    const s = await sub.call("stats", { group: "sub" });
    if (s.delivered !== last) {
      last = s.delivered;
      lastChange = now();
    }
    if (s.delivered >= expected || now() >= deadline || now() - lastChange >= idleMs) return s;
    await sleep(200);
  }
}

async function main() {
  mkdirSync(RESULTS, { recursive: true });
  mkdirSync(join(ROOT, ".wrangler", "tmp"), { recursive: true });
  const persistTo = mkdtempSync(join(ROOT, ".wrangler", "tmp", "profile-state-"));
  let log = "";
  const onOutput = (/** @type {string} */ c) => (log += c);
  const [port, inspectorPort, codecPath] = await Promise.all([getFreePort(), getFreePort(), bundleCodec()]);
  await applyMigrations({ persistTo, onOutput });
  console.log(`starting the local runtime on ${port}, inspector ${inspectorPort}`);
  // ALLOW_ANONYMOUS: the load's clients have no user name (a fresh clone has no .dev.vars).
  const rt = await startLocalRuntime({ port, persistTo, inspectorPort, onOutput, vars: { ALLOW_ANONYMOUS: "true" } }).catch((e) => {
    console.error(log);
    throw e;
  });
  /** @type {Worker[]} */
  let W = [];
  /** @type {CdpSession[]} */
  const sessions = [];
  try {
    // The bundle the profile's line numbers refer to (deleted by stop()).
    const bundleDir = rt.child.spawnargs[rt.child.spawnargs.indexOf("--bundle") + 1];
    if (!bundleDir) throw new Error("no --bundle in the runtime's arguments");
    const entry = readdirSync(bundleDir).find((f) => /\.m?js$/.test(f));
    if (!entry) throw new Error(`no bundle in ${bundleDir}`);
    // Kept out of bench/results (which ignores only *.json) in the ignored .wrangler/.
    mkdirSync(join(ROOT, ".wrangler", "profile"), { recursive: true });
    const bundleCopy = join(ROOT, ".wrangler", "profile", `profile-q${qos}-bundle.js`);
    copyFileSync(join(bundleDir, entry), bundleCopy);

    W = await Promise.all(["A", "B", "C"].map((n) => startWorker(n, codecPath)));
    const [A, B, C] = /** @type {[Worker, Worker, Worker]} */ (W);
    const base = { kind: "lean", url: rt.url, route: "fast", keepAlive: 60 };
    const sub = await C.call("connect", { ...base, group: "sub", count: 1, idPrefix: `prof-q${qos}-sub-`, subscribe: { filter: "bench/in/#", qos } });
    if (sub.connected !== 1) throw new Error(`subscriber did not connect: ${sub.errors.join("; ")}`);
    const parts = [Math.ceil(publishers / 2), Math.floor(publishers / 2)];
    const pubs = await Promise.all([A, B].map((w, k) => w.call("connect", { ...base, group: "pub", count: parts[k], idPrefix: `prof-q${qos}-p${w.name}-`, concurrency: 20 })));
    const connected = pubs.reduce((a, p) => a + p.connected, 0);
    if (connected < publishers) throw new Error(`publishers: ${connected}/${publishers}: ${pubs.flatMap((p) => p.errors).join("; ")}`);

    /** @param {number} ms */
    const load = async (ms) => {
      const d0 = (await C.call("stats", { group: "sub" })).delivered;
      const startAt = now() + 150;
      const pubArgs = { group: "pub", topic: "bench/in/{i}", qos, durationMs: ms, maxMessages: 1_000_000, payloadBytes: PAYLOAD, window: 16, startAt };
      const results = await Promise.all(
        [A, B].map((w, k) => w.call("publish", { ...pubArgs, indexOffset: k === 0 ? 0 : parts[0], ...(rate && { rate: rate / 2 }) })),
      );
      const published = results.reduce((a, r) => a + r.published, 0);
      const s = await drain(C, d0 + published, 20_000);
      return { published, delivered: s.delivered - d0, ms: now() - startAt, lost: s.lostConnections };
    };

    if (warmupMs > 0) {
      const w = await load(warmupMs);
      console.log(`warm-up: ${w.published} published, ${w.delivered} delivered`);
    }

    const targets = await listTargets(inspectorPort);
    console.log(`inspector targets: ${targets.map((t) => `${t.id} "${t.title ?? ""}"`).join(", ")}`);
    for (const t of targets) {
      const s = new CdpSession(t.webSocketDebuggerUrl.replace("localhost", "127.0.0.1"));
      await s.open();
      await s.send("Profiler.enable");
      await s.send("Profiler.setSamplingInterval", { interval: intervalUs });
      sessions.push(s);
    }
    const cpu0 = treeCpu(rt.pid);
    const th0 = threadCpu(rt.pid);
    await Promise.all(sessions.map((s) => s.send("Profiler.start")));
    const run = await load(durationMs);
    const profiles = await Promise.all(sessions.map((s) => s.send("Profiler.stop")));
    const cpu = cpuDelta(cpu0, treeCpu(rt.pid));
    const threads = threadDelta(th0, threadCpu(rt.pid)).slice(0, 8);
    const perMsg = run.delivered > 0 ? Math.round(cpu.totalUs / run.delivered) : 0;
    console.log(`profiled run: ${run.published} published, ${run.delivered} delivered in ${(run.ms / 1000).toFixed(1)} s; runtime CPU ${(cpu.totalUs / 1000).toFixed(0)} ms (${perMsg} µs per delivered message, profiler attached)`);
    for (const t of threads) console.log(`  thread ${t.thread}: user ${t.userMs.toFixed(0)} ms, sys ${t.sysMs.toFixed(0)} ms`);

    const fileOf = sectionMap(readFileSync(bundleCopy, "utf8"));
    /** @type {Record<string, unknown>} */
    const summaries = {};
    for (let i = 0; i < targets.length; i++) {
      const t = /** @type {import("./cdp.mjs").Target} */ (targets[i]);
      const { profile } = profiles[i];
      const name = (t.title || t.id).replace(/[^\w.-]+/g, "_");
      const file = join(RESULTS, `profile-q${qos}-${name}.cpuprofile.json`);
      writeFileSync(file, JSON.stringify(profile));
      const s = analyze(profile, { bundleUrl: (u) => u.endsWith(`/${entry}`) || u === entry, fileOf, top });
      summaries[name] = s;
      if (s.busyUs === 0 && s.samples < 10) continue;
      console.log(`\n${format(s, `QoS ${qos} target "${t.title ?? t.id}" (${file.replace(ROOT + "/", "")})`)}`);
    }
    const summaryFile = join(RESULTS, `profile-q${qos}.json`);
    writeFileSync(summaryFile, JSON.stringify({ qos, publishers, durationMs, intervalUs, payloadBytes: PAYLOAD, run, runtimeCpu: cpu, threads, targets: summaries }, null, 2));
    console.log(`\nwrote ${summaryFile.replace(ROOT + "/", "")}; bundle ${bundleCopy.replace(ROOT + "/", "")}`);
  } finally {
    for (const s of sessions) s.close();
    await Promise.all(W.map((w) => w.call("exit").catch(() => {})));
    await rt.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
