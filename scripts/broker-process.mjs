// How the broker runs locally on workerd: one place for the wrangler
// arguments and the no-network environment, shared by `npm start`,
// `npm run dev`, the e2e tests and the benchmark.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_PORT = 8787;
export const HOST = "127.0.0.1";
/** Wrangler's default local state directory (what `--persist-to` defaults to). */
export const DEFAULT_PERSIST_TO = join(ROOT, ".wrangler", "state");

const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

/**
 * Environment that keeps wrangler and miniflare off the network. Each switch
 * was found in the wrangler 4.164 / miniflare 5 sources and checked with
 * `strace -f -e trace=connect`: without them `wrangler dev` resolves DNS and
 * opens TCP :443 connections; with them it connects to loopback only.
 */
export const NO_NETWORK_ENV = Object.freeze({
  // Usage metrics. `send_metrics = false` in wrangler.toml alone did not stop
  // the metrics DNS lookup in `wrangler dev`; the env var (or DO_NOT_TRACK) does.
  WRANGLER_SEND_METRICS: "false",
  // Sentry error reports.
  WRANGLER_SEND_ERROR_REPORTS: "false",
  // Miniflare would fetch https://workers.cloudflare.com/cf.json for Request.cf;
  // "false" makes it use its built-in placeholder object.
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  // The banner runs the update check (GET registry.npmjs.org/wrangler); no banner, no check.
  WRANGLER_HIDE_BANNER: "true",
  // Non-interactive: `d1 migrations apply` does not prompt, no hotkeys.
  CI: "true",
  // Honoured by wrangler's metrics opt-out as well.
  DO_NOT_TRACK: "1",
});

/**
 * `wrangler dev` extras that are on by default in wrangler 4.164 and that a broker run
 * does not need: the local observability trace collector (a streaming tail of every
 * invocation into a SQLite Durable Object: most of wrangler dev's CPU per WebSocket
 * message, see docs/local-runtime.md) and the local explorer UI. `npm run dev` keeps them.
 */
export const LEAN_DEV_ENV = Object.freeze({
  X_LOCAL_OBSERVABILITY: "false",
  X_LOCAL_EXPLORER: "false",
});

/** @typedef {"local" | "wrangler"} Runtime */
/** Runtimes `startBroker` knows; `local` is scripts/local-runtime.mjs (Miniflare's API). */
export const RUNTIMES = /** @type {const} */ (["local", "wrangler"]);

/**
 * The runtime `startBroker` uses when none is given: EDGE_MQTT_RUNTIME, else `local`.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {Runtime}
 */
export function defaultRuntime(env = process.env) {
  return parseRuntime(env.EDGE_MQTT_RUNTIME ?? "local");
}

/**
 * @param {string} value
 * @returns {Runtime}
 */
export function parseRuntime(value) {
  if (value === "local" || value === "wrangler") return value;
  throw new Error(`unknown runtime: ${value} (expected ${RUNTIMES.join(" or ")})`);
}

/**
 * The Node binary to run wrangler with: wrangler needs Node >= 22.12; the
 * `node` dev dependency ships one in node_modules.
 */
export function nodeBinary() {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 12)) return process.execPath;
  const bundled = join(ROOT, "node_modules", "node", "bin", "node");
  if (existsSync(bundled)) return bundled;
  throw new Error(`wrangler needs Node >= 22.12 (this is ${process.version}); run \`npm ci\` first`);
}

/**
 * @param {Record<string, string>} [extra]
 * @returns {NodeJS.ProcessEnv}
 */
export function brokerEnv(extra = {}) {
  return { ...process.env, ...NO_NETWORK_ENV, ...extra };
}

/**
 * Runs `wrangler <args>` to completion with the no-network env; rejects on a non-zero exit.
 * @param {string[]} args
 * @param {{ stdio?: Stdio, onOutput?: OnOutput, env?: Record<string, string> }} [options]
 * @returns {Promise<void>}
 */
export function runWrangler(args, { stdio = "inherit", onOutput, env = {} } = {}) {
  return new Promise((/** @type {(value?: void) => void} */ resolvePromise, reject) => {
    const child = spawn(nodeBinary(), [WRANGLER, ...args], {
      cwd: ROOT,
      env: brokerEnv(env),
      stdio: ["ignore", ...childStdio(stdio, onOutput)],
    });
    forwardOutput(child, onOutput);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`wrangler ${args.join(" ")} exited with ${signal ?? code}`));
    });
  });
}

/**
 * Applies D1 migrations from migrations/ to the local database under `persistTo`.
 * @param {{ persistTo?: string, stdio?: Stdio, onOutput?: OnOutput }} [options]
 */
