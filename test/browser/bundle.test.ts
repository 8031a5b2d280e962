// The dashboard's size budget: fails when what esbuild makes (scripts/build-assets.mjs) grows
// past it, gzipped as a server would send it. The budgets are the sizes measured when the
// dashboard landed plus about 25% (docs/dashboard.md, "Stack and size"); raising one is a
// decision to write down there, not a number to bump quietly.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { ASSETS_DIR, buildDashboard, DASHBOARD_PATH } from "../../scripts/build-assets.mjs";

const KB = 1024;
/** Gzipped bytes allowed. `first load`: app.js and app.css; `all JS`: app.js and every chunk it can load. */
export const BUDGET_GZIP = {
  "app.js": 52 * KB, // measured 41.4 kB
  "app.css": 3.5 * KB, // measured 2.8 kB
  "all JS": 200 * KB, // measured 158 kB (the topic tree's chunk: MQTT.js)
} as const;

const DIR = join(ASSETS_DIR, ...DASHBOARD_PATH.split("/").filter(Boolean));
const read = (name: string) => readFileSync(join(DIR, ...name.split("/")));
const gzip = (data: Buffer) => gzipSync(data, { level: 9 }).length;

/** app.js and the chunks it imports, directly or through another chunk (paths under DIR). */
function scripts(): string[] {
  const seen = new Set<string>(["app.js"]);
  const queue = ["app.js"];
  while (queue.length > 0) {
    const name = queue.shift()!;
    const text = read(name).toString("utf8");
    const base = name.includes("/") ? name.slice(0, name.lastIndexOf("/") + 1) : "";
    for (const m of text.matchAll(/["'`]\.\/((?:chunks\/)?[\w-]+\.js)["'`]/g)) {
      const ref = m[1]!.startsWith("chunks/") ? m[1]! : base + m[1]!;
      if (!seen.has(ref)) {
        seen.add(ref);
        queue.push(ref);
      }
    }
  }
  return [...seen];
}

describe("dashboard bundle", () => {
  beforeAll(async () => {
    await buildDashboard();
  });

  it("stays within its gzipped size budget", () => {
    const js = scripts();
    const sizes = {
      "app.js": gzip(read("app.js")),
      "app.css": gzip(read("app.css")),
      "all JS": js.reduce((sum, name) => sum + gzip(read(name)), 0),
    };
    console.log(
      `dashboard bundle (gzip): ${js.map((n) => `${n} ${read(n).length} B raw, ${gzip(read(n))} B`).join("; ")}; app.css ${read("app.css").length} B raw, ${sizes["app.css"]} B`,
    );
    expect(js.length).toBeGreaterThan(1); // the topic tree (MQTT.js) is a chunk of its own
    for (const [name, budget] of Object.entries(BUDGET_GZIP) as [keyof typeof BUDGET_GZIP, number][]) {
      expect(sizes[name], `${name}: ${sizes[name]} B gzipped, budget ${budget} B`).toBeLessThanOrEqual(budget);
    }
  });

  it("loads nothing from another host", () => {
    const html = read("index.html").toString("utf8");
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    const css = read("app.css").toString("utf8");
    expect(css).not.toMatch(/url\(\s*["']?(https?:)?\/\//);
    expect(css).not.toMatch(/@import/);
    for (const name of scripts()) expect(read(name).toString("utf8"), name).not.toMatch(/\bimport\s*\(?\s*["'`](https?:)?\/\//);
  });
});
