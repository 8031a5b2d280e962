// `npm start` runs `node scripts/start.mjs`; this runs that script the same way.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getFreePort, nodeBinary, ROOT } from "../../scripts/broker-process.mjs";

function waitFor(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(timer);
        reject(new Error(`timed out waiting for ${what()}`));
      }
    }, 100);
  });
}

describe("npm start (scripts/start.mjs)", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it("prints the MQTT URL once /health answers and stops cleanly on SIGINT", async () => {
    const persistTo = await mkdtemp(join(tmpdir(), "edge-mqtt-start-"));
    cleanups.push(() => rm(persistTo, { recursive: true, force: true }));
    const port = await getFreePort();
    const child = spawn(nodeBinary(), [join(ROOT, "scripts", "start.mjs"), "--port", String(port), "--persist-to", persistTo], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );

    const mqttUrl = `ws://127.0.0.1:${port}/mqtt`;
    await waitFor(() => out.includes(mqttUrl) || child.exitCode !== null, 90_000, () => `the MQTT URL in:\n${out}`);
    expect(out).toContain(`MQTT broker ready: ${mqttUrl}`);

    const res = await fetch(`http://127.0.0.1:${port}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });

    child.kill("SIGINT");
    const result = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit after SIGINT:\n${out}`)), 20_000)),
    ]);
    expect(result).toEqual({ code: 0, signal: null });
    // Nothing left listening: wrangler and workerd are gone.
    await expect(fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
  });
});
