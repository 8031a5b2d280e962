// The broker on workerd through Miniflare's API, without `wrangler dev`'s
// development layer (the local observability trace collector, its ProxyWorker in
// a second workerd, the inspector proxy, the local explorer, the dev registry,
// live reload): `npm start`'s default runtime. See docs/local-runtime.md for
// what that layer costs per message.
//
// Same inputs as `wrangler dev`: wrangler.toml read by wrangler's own reader
// (`unstable_readConfig` + `unstable_getMiniflareWorkerOptions`, which also
// reads .dev.vars), the Worker bundled by wrangler (`deploy --dry-run`), and
// state under `<persistTo>/v3` in wrangler's layout, so `wrangler d1 migrations
// apply --local --persist-to <persistTo>` and `wrangler dev --persist-to
// <persistTo>` see the same D1 database and Durable Object SQLite files.
//
// Two halves in this file:
//   startLocalRuntime()  (library, in the caller's process) spawns
//                        `node scripts/local-runtime.mjs serve ...` in its own
//                        process group (so stop() and a SIGKILL of the group reach
//                        workerd too) and waits for /health;
//   serve                (that child) bundles with `wrangler deploy --dry-run`, then
//                        runs Miniflare until SIGTERM / SIGINT.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  argFromArgs,
  brokerEnv,
  DEFAULT_PERSIST_TO,
  DEFAULT_PORT,
  HOST,
  nodeBinary,
  ROOT,
  forwardOutput,
  runWrangler,
  supervise,
  waitForHealth,
} from "./broker-process.mjs";

const SELF = fileURLToPath(import.meta.url);
export const DEFAULT_CONFIG = join(ROOT, "wrangler.toml");

/**
 * The Miniflare (and so the workerd) that wrangler itself depends on: wrangler may
 * carry a newer one than the top-level node_modules/miniflare (which belongs to
 * @cloudflare/vitest-plugin). Using wrangler's keeps `npm start`, `npm run dev` and
 * `wrangler d1 migrations apply` on one workerd and one storage format.
 */
export function wranglerMiniflarePath() {
  const fromWrangler = createRequire(createRequire(join(ROOT, "package.json")).resolve("wrangler/package.json"));
  return fromWrangler.resolve("miniflare");
}

/**
 * @typedef {object} LocalRuntime
 * @property {string} url ws://HOST:PORT/mqtt (wss:// with `https`)
 * @property {string} httpUrl http://HOST:PORT (https:// with `https`)
 * @property {number} pid the serving Node process (also its process group id; workerd is in that group)
 * @property {() => Promise<void>} stop
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {import("node:child_process").ChildProcess} child
 */

/**
 * Serves the Worker on workerd through Miniflare's API in a child process group
 * (which first bundles it with wrangler); resolves once /health answers.
 *
 * @param {{ port?: number, persistTo?: string, stdio?: "inherit" | "ignore",
 *           onOutput?: (chunk: string) => void, configPath?: string, inspectorPort?: number,
 *           observability?: boolean, startTimeoutMs?: number, healthPath?: string,
 *           mqttPath?: string, vars?: Record<string, string>, envFile?: string,
 *           https?: { keyFile: string, certFile: string, caFile?: string } }} [options]
 *   `configPath`: the wrangler configuration file (default: the broker's wrangler.toml);
 *   `inspectorPort`: open workerd's DevTools inspector there (default: none);
 *   `observability`: Miniflare's local trace collector, which `wrangler dev` turns on by
 *   default (X_LOCAL_OBSERVABILITY) and which costs most of its CPU per message (default: off);
 *   `vars`: [vars] of the configuration to override, e.g. `{ CONNECT_TIMEOUT: "3" }`;
 *   `envFile`: the secrets file (default: .dev.vars next to the configuration, as wrangler);
 *   `vars` override what it sets;
 *   `https`: serve https/wss (workerd's TLS) with that PEM key and certificate chain instead of
 *   http/ws; the health wait verifies it against `caFile` when given (scripts/tls.mjs's CA).
 * @returns {Promise<LocalRuntime>}
 */
