import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runWrangler } from "../../scripts/broker-process.mjs";

describe("wrangler deploy --dry-run", () => {
  let outdir = "";
  afterAll(async () => {
    if (outdir) await rm(outdir, { recursive: true, force: true });
  });

  it("bundles the Worker with its Durable Object classes", async () => {
    outdir = await mkdtemp(join(tmpdir(), "edge-mqtt-bundle-"));
    let log = "";
    await runWrangler(["deploy", "--dry-run", "--outdir", outdir], { onOutput: (c) => (log += c) }).catch((err) => {
      throw new Error(`${err.message}\n${log}`);
    });
    expect(log).toMatch(/--dry-run: exiting now/);
    const files = await readdir(outdir);
    expect(files).toContain("index.js");
    const bundle = await readFile(join(outdir, "index.js"), "utf8");
    for (const name of ["SessionDO", "ConnectionDO", "TopicShardDO"]) expect(bundle).toContain(name);
  });
});
