#!/usr/bin/env node
// `npm run bench:runtime`: CPU per relayed WebSocket message of a bare relay Durable Object
// (bench/runtime/relay-worker.ts) under each way of running workerd locally. Prints a table,
// writes bench/results/runtime.json.
//
// Modes (all started from bench/runtime/wrangler.toml, state in fresh temp dirs):
//   wrangler     `wrangler dev` with the arguments scripts/broker-process.mjs uses and
//                wrangler's defaults (local observability on): what `npm start` ran before
//   wrangler-lean  the same with LEAN_DEV_ENV (X_LOCAL_OBSERVABILITY=false
//                X_LOCAL_EXPLORER=false): `npm start -- --runtime wrangler` now
//   local        scripts/local-runtime.mjs: Miniflare's API, the wrangler bundle, no dev layer
//   local+obs    the same with Miniflare's local observability (trace collector fed by a
//                streaming tail of every invocation), which wrangler dev turns on by default
//   local+insp   local with workerd's inspector port open (nothing attached)
//   local+proxy  local behind a second workerd whose Worker passes every request on with
//                fetch(), as wrangler's ProxyWorker does (the WebSocket is then relayed by
//                both processes)
//   workerd      `workerd serve` on a hand-written config (Durable Object SQLite on disk,
//                no Miniflare services): the floor
//
// CPU = utime + stime from /proc/<pid>/stat, summed over every process of the mode's process
// group (launcher, workerd(s), esbuild), read before and after a batch of messages; also split by
// process name. All modes run side by side; batches alternate between modes in rounds, and
// the figure per mode is the median over rounds, so ratios come from one run on one machine.
//
// Options: --quick (fewer, smaller batches), --messages=N (per batch), --rounds=R,
//          --clients=K, --modes=a,b,c, --scenario=echo|forward|both
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { brokerEnv, devArgs, getFreePort, HOST, LEAN_DEV_ENV, nodeBinary, ROOT, runWrangler, waitForHealth } from "../../scripts/broker-process.mjs";
import { startLocalRuntime } from "../../scripts/local-runtime.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const CONFIG = join(HERE, "wrangler.toml");
const OUT = join(ROOT, "bench", "results", "runtime.json");
const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
// wrangler's own workerd (the one `wrangler dev` and scripts/local-runtime.mjs run), which
// may be newer than the top-level node_modules/workerd.
const fromWrangler = createRequire(createRequire(join(ROOT, "package.json")).resolve("wrangler/package.json"));
/** @type {string} */
const WORKERD = fromWrangler("workerd").default;
const CLK_TCK = 100; // Linux USER_HZ (getconf CLK_TCK)
const PAYLOAD = Buffer.alloc(64, 7);

/** @typedef {{ name: string, httpUrl: string, port: number, pgid: number, startMs: number, stop: () => Promise<void> }} Runtime */

