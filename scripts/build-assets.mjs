#!/usr/bin/env node
// Builds the Worker's static assets directory (wrangler.toml [assets], dist/assets; not
// committed): the files of the API reference page (GET /api/v1/docs) that come from npm,
// copied from node_modules/swagger-ui-dist so the page loads with no request to the
// internet. wrangler runs this as the [build] command before `wrangler deploy` (and
// `--dry-run`) and `wrangler dev`, so `npm start`, `npm run deploy` and the tests all get it;
// test/workers runs it from its config. Idempotent, and safe to run concurrently: each file
// is written to a temporary name and renamed into place, and skipped when already identical.
// See docs/admin.md ("The reference page").
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
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
  const { dir, written } = buildAssets();
  console.log(`static assets: ${written === 0 ? "up to date" : `${written} file(s) written`} in ${dir}`);
}
