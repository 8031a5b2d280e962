#!/usr/bin/env node
// Builds the Worker's static assets directory (wrangler.toml [assets], dist/assets; not
// committed): the files of the API reference page (GET /api/v1/docs) that come from npm,
// copied from node_modules/swagger-ui-dist so the page loads with no request to the
// internet, and the dashboard (/dashboard/, bundled by esbuild: docs/dashboard.md). wrangler runs this as the [build] command before `wrangler deploy` (and
// `--dry-run`) and `wrangler dev`, so `npm start`, `npm run deploy` and the tests all get it;
// test/workers runs it from its config. Idempotent, and safe to run concurrently: each file
// is written to a temporary name and renamed into place, and skipped when already identical.
// See docs/admin.md ("The reference page").
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** wrangler.toml [assets] directory. */
export const ASSETS_DIR = join(ROOT, "dist", "assets");
/** Where the reference page's own files are served: /api/v1/docs/<file>. */
export const DOCS_ASSETS_PATH = "/api/v1/docs";

/** Files of swagger-ui-dist the page needs (the bundle includes its dependencies). */
const SWAGGER_UI_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-bundle.js.LICENSE.txt", "LICENSE", "NOTICE"];

/** @param {Buffer | string} data */
function digest(data) {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Copies `data` to `target` unless it already holds exactly that.
 * @param {string} target
 * @param {Buffer} data
 */
function install(target, data) {
  if (existsSync(target) && digest(readFileSync(target)) === digest(data)) return false;
  mkdirSync(dirname(target), { recursive: true });
  const temp = `${target}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(temp, data);
  renameSync(temp, target);
  return true;
}

/**
 * The bundle ends with a `sourceMappingURL` comment; the map is not shipped (1.5 MB more,
 * for browser devtools only), so drop the comment rather than have devtools ask for it.
 * @param {string} name
 * @param {Buffer} data
 */
function withoutSourceMap(name, data) {
  if (!/\.(js|css)$/.test(name)) return data;
  return Buffer.from(data.toString("utf8").replace(/\n?\/[/*][#@] sourceMappingURL=[^\n]*\s*$/, "\n"));
}

/** Where the dashboard is served: /dashboard/ (dashboard/, docs/dashboard.md). */
export const DASHBOARD_PATH = "/dashboard";
/** Lazily loaded code (a page's `import()`), beside app.js: /dashboard/chunks/<name>-<hash>.js. */
const DASHBOARD_CHUNKS = "chunks";
/** A chunk no build made for this long is removed (a concurrent build may still need a newer one). */
const STALE_CHUNK_MS = 10 * 60_000;

/**
 * The dashboard: dashboard/src/main.tsx bundled by esbuild (Preact, uPlot inlined, minified,
 * ES modules) into app.js and app.css, beside dashboard/index.html. Code a page loads with
 * `import()` (the topic tree's MQTT.js) is split into chunks/, fetched when first shown; its
 * CSS is appended to app.css (esbuild would emit it as a file nothing loads), so every style
 * arrives with the page. Nothing it loads comes from anywhere but this Worker.
 * @returns {Promise<number>} files written
 */
export async function buildDashboard() {
  const { build } = await import("esbuild");
  const source = join(ROOT, "dashboard");
  const result = await build({
    entryPoints: { app: join(source, "src", "main.tsx") },
    bundle: true,
    splitting: true,
    minify: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
    write: false,
    outdir: "out",
    chunkNames: `${DASHBOARD_CHUNKS}/[name]-[hash]`,
    loader: { ".css": "css" },
    logLevel: "silent",
  });
  const outdir = resolve("out");
  const target = join(ASSETS_DIR, ...DASHBOARD_PATH.split("/").filter(Boolean));
  const files = new Map();
  const css = [];
  for (const file of result.outputFiles) {
    const name = relative(outdir, file.path).split(sep).join("/");
    if (name === "app.css") css.unshift(Buffer.from(file.contents));
    else if (name.endsWith(".css")) css.push(Buffer.from(file.contents));
    else files.set(name, Buffer.from(file.contents));
  }
  // A chunk's CSS is often what app.css already holds (a style file shared with an eager page).
  const [first, ...rest] = css;
  if (first) {
    const appCss = first.toString("utf8");
    files.set("app.css", Buffer.concat([first, ...rest.filter((c) => !appCss.includes(c.toString("utf8").trim()))]));
  }
  let written = 0;
  for (const [name, data] of files) {
    if (install(join(target, ...name.split("/")), data)) written += 1;
  }
  if (install(join(target, "index.html"), readFileSync(join(source, "index.html")))) written += 1;
  // Chunks of earlier builds: removed once no build has made them for a while.
  const chunks = join(target, DASHBOARD_CHUNKS);
  if (existsSync(chunks)) {
    for (const name of readdirSync(chunks)) {
      const path = join(chunks, name);
      if (!files.has(`${DASHBOARD_CHUNKS}/${name}`) && Date.now() - statSync(path).mtimeMs > STALE_CHUNK_MS) rmSync(path, { force: true });
    }
  }
  return written;
}

export function buildAssets() {
  const require = createRequire(join(ROOT, "package.json"));
  const swaggerUiDist = dirname(require.resolve("swagger-ui-dist/package.json"));
  const target = join(ASSETS_DIR, ...DOCS_ASSETS_PATH.split("/").filter(Boolean));
  let written = 0;
  for (const name of SWAGGER_UI_FILES) {
    if (install(join(target, name), withoutSourceMap(name, readFileSync(join(swaggerUiDist, name))))) written += 1;
  }
  return { dir: ASSETS_DIR, written };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { dir, written: docs } = buildAssets();
  const written = docs + (await buildDashboard());
  console.log(`static assets: ${written === 0 ? "up to date" : `${written} file(s) written`} in ${dir}`);
}