async function main() {
  const args = process.argv.slice(2);
  const opt = (/** @type {string} */ name, /** @type {string} */ dflt) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt;
  const quick = args.includes("--quick");
  const messages = Number(opt("messages", quick ? "5000" : "20000"));
  const rounds = Number(opt("rounds", quick ? "3" : "5"));
  const clients = Number(opt("clients", "4"));
  const window = 16;
  const modes = opt("modes", "wrangler,wrangler-lean,local,local+obs,local+insp,local+proxy,workerd").split(",");
  const scenarios = opt("scenario", "both") === "both" ? ["echo", "forward"] : [opt("scenario", "echo")];
  if (process.platform !== "linux") throw new Error("reads /proc: Linux only");

  const meta = environment();
  console.log(`runtime bench: ${meta.cpus}x ${meta.cpuModel}, wrangler ${meta.wrangler}, miniflare ${meta.miniflare}, workerd ${meta.workerd}`);
  console.log(`${clients} clients, ${messages} messages per batch, window ${window} per client, ${rounds} rounds\n`);

  const work = mkdtempSync(join(tmpdir(), "edge-mqtt-bench-runtime-"));
  /** @type {Runtime[]} */
  const runtimes = [];
  const cleanup = async () => {
    for (const r of runtimes.splice(0)) await r.stop().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  };
  process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
  try {
    // Started one after another, so the start-up times do not compete for the 2 cores.
    /** @type {Map<string, Runtime>} */
    const upstream = new Map();
    for (const mode of modes) {
      process.stderr.write(`starting ${mode}... `);
      const r = await startMode(mode, work, upstream);
      runtimes.push(r);
      upstream.set(mode, r);
      process.stderr.write(`${r.startMs} ms\n`);
    }
    // local+proxy's group holds only the proxy; its upstream is the `local` runtime, so its
    // cost is the proxy's CPU plus local's CPU during the same batch.
    const checks = await persistenceCheck(runtimes);

    /** @type {Record<string, Record<string, { cpuMsPerMsg: number[], byProcess: Record<string, number>[], wallMs: number[], idleMsPerS: number }>>} */
    const samples = {};
    for (const scenario of scenarios) {
      samples[scenario] = {};
      for (const r of runtimes) {
        // Warm-up (JIT, object creation) and the idle rate: CPU per second with nothing to do.
        await batch(r, scenario, clients, Math.min(messages, 1000), window);
        const before = groupCpu(r.pgid, labelPort(r));
        const started = Date.now();
        await new Promise((res) => setTimeout(res, quick ? 1000 : 2000));
        const idle = ticksToMs(sum(groupCpu(r.pgid, labelPort(r))) - sum(before)) / ((Date.now() - started) / 1000);
        /** @type {any} */ (samples[scenario])[r.name] = { cpuMsPerMsg: [], byProcess: [], wallMs: [], idleMsPerS: idle };
      }
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 ? [...runtimes].reverse() : runtimes;
        for (const r of order) {
          const groups = r.name === "local+proxy" ? [r.pgid, /** @type {Runtime} */ (upstream.get("local")).pgid] : [r.pgid];
          const sockets = await openRoom(r, scenario, clients);
          const before = groups.map((g) => groupCpu(g, labelPort(r)));
          const t0 = process.hrtime.bigint();
          await relay(sockets, scenario, messages, window);
          const wall = Number(process.hrtime.bigint() - t0) / 1e6;
          const after = groups.map((g) => groupCpu(g, labelPort(r)));
          await closeAll(sockets);
          /** @type {Record<string, number>} */
          const byProcess = {};
          after.forEach((a, i) => {
            const tag = i === 0 ? "" : "upstream ";
            for (const [k, v] of Object.entries(a)) byProcess[tag + k] = (byProcess[tag + k] ?? 0) + ticksToMs(v - (before[i]?.[k] ?? 0)) / messages;
          });
          const s = /** @type {any} */ (samples[scenario])[r.name];
          s.cpuMsPerMsg.push(Object.values(byProcess).reduce((x, y) => x + y, 0));
          s.byProcess.push(byProcess);
          s.wallMs.push(wall / messages);
        }
        process.stderr.write(`${scenario} round ${round + 1}/${rounds}\n`);
      }
    }

    const results = summarize(samples, runtimes);
    printTable(results);
    mkdirSync(dirname(OUT), { recursive: true });
    const json = {
      date: new Date().toISOString(),
      environment: meta,
      options: { clients, messages, rounds, window, payloadBytes: PAYLOAD.length },
      method:
        "CPU (utime+stime, /proc/<pid>/stat, 10 ms ticks) of every process in the mode's process group over one batch, per message sent by a client; median over rounds; batches alternate between modes. ratio = mode / workerd (or / local when workerd is not run).",
      startMs: Object.fromEntries(runtimes.map((r) => [r.name, r.startMs])),
      persistence: checks,
      results,
    };
    writeFileSync(OUT, `${JSON.stringify(json, null, 2)}\n`);
    console.log(`\nwrote ${OUT}`);
  } finally {
    await cleanup();
  }
}

/**
 * @param {string} mode
 * @param {string} work
 * @param {Map<string, Runtime>} started
 * @returns {Promise<Runtime>}
 */