export function applyMigrations({ persistTo = DEFAULT_PERSIST_TO, stdio = "inherit", onOutput } = {}) {
  const args = ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo];
  return runWrangler(args, { stdio, ...(onOutput ? { onOutput } : {}) });
}

/**
 * Arguments of `wrangler dev` for a local, offline broker.
 * @param {{ port?: number, persistTo?: string, inspectorPort?: number, configPath?: string,
 *           vars?: Record<string, string>, envFile?: string, https?: { keyFile: string, certFile: string } }} [options]
 *   `https`: serve https/wss with that key and certificate (scripts/tls.mjs) instead of http/ws.
 */
export function devArgs({ port = DEFAULT_PORT, persistTo = DEFAULT_PERSIST_TO, inspectorPort, configPath, vars = {}, envFile, https } = {}) {
  return [
    "dev",
    // Another Worker than the broker (e.g. the benchmark's relay); default: ./wrangler.toml.
    ...(configPath !== undefined ? ["--config", configPath] : []),
    "--local",
    "--ip", HOST,
    "--port", String(port),
    "--persist-to", persistTo,
    "--inspector-ip", HOST,
    // An explicit port: two brokers started at once (tests, benchmarks) would both try 9229.
    ...(inspectorPort !== undefined ? ["--inspector-port", String(inspectorPort)] : []),
    "--show-interactive-dev-session=false",
    "--enable-containers=false",
    ...(https ? ["--local-protocol", "https", "--https-key-path", https.keyFile, "--https-cert-path", https.certFile] : []),
    // Secrets from another file than .dev.vars next to wrangler.toml. It must exist: Node
    // itself also takes `--env-file` from wrangler's argv, and exits on a missing file.
    ...(envFile !== undefined ? ["--env-file", envFile] : []),
    // [vars] overridden for this run (e.g. a short CONNECT_TIMEOUT in a test).
    ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
  ];
}

/** @typedef {"inherit" | "ignore"} Stdio */
/** @typedef {(chunk: string) => void} OnOutput receives wrangler's stdout and stderr (then `stdio` is ignored) */

/**
 * @typedef {object} Broker
 * @property {string} url MQTT over WebSocket, e.g. ws://127.0.0.1:8787/mqtt (wss:// with TLS)
 * @property {string} httpUrl e.g. http://127.0.0.1:8787 (https:// with TLS)
 * @property {import("./tls.mjs").TlsFiles} [tls] the CA, certificate and key files, with TLS
 * @property {number} pid wrangler's pid, or the local runtime's serving process (also the process group id)
 * @property {() => Promise<void>} stop
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {import("node:child_process").ChildProcess} child
 * @property {string} [tcpUrl] with `tcpPort`: mqtt://127.0.0.1:<tcpPort>, MQTT over TCP bridged to `url`
 * @property {string} [tcpWarning] with `tcpPort`: why there is no TCP listener (the port was taken)
 */

/**
 * Applies D1 migrations, starts the broker and resolves once /health answers.
 *
 * `runtime` (default: EDGE_MQTT_RUNTIME, else "local"):
 * - "local": workerd through Miniflare's API (scripts/local-runtime.mjs), without
 *   wrangler dev's development layer; `pid` is the serving Node process.
 * - "wrangler": `wrangler dev` (with LEAN_DEV_ENV); `pid` is wrangler's.
 * Either way `pid` is also the process group id (workerd is in it), and `stop()`
 * ends the whole group and resolves when its leader has exited.
 *
 * `vars`: wrangler.toml [vars] to override for this run, e.g. `{ CONNECT_TIMEOUT: "3" }`;
 * they also override what the secrets file (`envFile`, default .dev.vars) sets.
 *
 * `tls`: serve wss:// and https:// (`npm start -- --tls`) with the certificate of
 * scripts/tls.mjs, created on first use under `<persistTo>/tls` (or `tls.dir`) and reused;
 * the health wait trusts that CA only. `broker.tls` names the files (`caFile` for clients).
 *
 * Refuses at once, with a PortInUseError, when something already listens on `port`.
 *
 * `tcpPort`: also listen for MQTT over TCP on HOST:tcpPort, bridged to the broker (bridge/,
 * docs/tcp-bridge.md); `broker.tcpUrl` names it and `stop()` closes it first. Unset or 0: no
 * listener. A port already taken does not stop the broker: `broker.tcpWarning` says so.
 *
 * @param {{ port?: number, persistTo?: string, stdio?: Stdio, onOutput?: OnOutput,
 *           startTimeoutMs?: number, migrate?: boolean, configPath?: string,
 *           runtime?: Runtime, vars?: Record<string, string>, envFile?: string,
 *           tls?: boolean | { dir?: string }, tcpPort?: number }} [options]
 * @returns {Promise<Broker>}
 */
