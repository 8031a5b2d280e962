// `npm start` runs `node scripts/start.mjs`; this runs that script the same way.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getFreePort, nodeBinary, ROOT, startBroker } from "../../scripts/broker-process.mjs";
import { parseDevVars } from "../../scripts/dev-vars.mjs";

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
    const child = spawn(nodeBinary(), [join(ROOT, "scripts", "start.mjs"), "--port", String(port), "--persist-to", persistTo, "--dev-vars", join(persistTo, "dev.vars"), "--no-tcp"], {
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

  /** Runs scripts/start.mjs with `args`; collects its output. */
  function runStart(args: string[]) {
    const child = spawn(nodeBinary(), [join(ROOT, "scripts", "start.mjs"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    cleanups.push(async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const run = { child, out: "" };
    child.stdout.on("data", (c) => (run.out += c));
    child.stderr.on("data", (c) => (run.out += c));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    return Object.assign(run, { exited });
  }

  it("on a port already taken (by a server that even answers /health): says so and exits 1", async () => {
    // The situation of the report: another HTTP server on the port answers GET /health with 200.
    const other = createServer((_req, res) => res.writeHead(200, { "Content-Type": "application/json" }).end('{"status":"ok"}'));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => other.close(() => resolve())));
    const port = (other.address() as { port: number }).port;
    const persistTo = await mkdtemp(join(tmpdir(), "edge-mqtt-start-"));
    cleanups.push(() => rm(persistTo, { recursive: true, force: true }));

    const run = runStart(["--port", String(port), "--persist-to", persistTo, "--dev-vars", join(persistTo, "dev.vars"), "--no-tcp"]);
    const result = await Promise.race([
      run.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running:\n${run.out}`)), 30_000)),
    ]);
    expect(result).toEqual({ code: 1, signal: null });
    expect(run.out).toContain(`port ${port} is in use`);
    expect(run.out).not.toContain("MQTT broker ready");
    expect(run.out).not.toMatch(/\n\s+at /); // no stack trace
    await expect(stat(join(persistTo, "dev.vars"))).rejects.toThrow(); // nothing written
  });

  it("creates a missing .dev.vars (here --dev-vars) with a random ADMIN_TOKEN that the Worker uses; never prints it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "edge-mqtt-start-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const envFile = join(dir, "dev.vars");
    const port = await getFreePort();
    const run = runStart(["--port", String(port), "--persist-to", join(dir, "state"), "--dev-vars", envFile, "--no-tcp"]);
    await waitFor(() => run.out.includes("MQTT broker ready") || run.child.exitCode !== null, 90_000, () => `ready in:\n${run.out}`);
    expect(run.out).toContain("MQTT broker ready");
    expect(run.out).toMatch(/created .*dev\.vars with a random ADMIN_TOKEN/);

    const vars = parseDevVars(await readFile(envFile, "utf8"));
    const token = vars.ADMIN_TOKEN ?? "";
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    expect(run.out).not.toContain(token);
    expect((await stat(envFile)).mode & 0o777).toBe(0o600);
    // The example's comments came along.
    expect(await readFile(envFile, "utf8")).toContain("wrangler secret put");

    const url = `http://127.0.0.1:${port}/api/v1/devices`;
    expect((await fetch(url, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await fetch(url, { headers: { Authorization: "Bearer not-the-token" } })).status).toBe(401);

    run.child.kill("SIGINT");
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it("vars given to startBroker (as the tests do) override the secrets file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "edge-mqtt-start-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const envFile = join(dir, "dev.vars");
    await writeFile(envFile, "ADMIN_TOKEN=from-the-file-0123456789\n");
    const broker = await startBroker({
      port: await getFreePort(),
      persistTo: join(dir, "state"),
      stdio: "ignore",
      envFile,
      vars: { ADMIN_TOKEN: "from-vars-0123456789" },
    });
    cleanups.push(() => broker.stop());
    const url = `${broker.httpUrl}/api/v1/devices`;
    expect((await fetch(url, { headers: { Authorization: "Bearer from-vars-0123456789" } })).status).toBe(200);
    expect((await fetch(url, { headers: { Authorization: "Bearer from-the-file-0123456789" } })).status).toBe(401);
  });
});