async function startMode(mode, work, started) {
  const port = await getFreePort();
  const persistTo = mkdtempSync(join(work, `${mode.replace(/\W/g, "_")}-`));
  const t0 = Date.now();
  let log = "";
  const onOutput = (/** @type {string} */ c) => {
    log += c;
    if (process.env.BENCH_LOG) process.stderr.write(c);
  };
  try {
    if (mode === "local" || mode === "local+insp" || mode === "local+obs") {
      const inspectorPort = mode === "local+insp" ? await getFreePort() : undefined;
      const rt = await startLocalRuntime({ port, persistTo, configPath: CONFIG, onOutput, observability: mode === "local+obs", ...(inspectorPort ? { inspectorPort } : {}) });
      return { name: mode, httpUrl: rt.httpUrl, port, pgid: rt.pid, startMs: Date.now() - t0, stop: rt.stop };
    }
    if (mode === "wrangler" || mode === "wrangler-lean") {
      const inspectorPort = await getFreePort();
      const child = spawn(nodeBinary(), [WRANGLER, ...devArgs({ port, persistTo, inspectorPort, configPath: CONFIG })], {
        cwd: ROOT,
        env: brokerEnv(mode === "wrangler-lean" ? LEAN_DEV_ENV : {}),
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      return await launched(mode, child, port, t0, onOutput);
    }
    if (mode === "workerd") {
      const config = await workerdConfig(work, persistTo, port);
      const child = spawn(WORKERD, ["serve", "--experimental", config], { cwd: work, stdio: ["ignore", "pipe", "pipe"], detached: true });
      return await launched(mode, child, port, t0, onOutput);
    }
    if (mode === "local+proxy") {
      const target = started.get("local");
      if (!target) throw new Error("local+proxy needs the local mode started before it");
      const config = proxyConfig(work, port, target.httpUrl);
      const child = spawn(WORKERD, ["serve", "--experimental", config], { cwd: work, stdio: ["ignore", "pipe", "pipe"], detached: true });
      return await launched(mode, child, port, t0, onOutput);
    }
    throw new Error(`unknown mode ${mode}`);
  } catch (err) {
    throw new Error(`${mode}: ${err instanceof Error ? err.message : err}\n${log}`);
  }
}

/**
 * @param {string} name
 * @param {import("node:child_process").ChildProcess} child
 * @param {number} port
 * @param {number} t0
 * @param {(chunk: string) => void} onOutput
 * @returns {Promise<Runtime>}
 */
async function launched(name, child, port, t0, onOutput) {
  for (const s of [child.stdout, child.stderr]) s?.on("data", (c) => onOutput(String(c)));
  const pid = /** @type {number} */ (child.pid);
  const exited = new Promise((res) => child.on("exit", res));
  const stop = async () => {
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    await exited;
    clearTimeout(timer);
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  };
  const httpUrl = `http://${HOST}:${port}`;
  try {
    await waitForHealth(`${httpUrl}/health`, exited, 90_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, httpUrl, port, pgid: pid, startMs: Date.now() - t0, stop };
}

/**
 * workerd config for the relay: the wrangler bundle, a SQLite-backed Durable Object
 * namespace on a disk directory, one HTTP socket. No D1 (see docs/local-runtime.md).
 * @param {string} work
 * @param {string} persistTo
 * @param {number} port
 */
async function workerdConfig(work, persistTo, port) {
  const bundle = join(work, "workerd-bundle");
  await runWrangler(["deploy", "--dry-run", "--outdir", bundle, "--config", CONFIG], { stdio: "ignore" });
  const { unstable_readConfig } = await import("wrangler");
  /** @type {{ name?: string, compatibility_date?: string, compatibility_flags: string[], durable_objects: { bindings: { name: string, class_name: string }[] } }} */
  const cfg = unstable_readConfig({ config: CONFIG });
  const modules = readdirSync(bundle).filter((f) => f.endsWith(".js"));
  const doDir = join(persistTo, "do");
  mkdirSync(doDir, { recursive: true });
  const classes = cfg.durable_objects.bindings.map((b) => b.class_name);
  const text = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "do-disk", disk = (path = ${JSON.stringify(doDir)}, writable = true)),
  ],
  sockets = [(name = "http", address = "${HOST}:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [${modules.map((m) => `(name = ${JSON.stringify(m)}, esModule = embed ${JSON.stringify(`workerd-bundle/${m}`)})`).join(", ")}],
  compatibilityDate = ${JSON.stringify(cfg.compatibility_date)},
  compatibilityFlags = [${cfg.compatibility_flags.map((f) => JSON.stringify(f)).join(", ")}],
  bindings = [${cfg.durable_objects.bindings.map((b) => `(name = ${JSON.stringify(b.name)}, durableObjectNamespace = ${JSON.stringify(b.class_name)})`).join(", ")}],
  durableObjectNamespaces = [${classes.map((c) => `(className = ${JSON.stringify(c)}, uniqueKey = ${JSON.stringify(`${cfg.name}-${c}`)}, enableSql = true)`).join(", ")}],
  durableObjectStorage = (localDisk = "do-disk"),
);
`;
  const file = join(work, "relay.capnp");
  writeFileSync(file, text);
  return file;
}

/**
 * A second workerd in front of `target`: every request (WebSocket upgrades included) goes
 * on with fetch(), the way wrangler's ProxyWorker forwards to the user Worker.
 * @param {string} work
 * @param {number} port
 * @param {string} target
 */
function proxyConfig(work, port, target) {
  const script = join(work, "proxy.js");
  writeFileSync(
    script,
    `export default {
  async fetch(request) {
    const url = new URL(request.url);
    const inner = new URL(url.pathname + url.search, ${JSON.stringify(target)});
    const res = await fetch(inner, new Request(request, { headers: new Headers(request.headers) }));
    return new Response(res.body, res);
  },
};
`,
  );
  const file = join(work, "proxy.capnp");
  writeFileSync(
    file,
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "proxy", worker = (modules = [(name = "proxy.js", esModule = embed "proxy.js")], compatibilityDate = "2026-11-01")),
    (name = "internet", network = (allow = ["private", "local"])),
  ],
  sockets = [(name = "http", address = "${HOST}:${port}", http = (), service = "proxy")],
);
`,
  );
  return file;
}

/**
 * Opens `clients` sockets to one room and relays `messages` messages through it: in echo,
 * each message comes back to its sender; in forward, it goes to every other client. At most
 * `window` messages per client are in flight.
 * @param {Runtime} r
 * @param {string} scenario
 * @param {number} clients
 * @param {number} messages
 * @param {number} window
 */
async function batch(r, scenario, clients, messages, window) {
  const sockets = await openRoom(r, scenario, clients);
  await relay(sockets, scenario, messages, window);
  await closeAll(sockets);
}

/**
 * @param {Runtime} r
 * @param {string} scenario
 * @param {number} clients
 */
async function openRoom(r, scenario, clients) {
  const room = `${scenario}-${r.name}`;
  const url = `${r.httpUrl.replace("http", "ws")}/ws?room=${encodeURIComponent(room)}&mode=${scenario}`;
  const sockets = await Promise.all(
    Array.from({ length: clients }, () => {
      const ws = new WebSocket(url);
      ws.binaryType = "nodebuffer";
      return new Promise((/** @type {(ws: WebSocket) => void} */ res, rej) => {
        ws.once("open", () => res(ws));
        ws.once("error", rej);
      });
    }),
  );
  return sockets;
}

/**
 * @param {WebSocket[]} sockets
 * @param {string} scenario
 * @param {number} messages
 * @param {number} window
 */
async function relay(sockets, scenario, messages, window) {
  const clients = sockets.length;
  const perClient = Math.ceil(messages / clients);
  const total = perClient * clients;
  const fanout = scenario === "echo" ? 1 : clients - 1;
  const expected = total * fanout;
  let received = 0;
  let sent = 0;
  /** @type {() => void} */
  let done = () => {};
  const finished = new Promise((/** @type {(v?: void) => void} */ res) => (done = res));
  // Senders take turns; at most window x clients messages are in flight (sent, not yet
  // delivered to all their recipients).
  const pump = () => {
    while (sent < total && sent - Math.floor(received / fanout) < window * clients) {
      /** @type {WebSocket} */ (sockets[sent % clients]).send(PAYLOAD);
      sent++;
    }
  };
  for (const ws of sockets) {
    ws.on("message", () => {
      received++;
      if (received >= expected) done();
      else pump();
    });
  }
  pump();
  const timer = setTimeout(() => done(), 120_000);
  await finished;
  clearTimeout(timer);
  for (const ws of sockets) ws.removeAllListeners("message");
  if (received < expected) throw new Error(`${scenario}: ${received}/${expected} messages arrived`);
}

/** @param {WebSocket[]} sockets */
async function closeAll(sockets) {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise((res) => {
          ws.once("close", res);
          ws.close();
        }),
    ),
  );
}

