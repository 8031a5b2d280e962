// Versions of what a benchmark ran on, for its report.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

/** The `version` of a package.json, or null. @param {string} path */
export function packageVersion(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8")).version;
  } catch {
    return null;
  }
}

/**
 * The workerd that the repository at `root` runs (wrangler's miniflare's), or null when it is
 * not installed. @param {string} root
 */
export function workerdVersion(root) {
  try {
    const fromRoot = createRequire(join(root, "package.json"));
    const miniflare = createRequire(fromRoot.resolve("wrangler/package.json")).resolve("miniflare/package.json");
    return packageVersion(createRequire(miniflare).resolve("workerd/package.json"));
  } catch {
    return null;
  }
}
