// Client processes of the benchmarks: forked bench/client-worker.mjs children driven over IPC,
// and the codec bundle they import. Shared by bench/run.mjs and bench/profile/run.mjs.
import { fork } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeBinary, ROOT } from "../../scripts/broker-process.mjs";

const BENCH = join(dirname(fileURLToPath(import.meta.url)), "..");
const CACHE = join(ROOT, "node_modules", ".cache", "bench-broker");

/** @typedef {{ name: string, child: import("node:child_process").ChildProcess, call: (op: string, a?: any) => Promise<any> }} Worker */

/** @param {string} name @param {string} codecPath @returns {Promise<Worker>} */
export function startWorker(name, codecPath) {
  const child = fork(join(BENCH, "client-worker.mjs"), [], {
    execPath: nodeBinary(),
    env: { ...process.env, BENCH_CODEC: codecPath },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let seq = 0;
  /** @type {Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>} */
  const waiting = new Map();
  /** @type {() => void} */
  let ready = () => {};
  const readyP = new Promise((/** @type {(v?: unknown) => void} */ r) => (ready = r));
  child.on("message", (/** @type {any} */ m) => {
    if (m.ready) return ready();
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.ok) w?.resolve(m.result);
    else w?.reject(new Error(`worker ${name}: ${m.error}`));
  });
  child.on("exit", (code) => {
    for (const w of waiting.values()) w.reject(new Error(`worker ${name} exited (${code})`));
    waiting.clear();
  });
  const call = (/** @type {string} */ op, /** @type {any} */ a = {}) =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      waiting.set(id, { resolve, reject });
      child.send({ id, op, args: a });
    });
  return readyP.then(() => ({ name, child, call }));
}

/** Bundles core/mqtt/codec for Node (the children import it). */
export async function bundleCodec() {
  const { build } = await import("esbuild");
  mkdirSync(CACHE, { recursive: true });
  const outfile = join(CACHE, "codec.mjs");
  await build({ entryPoints: [join(ROOT, "core", "mqtt", "codec", "index.ts")], bundle: true, platform: "node", format: "esm", outfile, logLevel: "warning" });
  return outfile;
}