export async function startLocalRuntime({
  port = DEFAULT_PORT,
  persistTo = DEFAULT_PERSIST_TO,
  stdio = "inherit",
  onOutput,
  configPath = DEFAULT_CONFIG,
  inspectorPort,
  observability = false,
  startTimeoutMs = 60_000,
  healthPath = "/health",
  mqttPath = "/mqtt",
  vars = {},
  envFile,
  https,
} = {}) {
  const tmpRoot = join(ROOT, ".wrangler", "tmp");
  await mkdir(tmpRoot, { recursive: true });
  const bundleDir = await mkdtemp(join(tmpRoot, "local-runtime-"));

  const args = [SELF, "serve", "--config", resolve(configPath), "--bundle", bundleDir, "--port", String(port), "--persist-to", resolve(persistTo)];
  if (inspectorPort !== undefined) args.push("--inspector-port", String(inspectorPort));
  if (observability) args.push("--observability");
  // Not `--env-file`: Node itself takes that flag from anywhere in argv.
  if (envFile !== undefined) args.push("--dev-vars", resolve(envFile));
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}=${value}`);
  if (https) args.push("--https-key-file", resolve(https.keyFile), "--https-cert-file", resolve(https.certFile));
  const child = spawn(nodeBinary(), args, {
    cwd: ROOT,
    env: brokerEnv(),
    stdio: ["ignore", ...(onOutput ? /** @type {const} */ (["pipe", "pipe"]) : [stdio, stdio])],
    // Own process group: stop() reaches workerd too, and a terminal's Ctrl-C
    // reaches the runtime only through the caller.
    detached: true,
  });
  forwardOutput(child, onOutput);
  // The serving process disposes Miniflare (workerd exits) on SIGTERM, then exits.
  const { pid, exited, stop } = supervise(child, "the local runtime", {
    signalGroup: false,
    cleanup: () => rm(bundleDir, { recursive: true, force: true }),
  });

  const httpUrl = `${https ? "https" : "http"}://${HOST}:${port}`;
  try {
    await waitForHealth(`${httpUrl}${healthPath}`, exited, startTimeoutMs, https?.caFile ? { ca: readFileSync(https.caFile, "utf8") } : {});
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `${https ? "wss" : "ws"}://${HOST}:${port}${mqttPath}`, httpUrl, pid, stop, exited, child };
}

/**
 * The serving half: Miniflare with the Worker options wrangler derives from its
 * configuration, the bundle from `deploy --dry-run`, and nothing of the dev layer.
 * @param {string[]} argv
 */