export async function startBroker({ tcpPort, ...options } = {}) {
  const broker = await startRuntime(options);
  if (!tcpPort) return broker;
  const tcp = await startLocalTcpListener({
    brokerUrl: broker.url,
    port: tcpPort,
    ...(broker.tls ? { ca: readFileSync(broker.tls.caFile, "utf8") } : {}),
    ...(options.onOutput ? { onOutput: options.onOutput } : {}),
  });
  if ("warning" in tcp) return { ...broker, tcpWarning: tcp.warning };
  const stopRuntime = broker.stop;
  /** @type {Promise<void> | undefined} */
  let stopping;
  const stop = () => (stopping ??= tcp.bridge.close().then(stopRuntime));
  return { ...broker, tcpUrl: tcp.bridge.url, stop };
}

/** `npm start`'s MQTT over TCP port (the standard MQTT port), on loopback only. */
export const DEFAULT_TCP_PORT = 1883;

/**
 * Starts the loopback MQTT TCP listener of a local broker (bridge/bridge.mjs) on HOST:port.
 * A port that is taken (a local Mosquitto on 1883!) is not an error: `warning` is the one line
 * to print, and the broker runs on without TCP. Each connection's open/close line goes to
 * `onOutput` (else stdout), prefixed "tcp ".
 * @param {{ brokerUrl: string, port: number, ca?: string, onOutput?: OnOutput }} options
 * @returns {Promise<{ bridge: import("../bridge/bridge.mjs").Bridge } | { warning: string }>}
 */
export async function startLocalTcpListener({ brokerUrl, port, ca, onOutput }) {
  const { startBridge } = await import("../bridge/bridge.mjs");
  const log = (/** @type {string} */ line) => (onOutput ? onOutput(`tcp ${line}\n`) : console.log(`tcp ${line}`));
  try {
    return { bridge: await startBridge({ broker: brokerUrl, host: HOST, port, log, ...(ca !== undefined ? { ca } : {}) }) };
  } catch (err) {
    const code = /** @type {NodeJS.ErrnoException} */ (err).code;
    if (code === "EADDRINUSE" || code === "EACCES") {
      const why = code === "EADDRINUSE" ? "is in use (a local Mosquitto?)" : "cannot be opened (permission denied)";
      return { warning: `warning: port ${port} ${why}: the MQTT TCP listener is off; --tcp-port N picks another (--no-tcp silences this)` };
    }
    throw err;
  }
}

/**
 * The MQTT TCP port `npm start` listens on: `--tcp-port N`, else MQTT_TCP_PORT, else 1883;
 * 0 (or `--no-tcp`) for none.
 * @param {string[]} [argv]
 * @param {NodeJS.ProcessEnv} [env]
 */
export function tcpPortFromArgs(argv = process.argv.slice(2), env = process.env) {
  if (argv.includes("--no-tcp")) return 0;
  const fromArgs = argFromArgs("--tcp-port", argv);
  if (fromArgs !== undefined) return parsePort(fromArgs);
  return env.MQTT_TCP_PORT ? parsePort(env.MQTT_TCP_PORT) : DEFAULT_TCP_PORT;
}

/**
 * Starts the broker process (either runtime); see startBroker.
 * @param {{ port?: number, persistTo?: string, stdio?: Stdio, onOutput?: OnOutput,
 *           startTimeoutMs?: number, migrate?: boolean, configPath?: string,
 *           runtime?: Runtime, vars?: Record<string, string>, envFile?: string,
 *           tls?: boolean | { dir?: string } }} [options]
 * @returns {Promise<Broker>}
 */
