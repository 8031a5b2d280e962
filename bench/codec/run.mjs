#!/usr/bin/env node
// `npm run bench:codec`: cost and size of our MQTT codec (core/mqtt/codec) against
// mqtt-packet v9, in workerd and in Node. Prints a table, writes bench/results/codec.json.
//
//   workerd: bench/codec/worker.ts started with wrangler's unstable_startWorker (local only,
//            no network); the clock is frozen inside a Worker during synchronous code, so each
//            run is timed from here as one HTTP request (see measure.mjs).
//   Node:    bench/codec/cases.ts bundled for Node, timed in a child process (node-child.mjs).
//   Size:    a tiny Worker entry per codec (bench/codec/size/*.ts), minified, raw and gzip:
//            esbuild alone, and `wrangler deploy --dry-run --minify` with nodejs_compat.
//
// Options: --quick (short runs, for a smoke test), --skip=workerd,node,size
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { brokerEnv, NO_NETWORK_ENV, nodeBinary, ROOT } from "../../scripts/broker-process.mjs";
import { measure } from "./measure.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const CACHE = join(ROOT, "node_modules", ".cache", "bench-codec");
const OUT = join(ROOT, "bench", "results", "codec.json");

async function main() {
  const args = process.argv.slice(2);
  const quick = args.includes("--quick");
  const skip = new Set((args.find((a) => a.startsWith("--skip="))?.slice(7) ?? "").split(",").filter(Boolean));
  const options = quick ? { targetMs: 40, reps: 3 } : { targetMs: 250, reps: 7 };
  Object.assign(process.env, NO_NETWORK_ENV, { WRANGLER_LOG: "warn" });
  mkdirSync(CACHE, { recursive: true });

  const meta = environment();
  console.log(`codec bench: ${meta.cpus}x ${meta.cpuModel}, Node ${meta.node}, workerd ${meta.workerd}, mqtt-packet ${meta.mqttPacket}`);
  console.log(`method: median of ${options.reps} runs of n=0 and n=N (N for ~${options.targetMs} ms), (t_N - t_0)/N\n`);

  const sizes = skip.has("size") ? [] : await measureSizes();
  if (sizes.length) printSizes(sizes);

  /** @type {any} */
  let node = { selfCheck: [], results: [] };
  if (!skip.has("node")) {
    process.stderr.write("Node ");
    node = await runNode(options);
  }
  /** @type {any} */
  let workerd = { selfCheck: [], results: [] };
  if (!skip.has("workerd")) {
    process.stderr.write("workerd ");
    workerd = await runWorkerd(options);
  }
  for (const note of new Set([...node.selfCheck, ...workerd.selfCheck])) console.log(`self-check: ${note}`);

  const rows = merge(workerd.results, node.results);
  printTable(rows);
  mkdirSync(dirname(OUT), { recursive: true });
  const json = { date: new Date().toISOString(), environment: meta, options, method: "median(t_N) - median(t_0) over N, per impl; ratio = ours / mqtt-packet", selfCheck: [...new Set([...node.selfCheck, ...workerd.selfCheck])], rows, sizes };
  writeFileSync(OUT, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwrote ${OUT}`);
}

function environment() {
  const require = createRequire(join(ROOT, "package.json"));
  const version = (/** @type {string} */ p) => JSON.parse(readFileSync(p, "utf8")).version;
  const wranglerPkg = require.resolve("wrangler/package.json");
  const miniflarePkg = createRequire(wranglerPkg).resolve("miniflare/package.json");
  const workerdPkg = createRequire(miniflarePkg).resolve("workerd/package.json");
  const cpu = cpus();
  return {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? "?",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.versions.node,
    v8Node: process.versions.v8,
    wrangler: version(wranglerPkg),
    miniflare: version(miniflarePkg),
    workerd: version(workerdPkg),
    mqttPacket: version(require.resolve("mqtt-packet/package.json")),
    esbuild: version(require.resolve("esbuild/package.json")),
  };
}

/** @param {{ targetMs: number, reps: number }} options */
async function runNode(options) {
  const { build } = await import("esbuild");
  const bundle = join(CACHE, "cases.mjs"); // under node_modules so that `mqtt-packet` resolves
  await build({ entryPoints: [join(HERE, "cases.ts")], bundle: true, platform: "node", format: "esm", packages: "external", outfile: bundle, logLevel: "warning" });
  const child = spawn(process.execPath, [join(HERE, "node-child.mjs"), bundle, JSON.stringify(options)], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const code = await new Promise((r) => child.on("exit", r));
  if (code !== 0) throw new Error(`node-child exited with ${code}`);
  return JSON.parse(out);
}

/** @param {{ targetMs: number, reps: number }} options */
async function runWorkerd(options) {
  const { unstable_startWorker } = await import("wrangler");
  const worker = await unstable_startWorker({
    config: join(HERE, "wrangler.toml"),
    dev: { server: { hostname: "127.0.0.1", port: 0 }, inspector: false, watch: false, logLevel: "warn" },
  });
  try {
    await worker.ready;
    const base = await worker.url;
    const get = async (/** @type {string} */ path) => {
      const res = await fetch(new URL(path, base));
      const body = await res.text();
      if (!res.ok) throw new Error(`${path}: ${res.status} ${body}`);
      return JSON.parse(body);
    };
    const selfCheck = await get("/check");
    /** @type {any[]} */
    const cases = await get("/cases");
    const results = [];
    for (const c of cases) {
      /** @type {import("./measure.mjs").Timer} */
      const time = async (impl, n) => {
        const path = `/run?impl=${impl}&op=${c.op}&packet=${c.packet}&version=${c.version}&n=${n}`;
        const t = performance.now();
        const { checksum } = await get(path);
        const ms = performance.now() - t;
        if (typeof checksum !== "number") throw new Error(`${path}: checksum ${checksum} (decode failed)`);
        return ms;
      };
      results.push({ ...c, m: await measure(c.impls, time, options) });
      process.stderr.write(".");
    }
    process.stderr.write("\n");
    return { selfCheck, results };
  } finally {
    await worker.dispose();
  }
}

/** @param {any[]} workerd @param {any[]} node */
function merge(workerd, node) {
  const key = (/** @type {any} */ c) => `${c.op} ${c.packet} ${c.version}`;
  const byKey = new Map();
  for (const [env, list] of /** @type {const} */ ([["workerd", workerd], ["node", node]])) {
    for (const c of list) {
      const row = byKey.get(key(c)) ?? { op: c.op, packet: c.packet, version: c.version };
      const ours = c.m.ours;
      const theirs = c.m["mqtt-packet"];
      row[env] = { ours, mqttPacket: theirs, ratio: ours && theirs ? ours.nsPerOp / theirs.nsPerOp : undefined };
      byKey.set(key(c), row);
    }
  }
  return [...byKey.values()];
}

const fmtNs = (/** @type {any} */ m) => (m ? (m.nsPerOp >= 100 ? m.nsPerOp.toFixed(0) : m.nsPerOp.toFixed(1)) : "-");
const fmtRatio = (/** @type {number|undefined} */ r) => (r === undefined ? "-" : r.toFixed(2));

/** @param {any[]} rows */
function printTable(rows) {
  const head = ["op", "packet", "v", "workerd ours", "workerd m-p", "ratio", "node ours", "node m-p", "ratio"];
  const body = rows.map((r) => [
    r.op, r.packet, String(r.version),
    fmtNs(r.workerd?.ours), fmtNs(r.workerd?.mqttPacket), fmtRatio(r.workerd?.ratio),
    fmtNs(r.node?.ours), fmtNs(r.node?.mqttPacket), fmtRatio(r.node?.ratio),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => /** @type {string} */ (b[i]).length)));
  const line = (/** @type {string[]} */ cells) => cells.map((c, i) => (i < 2 ? c.padEnd(/** @type {number} */ (widths[i])) : c.padStart(/** @type {number} */ (widths[i])))).join("  ");
  console.log("\nns per packet (m-p = mqtt-packet; ratio = ours / mqtt-packet, < 1 means ours is faster)");
  console.log(line(head));
  for (const b of body) console.log(line(b));
  const noisy = rows.flatMap((r) =>
    ["workerd", "node"].flatMap((env) =>
      ["ours", "mqttPacket"].filter((i) => r[env]?.[i]?.spread > 0.5).map((i) => `${env} ${i} ${r.op} ${r.packet} v${r.version}`),
    ),
  );
  if (noisy.length) console.log(`noisy (run-to-run spread > 50%): ${noisy.join("; ")}`);
}

// ---------------------------------------------------------------------------------------
// Bundle size.

/** @returns {Promise<{ impl: string, build: string, bytes: number, gzip: number }[]>} */
async function measureSizes() {
  const { build } = await import("esbuild");
  const sizeOf = (/** @type {Uint8Array} */ b) => ({ bytes: b.length, gzip: gzipSync(b).length });
  const out = [];
  const entry = (/** @type {string} */ impl) => join(HERE, "size", `${impl}.ts`);
  // esbuild alone: ours needs no platform; mqtt-packet as a browser bundle with the npm
  // polyfills its dependencies name (buffer, events, process, string_decoder), i.e. a Worker
  // without nodejs_compat.
  for (const [impl, platform] of /** @type {const} */ ([["ours", "neutral"], ["mqtt-packet", "browser"]])) {
    const r = await build({ entryPoints: [entry(impl)], bundle: true, format: "esm", platform, minify: true, write: false, logLevel: "error" });
    const file = /** @type {import("esbuild").OutputFile} */ (r.outputFiles[0]);
    out.push({ impl, build: `esbuild --minify, platform ${platform}${impl === "ours" ? "" : ", npm polyfills"}`, ...sizeOf(file.contents) });
  }
  // What a Worker ships: wrangler's own bundling with nodejs_compat (node:buffer, node:events
  // come from the runtime; bl's readable-stream and the rest are bundled).
  for (const impl of ["ours", "mqtt-packet"]) {
    const dir = join(CACHE, "size", impl);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const config = join(dir, "wrangler.toml");
    writeFileSync(config, `name = "size-${impl}"\nmain = ${JSON.stringify(entry(impl))}\ncompatibility_date = "2026-11-01"\ncompatibility_flags = ["nodejs_compat"]\nsend_metrics = false\n`);
    await wrangler(["deploy", "--dry-run", "--minify", "--outdir", join(dir, "out"), "-c", config]);
    const js = readdirSync(join(dir, "out")).find((f) => f.endsWith(".js"));
    if (!js) throw new Error(`no .js output for ${impl}`);
    out.push({ impl, build: "wrangler deploy --dry-run --minify, nodejs_compat", ...sizeOf(readFileSync(join(dir, "out", js))) });
  }
  return out;
}

/** @param {string[]} args */
function wrangler(args) {
  const bin = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
  return new Promise((/** @type {(v?: void) => void} */ ok, fail) => {
    const child = spawn(nodeBinary(), [bin, ...args], { cwd: ROOT, env: brokerEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    child.on("exit", (code) => (code === 0 ? ok() : fail(new Error(`wrangler ${args.join(" ")}: ${code}\n${log}`))));
  });
}

/** @param {{ impl: string, build: string, bytes: number, gzip: number }[]} sizes */
function printSizes(sizes) {
  console.log("bundle size of a Worker that decodes and encodes (KiB, minified / gzip)");
  for (const s of sizes) console.log(`  ${s.impl.padEnd(12)} ${(s.bytes / 1024).toFixed(1).padStart(6)} / ${(s.gzip / 1024).toFixed(1).padStart(5)}  ${s.build}`);
  const get = (/** @type {string} */ impl) => sizes.find((s) => s.impl === impl && s.build.startsWith("wrangler"));
  const o = get("ours");
  const m = get("mqtt-packet");
  if (o && m) console.log(`  as shipped by wrangler: ours is ${((100 * o.gzip) / m.gzip).toFixed(0)}% of mqtt-packet gzipped`);
}

// wrangler runs in this process and needs Node >= 22.12: re-run with the bundled Node if needed.
if (nodeBinary() !== process.execPath) {
  const child = spawn(nodeBinary(), [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  child.on("exit", (code) => process.exit(code ?? 1));
} else {
  await main();
}