/** @type {Map<string, string>} */
const cmdlines = new Map();

/**
 * wrangler dev runs two workerd processes (the ProxyWorker's and the user Worker's): name them apart.
 * @param {Runtime} r
 */
function labelPort(r) {
  return r.name.startsWith("wrangler") ? r.port : undefined;
}

/**
 * CPU ticks of every process in process group `pgid`, by process name. A workerd serving
 * `publicPort` while another workerd of the group does not (wrangler dev) is "workerd proxy",
 * the other "workerd user".
 * @param {number} pgid
 * @param {number} [publicPort]
 * @returns {Record<string, number>}
 */
function groupCpu(pgid, publicPort) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const f = stat.slice(close + 2).split(" ");
    if (Number(f[2]) !== pgid) continue;
    let name = comm.startsWith("workerd") ? "workerd" : comm;
    if (name === "workerd" && publicPort !== undefined) {
      if (!cmdlines.has(entry)) {
        try {
          cmdlines.set(entry, readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " "));
        } catch {
          cmdlines.set(entry, "");
        }
      }
      const cmd = cmdlines.get(entry) ?? "";
      if (cmd.includes(`--socket-addr=entry=${HOST}:${publicPort} `)) name = "workerd proxy";
      else name = "workerd user";
    }
    out[name] = (out[name] ?? 0) + Number(f[11]) + Number(f[12]);
  }
  return out;
}