async function startRuntime({
  port = DEFAULT_PORT,
  persistTo = DEFAULT_PERSIST_TO,
  stdio = "inherit",
  onOutput,
  startTimeoutMs = 60_000,
  migrate = true,
  configPath,
  runtime = defaultRuntime(),
  vars = {},
  envFile,
  tls = false,
} = {}) {
  parseRuntime(runtime);
  // Before anything else: otherwise another server on the port answers /health for us.
  await assertPortFree(port);
  const tlsFiles = tls ? await (await import("./tls.mjs")).ensureTlsFiles(tlsDir(persistTo, tls)) : undefined;
  if (migrate) await applyMigrations({ persistTo, stdio, ...(onOutput ? { onOutput } : {}) });

  if (runtime === "local") {
    const { startLocalRuntime } = await import("./local-runtime.mjs");
    const local = await startLocalRuntime({
      port,
      persistTo,
      stdio,
      startTimeoutMs,
      ...(onOutput ? { onOutput } : {}),
      ...(configPath !== undefined ? { configPath } : {}),
      ...(envFile !== undefined ? { envFile } : {}),
      ...(tlsFiles ? { https: tlsFiles } : {}),
      vars,
    });
    return { ...local, ...(tlsFiles ? { tls: tlsFiles } : {}) };
  }

  const inspectorPort = await getFreePort();
  const https = tlsFiles ? { keyFile: tlsFiles.keyFile, certFile: tlsFiles.certFile } : undefined;
  const child = spawn(nodeBinary(), [WRANGLER, ...devArgs({ port, persistTo, inspectorPort, vars, ...(configPath !== undefined ? { configPath } : {}), ...(envFile !== undefined ? { envFile } : {}), ...(https ? { https } : {}) })], {
    cwd: ROOT,
    env: brokerEnv(LEAN_DEV_ENV),
    stdio: ["ignore", ...childStdio(stdio, onOutput)],
    // Own process group, so stop() reaches workerd too and a terminal's Ctrl-C
    // reaches the broker only through us.
    detached: true,
  });
  forwardOutput(child, onOutput);
  const { pid, exited, stop } = supervise(child, "wrangler dev", { signalGroup: true });
  const httpUrl = `${tlsFiles ? "https" : "http"}://${HOST}:${port}`;
  try {
    await waitForHealth(`${httpUrl}/health`, exited, startTimeoutMs, tlsFiles ? { ca: readFileSync(tlsFiles.caFile, "utf8") } : {});
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `${tlsFiles ? "wss" : "ws"}://${HOST}:${port}/mqtt`, httpUrl, pid, stop, exited, child, ...(tlsFiles ? { tls: tlsFiles } : {}) };
}

/**
 * Where the TLS files live: `tls.dir`, else `<persistTo>/tls` (next to wrangler's `v3/`), so
 * each state directory has its own CA and `npm start`'s default is .wrangler/state/tls.
 * @param {string} persistTo
 * @param {true | { dir?: string }} tls
 */
export function tlsDir(persistTo, tls) {
  return tls !== true && tls.dir !== undefined ? resolve(tls.dir) : join(resolve(persistTo), "tls");
}

/**
 * TLS asked for with `--tls` or the TLS environment variable (1, true, yes, on).
 * @param {string[]} [argv]
 * @param {NodeJS.ProcessEnv} [env]
 */
export function tlsFromArgs(argv = process.argv.slice(2), env = process.env) {
  if (argv.includes("--tls")) return true;
  if (argv.includes("--no-tls")) return false;
  return /^(1|true|yes|on)$/i.test((env.TLS ?? "").trim());
}

/**
 * Watches a broker process started in its own process group (`detached`): `exited` resolves
 * when it ends; `stop()` sends SIGTERM (to the group, or to the process alone when it shuts
 * its children down itself), SIGKILLs the group after 10 s or once it has exited (leaving no
 * workerd behind), and runs `cleanup`. If our own process exits first, the group is killed.
 *
 * @param {import("node:child_process").ChildProcess} child
 * @param {string} label
 * @param {{ signalGroup: boolean, cleanup?: () => Promise<void> }} options
 * @returns {{ pid: number, exited: Broker["exited"], stop: () => Promise<void> }}
 */