async function serve(argv) {
  const config = required(argFromArgs("--config", argv), "--config");
  const bundleDir = required(argFromArgs("--bundle", argv), "--bundle");
  const port = Number(required(argFromArgs("--port", argv), "--port"));
  const persistTo = required(argFromArgs("--persist-to", argv), "--persist-to");
  const inspector = argFromArgs("--inspector-port", argv);
  const observability = argv.includes("--observability");
  const envFile = argFromArgs("--dev-vars", argv);
  const vars = varsFromArgs(argv);
  const httpsKeyFile = argFromArgs("--https-key-file", argv);
  const httpsCertFile = argFromArgs("--https-cert-file", argv);
  // workerd's TLS takes the PEM text itself (Miniflare's httpsKey / httpsCert), not paths.
  const https =
    httpsKeyFile !== undefined && httpsCertFile !== undefined
      ? { httpsKey: readFileSync(httpsKeyFile, "utf8"), httpsCert: readFileSync(httpsCertFile, "utf8") }
      : {};

  // Bundling (a wrangler child process) and loading wrangler and Miniflare here overlap.
  let bundleLog = "";
  const bundled = runWrangler(["deploy", "--dry-run", "--outdir", bundleDir, "--config", config], {
    onOutput: (chunk) => (bundleLog += chunk),
  }).catch((/** @type {unknown} */ err) => {
    throw new Error(`bundling failed: ${err instanceof Error ? err.message : err}\n${bundleLog}`);
  });
  const [{ Miniflare, convertV4MiniflareOptions, Log, LogLevel }, wrangler] = await Promise.all([
    import(pathToFileURL(wranglerMiniflarePath()).href),
    import("wrangler"),
    bundled,
  ]);
  const wranglerConfig = wrangler.unstable_readConfig({ config });
  // Secrets: .dev.vars next to the configuration (wrangler's reader), or `--dev-vars`.
  const { workerOptions } = wrangler.unstable_getMiniflareWorkerOptions(wranglerConfig, undefined, {
    overrides: { enableContainers: false },
    ...(envFile !== undefined ? { envFiles: [envFile] } : {}),
  });
  // The bundle is self-contained: module rules were applied when bundling.
  const { modulesRules: _rules, ...bindingsAndSettings } = workerOptions;
  // [vars] overridden for this run (wrangler dev's `--var`).
  bindingsAndSettings.bindings = Object.assign({}, bindingsAndSettings.bindings, vars);
  const scriptPath = await mainModule(bundleDir, wranglerConfig.main);

  const options = convertV4MiniflareOptions({
    ...bindingsAndSettings,
    // wrangler dev's worker name, so Durable Object state lands in the same
    // directory (v3/do/<name>-<Class>).
    name: wranglerConfig.name ?? "worker",
    modules: true,
    scriptPath,
    modulesRoot: bundleDir,
    host: HOST,
    port,
    ...https,
    ...(inspector !== undefined ? { inspectorPort: Number(inspector), inspectorHost: HOST } : {}),
    // No outbound request for Request.cf: Miniflare's placeholder object.
    cf: false,
    // wrangler's layout: <persistTo>/v3/{d1,do,...}.
    resourcePersistencePath: join(persistTo, "v3"),
    resourceTmpPath: join(ROOT, ".wrangler", "tmp"),
    log: new Log(LogLevel.INFO),
    logRequests: false,
    telemetry: { enabled: false },
    ...(observability ? { unsafeObservability: true } : {}),
  });
  // No dev registry (wrangler dev's cross-process service discovery): a single Worker.
  const mf = new Miniflare({ ...options, enableDevRegistry: false });

  let closing = false;
  const close = async (/** @type {NodeJS.Signals} */ signal) => {
    if (closing) return;
    closing = true;
    try {
      await mf.dispose();
    } finally {
      process.exit(signal === "SIGTERM" || signal === "SIGINT" ? 0 : 1);
    }
  };
  process.on("SIGTERM", () => void close("SIGTERM"));
  process.on("SIGINT", () => void close("SIGINT"));

  const url = await mf.ready;
  console.log(`local runtime (workerd via Miniflare) ready on ${url.href}`);
}

/**
 * The bundle's entry module: the only .js file wrangler wrote, or the one named after `main`.
 * @param {string} bundleDir
 * @param {string | undefined} main
 */
async function mainModule(bundleDir, main) {
  const scripts = (await readdir(bundleDir)).filter((f) => /\.m?js$/.test(f));
  const fromMain = main ? basename(main).replace(/\.[cm]?[jt]sx?$/, ".js") : undefined;
  const entry = scripts.length === 1 ? scripts[0] : scripts.find((f) => f === fromMain);
  if (!entry) throw new Error(`no entry module among ${scripts.join(", ") || "(none)"} in ${bundleDir}`);
  return join(bundleDir, entry);
}

/**
 * Every `--var NAME=VALUE` in argv.
 * @param {string[]} argv
 * @returns {Record<string, string>}
 */
function varsFromArgs(argv) {
  /** @type {Record<string, string>} */
  const vars = {};
  argv.forEach((arg, i) => {
    const pair = arg === "--var" ? (argv[i + 1] ?? "") : "";
    const at = pair.indexOf("=");
    if (at > 0) vars[pair.slice(0, at)] = pair.slice(at + 1);
  });
  return vars;
}

/**
 * @param {string | undefined} value
 * @param {string} name
 */
function required(value, name) {
  if (value === undefined) throw new Error(`local-runtime serve: missing ${name}`);
  return value;
}

if (process.argv[1] === SELF && process.argv[2] === "serve") {
  serve(process.argv.slice(3)).catch((err) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  });
}