/** @param {Record<string, number>} cpu */
function sum(cpu) {
  return Object.values(cpu).reduce((a, b) => a + b, 0);
}

/** @param {number} ticks */
function ticksToMs(ticks) {
  return (ticks * 1000) / CLK_TCK;
}

/** @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? /** @type {number} */ (s[m]) : (/** @type {number} */ (s[m - 1]) + /** @type {number} */ (s[m])) / 2;
}

/**
 * Each mode's workerd must persist Durable Object SQLite across a request (the relay's
 * /sql counter): a sanity check that every mode runs the same storage.
 * @param {Runtime[]} runtimes
 */
async function persistenceCheck(runtimes) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const r of runtimes) {
    const a = await (await fetch(`${r.httpUrl}/sql?room=check`)).json();
    const b = await (await fetch(`${r.httpUrl}/sql?room=check`)).json();
    out[r.name] = { first: a, second: b };
  }
  return out;
}

/**
 * @param {Record<string, Record<string, { cpuMsPerMsg: number[], byProcess: Record<string, number>[], wallMs: number[], idleMsPerS: number }>>} samples
 * @param {Runtime[]} runtimes
 */
function summarize(samples, runtimes) {
  const names = runtimes.map((r) => r.name);
  const base = names.includes("workerd") ? "workerd" : names.includes("local") ? "local" : names[0];
  return Object.fromEntries(
    Object.entries(samples).map(([scenario, byMode]) => {
      const baseCpu = median(/** @type {any} */ (byMode)[/** @type {string} */ (base)].cpuMsPerMsg);
      const rows = Object.fromEntries(
        Object.entries(byMode).map(([mode, s]) => {
          const cpu = median(s.cpuMsPerMsg);
          /** @type {Record<string, number>} */
          const byProcess = {};
          for (const key of new Set(s.byProcess.flatMap((p) => Object.keys(p)))) byProcess[key] = round3(median(s.byProcess.map((p) => p[key] ?? 0)));
          return [
            mode,
            {
              cpuMsPerMsg: round3(cpu),
              ratio: Math.round((cpu / baseCpu) * 100) / 100,
              spread: round3(Math.max(...s.cpuMsPerMsg) - Math.min(...s.cpuMsPerMsg)),
              byProcess,
              wallMsPerMsg: round3(median(s.wallMs)),
              idleCpuMsPerS: round3(s.idleMsPerS),
            },
          ];
        }),
      );
      return [scenario, { base, rows }];
    }),
  );
}

/** @param {number} x */
function round3(x) {
  return Math.round(x * 1000) / 1000;
}

/** @param {ReturnType<typeof summarize>} results */
function printTable(results) {
  for (const [scenario, { base, rows }] of Object.entries(results)) {
    console.log(`\n${scenario}: CPU ms per message (median), ratio to ${base}`);
    console.log(`${"mode".padEnd(13)} ${"cpu ms/msg".padStart(10)} ${"ratio".padStart(6)}  by process`);
    for (const [mode, row] of Object.entries(rows)) {
      const parts = Object.entries(row.byProcess)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v.toFixed(3)}`)
        .join(", ");
      console.log(`${mode.padEnd(13)} ${row.cpuMsPerMsg.toFixed(3).padStart(10)} ${row.ratio.toFixed(2).padStart(6)}  ${parts}`);
    }
  }
}

function environment() {
  const version = (/** @type {string} */ pkg) => JSON.parse(readFileSync(join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version;
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: readFileSync("/proc/version", "utf8").split(" ").slice(0, 3).join(" "),
    node: process.version,
    wrangler: version("wrangler"),
    miniflare: JSON.parse(readFileSync(fromWrangler.resolve("miniflare/package.json"), "utf8")).version,
    workerd: JSON.parse(readFileSync(fromWrangler.resolve("workerd/package.json"), "utf8")).version,
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