export function supervise(child, label, { signalGroup, cleanup }) {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${label}`);
  /** @type {Broker["exited"]} */
  const exited = new Promise((resolvePromise) => {
    child.on("exit", (code, signal) => resolvePromise({ code, signal }));
  });
  const kill = (/** @type {number} */ target, /** @type {NodeJS.Signals} */ signal) => {
    try {
      process.kill(target, signal);
    } catch {
      // already gone
    }
  };
  const onExit = () => kill(-pid, "SIGKILL");
  process.on("exit", onExit);
  /** @type {Promise<void> | undefined} */
  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        kill(signalGroup ? -pid : pid, "SIGTERM");
        const timer = setTimeout(() => kill(-pid, "SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      kill(-pid, "SIGKILL"); // stragglers (workerd), if any
      process.off("exit", onExit);
      await cleanup?.();
    })();
    return stopping;
  };
  return { pid, exited, stop };
}

/**
 * Polls `url` until it answers 2xx. An https URL is verified against `ca` (the local CA of
 * scripts/tls.mjs) when given: a certificate that does not verify never counts as healthy.
 * @param {string} url
 * @param {Promise<unknown>} exited
 * @param {number} timeoutMs
 * @param {{ ca?: string }} [options]
 */
export async function waitForHealth(url, exited, timeoutMs, { ca } = {}) {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  exited.then(() => (gone = true));
  /** @type {unknown} */
  let lastError;
  while (Date.now() < deadline) {
    if (gone) throw new Error("the broker process exited before it answered /health");
    try {
      const status = await httpStatus(url, ca);
      if (status >= 200 && status < 300) return;
    } catch (err) {
      lastError = err; // not listening yet (or, with TLS, a certificate that does not verify)
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const why = lastError instanceof Error && /certificate|self.signed|verify/i.test(lastError.message) ? ` (${lastError.message})` : "";
  throw new Error(`broker did not answer ${url} within ${timeoutMs} ms${why}`);
}

/**
 * The status of a GET of `url` (2 s timeout); https verified against `ca` when given.
 * @param {string} url
 * @param {string | undefined} ca
 * @returns {Promise<number>}
 */
function httpStatus(url, ca) {
  return new Promise((resolvePromise, reject) => {
    const request = url.startsWith("https:") ? httpsRequest : httpRequest;
    const req = request(url, { method: "GET", timeout: 2_000, ...(ca !== undefined ? { ca } : {}) }, (res) => {
      res.resume();
      resolvePromise(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Something already listens on the port the broker was asked to use. */
export class PortInUseError extends Error {
  /** @param {number} port */
  constructor(port) {
    super(`port ${port} is in use: another process listens on ${HOST}:${port}. Stop it, or start the broker on another port (--port N or PORT=N).`);
    this.name = "PortInUseError";
    this.port = port;
  }
}

/**
 * Resolves when `port` can be listened on at HOST right now (by binding it and letting go);
 * rejects with PortInUseError when it is taken (EADDRINUSE), or the bind error otherwise.
 * @param {number} port
 * @returns {Promise<void>}
 */
export function assertPortFree(port) {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", (/** @type {NodeJS.ErrnoException} */ err) => {
      reject(err.code === "EADDRINUSE" ? new PortInUseError(port) : err);
    });
    server.listen({ port, host: HOST, exclusive: true }, () => server.close(() => resolvePromise()));
  });
}

/**
 * A TCP port free on 127.0.0.1 right now.
 * @returns {Promise<number>}
 */
export function getFreePort() {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePromise(port));
    });
  });
}

/**
 * @param {Stdio} stdio
 * @param {OnOutput | undefined} onOutput
 * @returns {["inherit" | "ignore" | "pipe", "inherit" | "ignore" | "pipe"]}
 */
function childStdio(stdio, onOutput) {
  return onOutput ? ["pipe", "pipe"] : [stdio, stdio];
}

/**
 * @param {import("node:child_process").ChildProcess} child
 * @param {OnOutput | undefined} onOutput
 */
export function forwardOutput(child, onOutput) {
  if (!onOutput) return;
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk) => onOutput(String(chunk)));
  }
}

/**
 * Value of `--name VALUE` / `--name=VALUE` in argv, if present.
 * @param {string} name
 * @param {string[]} [argv]
 * @returns {string | undefined}
 */
export function argFromArgs(name, argv = process.argv.slice(2)) {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === name) return argv[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

/**
 * Broker vars given as `--var NAME=VALUE` (repeatable), for the bench and profiling scripts.
 * @param {string[]} [argv]
 * @returns {Record<string, string>}
 */
export function varsFromArgs(argv = process.argv.slice(2)) {
  /** @type {Record<string, string>} */
  const vars = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const value = arg === "--var" ? argv[i + 1] : arg.startsWith("--var=") ? arg.slice("--var=".length) : undefined;
    if (value === undefined) continue;
    const eq = value.indexOf("=");
    if (eq <= 0) throw new Error(`--var ${value}: expected NAME=VALUE`);
    vars[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return vars;
}

/**
 * Port from `--port N` / `--port=N` or the PORT environment variable.
 * @param {string[]} [argv]
 * @param {NodeJS.ProcessEnv} [env]
 */
export function portFromArgs(argv = process.argv.slice(2), env = process.env) {
  const fromArgs = argFromArgs("--port", argv);
  if (fromArgs !== undefined) return parsePort(fromArgs);
  return env.PORT ? parsePort(env.PORT) : DEFAULT_PORT;
}

/** @param {string | undefined} value */
function parsePort(value) {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port: ${value}`);
  return port;
}
