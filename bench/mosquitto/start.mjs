#!/usr/bin/env node
// Mosquitto for the bench, side by side with the broker: Debian's /usr/sbin/mosquitto (or
// MOSQUITTO=path) with bench/mosquitto/mosquitto.conf, listening on a free port of 127.0.0.1
// (plain TCP: Debian's build has no WebSockets), in a temporary directory removed on stop.
//
//   node bench/mosquitto/start.mjs [--port N] [--conf "line;line"]
//       starts it, prints its URL and pid, runs until Ctrl-C; then e.g. in another shell:
//   npm run bench -- --url mqtt://127.0.0.1:N --pid PID
//
// `npm run bench -- --mosquitto [--mosquitto-conf "line;line"]` starts it itself
// (startMosquitto below) and runs every scenario on it right after the broker's, in the same
// session. `--conf` / `--mosquitto-conf`: configuration lines appended to mosquitto.conf
// (a later line wins), e.g. "max_queued_messages 0;max_queued_bytes 0" for no queue bound.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { argFromArgs, getFreePort, HOST } from "../../scripts/broker-process.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
export const MOSQUITTO_BINARY = process.env.MOSQUITTO ?? "/usr/sbin/mosquitto";
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/** The first line of `mosquitto -h` ("mosquitto version 2.0.11"), or undefined when absent. */
export function mosquittoVersion(binary = MOSQUITTO_BINARY) {
  if (!existsSync(binary)) return undefined;
  return new Promise((resolve) => {
    const child = spawn(binary, ["-h"], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    for (const s of [child.stdout, child.stderr]) s.on("data", (c) => (text += String(c)));
    child.on("error", () => resolve(undefined));
    child.on("exit", () => resolve(/mosquitto version (\S+)/.exec(text)?.[1]));
  });
}

/** Resolves once a TCP connection to port succeeds. @param {number} port @param {() => boolean} exited */
async function waitForListener(port, exited, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !exited()) {
    const ok = await new Promise((resolve) => {
      const s = connect({ host: HOST, port }, () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(exited() ? "mosquitto exited before it listened" : `mosquitto did not listen on ${port} within ${timeoutMs} ms`);
}

/**
 * Starts Mosquitto with bench/mosquitto/mosquitto.conf on `port` (a free one by default),
 * with `extra` configuration lines appended.
 * @param {{ port?: number, extra?: string[], onOutput?: (chunk: string) => void }} [o]
 * @returns {Promise<{ url: string, port: number, pid: number, config: string, stop: () => Promise<void>, log: () => string }>}
 */
export async function startMosquitto({ port, extra = [], onOutput } = {}) {
  if (!existsSync(MOSQUITTO_BINARY)) throw new Error(`${MOSQUITTO_BINARY} not found (apt-get install mosquitto, or MOSQUITTO=path)`);
  const p = port ?? (await getFreePort());
  const dir = mkdtempSync(join(tmpdir(), "edge-mqtt-bench-mosquitto-"));
  const config = join(dir, "mosquitto.conf");
  const added = extra.map((l) => l.trim()).filter(Boolean);
  writeFileSync(config, `listener ${p} ${HOST}\n${readFileSync(join(HERE, "mosquitto.conf"), "utf8")}${added.length ? `\n# added for this run\n${added.join("\n")}\n` : ""}`);
  const child = spawn(MOSQUITTO_BINARY, ["-c", config], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  let exited = false;
  /** @type {Promise<void>} */
  const exit = new Promise((resolve) => child.on("exit", () => ((exited = true), resolve())));
  child.on("error", (e) => {
    log += `spawn: ${e.message}\n`;
    exited = true;
  });
  for (const s of [child.stdout, child.stderr]) {
    s.setEncoding("utf8");
    s.on("data", (c) => {
      log = (log + c).slice(-20_000);
      onOutput?.(String(c));
    });
  }
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      await Promise.race([exit, sleep(5_000)]);
      if (!exited) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForListener(p, () => exited);
  } catch (e) {
    await stop();
    throw new Error(`${e instanceof Error ? e.message : e}\n--- mosquitto output ---\n${log}`);
  }
  return { url: `mqtt://${HOST}:${p}`, port: p, pid: /** @type {number} */ (child.pid), config, stop, log: () => log };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const portArg = argFromArgs("--port");
  const m = await startMosquitto({ ...(portArg ? { port: Number(portArg) } : {}), extra: (argFromArgs("--conf") ?? "").split(";"), onOutput: (c) => process.stderr.write(c) });
  console.log(`mosquitto ${(await mosquittoVersion()) ?? "?"} on ${m.url} (pid ${m.pid}, config ${m.config})`);
  console.log(`  npm run bench -- --url ${m.url} --pid ${m.pid}`);
  const end = async () => {
    await m.stop();
    process.exit(0);
  };
  process.on("SIGINT", end);
  process.on("SIGTERM", end);
}
