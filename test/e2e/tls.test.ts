// `npm start -- --tls`: the broker on wss:// and https:// with the local CA that scripts/tls.mjs
// creates under the state directory. Started here exactly as `npm start` is (scripts/start.mjs,
// the printed CA path), with ALLOW_ANONYMOUS=false in its secrets file: Python's paho over
// wss with tls_set(ca_certs=...) and MQTT.js with `ca` carry a round trip with a user name and
// password; clients without the CA fail verification (it is really TLS, and verified).
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getFreePort, nodeBinary, ROOT } from "../../scripts/broker-process.mjs";
import { ensureTlsFiles } from "../../scripts/tls.mjs";
import { ADMIN_AUTH, TEST_ADMIN_TOKEN } from "./broker";
import { pahoAvailable, PYTHON } from "./python";
import { closeAll, connect, topicBase, uid } from "./clients";

const SCRIPT = fileURLToPath(new URL("./paho/paho_tls_check.py", import.meta.url));


const USERNAME = `tls-user-${process.pid}`;
const PASSWORD = "correct horse battery staple";

/** A request over https verified against `ca` only (undefined: Node's own CA list). */
function httpsJson(url: string, ca: string | undefined, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    const req = request(
      url,
      {
        method: init.method ?? "GET",
        ...(ca !== undefined ? { ca } : {}),
        headers: { ...init.headers, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
        timeout: 10_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

let dir = "";
let port = 0;
let out = "";
let caFile = "";
let ca = "";
let child: ReturnType<typeof spawn> | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "edge-mqtt-tls-"));
  port = await getFreePort();
  const envFile = join(dir, "dev.vars");
  // The production stance, locally: nobody connects without credentials.
  await writeFile(envFile, `ADMIN_TOKEN=${TEST_ADMIN_TOKEN}\nALLOW_ANONYMOUS=false\n`, { mode: 0o600 });
  child = spawn(nodeBinary(), [join(ROOT, "scripts", "start.mjs"), "--tls", "--port", String(port), "--persist-to", join(dir, "state"), "--dev-vars", envFile], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (c) => (out += c));
  child.stderr?.on("data", (c) => (out += c));
  const deadline = Date.now() + 100_000;
  while (!out.includes("admin token:") && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (!out.includes("admin token:")) throw new Error(`npm start -- --tls did not come up:\n${out}`);
  caFile = join(dir, "state", "tls", "ca.pem");
  ca = await readFile(caFile, "utf8");
  const created = await httpsJson(`https://127.0.0.1:${port}/api/v1/credentials`, ca, {
    method: "POST",
    headers: ADMIN_AUTH,
    body: { username: USERNAME, password: PASSWORD },
  });
  if (created.status !== 201) throw new Error(`POST /api/v1/credentials: ${created.status} ${JSON.stringify(created.body)}`);
  // ALLOW_ANONYMOUS=false also denies what no rule allows: this user may use every topic.
  const rule = await httpsJson(`https://127.0.0.1:${port}/api/v1/acl`, ca, {
    method: "POST",
    headers: ADMIN_AUTH,
    body: { username: USERNAME, topic: "#", action: "all", allow: true },
  });
  if (rule.status !== 201) throw new Error(`POST /api/v1/acl: ${rule.status} ${JSON.stringify(rule.body)}`);
});

afterAll(async () => {
  await closeAll();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGINT");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("npm start -- --tls", () => {
  it("serves wss:// and https:// and prints where the CA is and how to use it", async () => {
    expect(out).toContain(`MQTT broker ready: wss://127.0.0.1:${port}/mqtt`);
    expect(out).toContain(`HTTP: https://127.0.0.1:${port}`);
    expect(out).toContain("created a new local CA and server certificate");
    expect(out).toContain(`local CA ${caFile}`);
    expect(out).toContain(`tls_set(ca_certs="${caFile}")`);
    // The keys are readable by their owner only; the certificates by anyone.
    for (const key of ["ca-key.pem", "server-key.pem"]) expect((await stat(join(dir, "state", "tls", key))).mode & 0o777).toBe(0o600);
    expect((await stat(caFile)).mode & 0o077).toBe(0o044);
    const health = await httpsJson(`https://localhost:${port}/health`, ca);
    expect(health).toEqual({ status: 200, body: { status: "ok" } });
    // Plain http on that port is not served.
    await expect(fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow();
    // What the next `npm start -- --tls` on this state directory does: reuse the files as they are.
    const before = await readFile(join(dir, "state", "tls", "server.pem"), "utf8");
    expect((await ensureTlsFiles(join(dir, "state", "tls"))).status).toBe("reused");
    expect(await readFile(join(dir, "state", "tls", "server.pem"), "utf8")).toBe(before);
  });

  it("refuses a client that does not trust the local CA (Node's own CA list)", async () => {
    await expect(httpsJson(`https://127.0.0.1:${port}/health`, undefined)).rejects.toThrow(/certificate/i);
    await expect(
      connect(`wss://127.0.0.1:${port}/mqtt`, { version: 5, username: USERNAME, password: PASSWORD, connectTimeout: 5_000 }),
    ).rejects.toThrow(/certificate/i);
  });

  it.each([4, 5] as const)("MQTT.js v%i over wss with `ca`: a round trip with a user name and password", async (version) => {
    const url = `wss://localhost:${port}/mqtt`;
    const base = topicBase("tls");
    const sub = await connect(url, { version, ca, username: USERNAME, password: PASSWORD, clientId: uid("tls-sub") });
    expect(sub.connack?.returnCode ?? sub.connack?.reasonCode ?? 0).toBe(0);
    expect(await sub.subscribe(`${base}/#`, { qos: 1 })).toEqual([1]);
    const pub = await connect(`wss://127.0.0.1:${port}/mqtt`, { version, ca, username: USERNAME, password: PASSWORD, clientId: uid("tls-pub") });
    await pub.publish(`${base}/x`, "over tls", { qos: 1 });
    const got = await sub.inbox.waitForTopic(`${base}/x`);
    expect(got.payload.toString()).toBe("over tls");
    expect(got.qos).toBe(1);
    await pub.end();
    await sub.end();
  });

  it.each([4, 5] as const)("MQTT.js v%i over wss: ALLOW_ANONYMOUS=false of the secrets file holds (no user name, wrong password refused)", async (version) => {
    const url = `wss://127.0.0.1:${port}/mqtt`;
    const refused = (err: unknown) => (err as { code?: number }).code;
    const anonymous = await connect(url, { version, ca }).then(
      () => "accepted",
      (err: unknown) => refused(err),
    );
    const wrong = await connect(url, { version, ca, username: USERNAME, password: "not the password" }).then(
      () => "accepted",
      (err: unknown) => refused(err),
    );
    // 5.0: 0x87 Not Authorized / 0x86 Bad User Name or Password; 3.1.1: return codes 5 / 4.
    expect(anonymous).toBe(version === 5 ? 0x87 : 5);
    expect(wrong).toBe(version === 5 ? 0x86 : 4);
  });

  describe.skipIf(!pahoAvailable)("Python paho-mqtt over wss with tls_set(ca_certs=<the local CA>)", () => {
    it.each([4, 5])("MQTT %i: untrusted without the CA, strict X.509 checks pass, round trip with credentials", async (version) => {
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(PYTHON, [SCRIPT, String(port), String(version), caFile, USERNAME, PASSWORD], { timeout: 60_000 }, (err, o, e) =>
          err ? reject(new Error(`${err.message}\n${e}`)) : resolve(o),
        );
      });
      const report = JSON.parse(stdout) as {
        untrusted: { error: string | null; reason?: string };
        strict_https: { status?: number; error?: string; reason?: string };
        pub_connack: number;
        connack: number;
        tls_version: string | null;
        received: { topic: string; payload: string; qos: number; retain: boolean }[];
      };
      expect(report.untrusted.error).toBe("SSLCertVerificationError");
      expect(report.strict_https).toMatchObject({ status: 200 });
      expect(report.pub_connack).toBe(0);
      expect(report.connack).toBe(0);
      expect(report.tls_version).toMatch(/^TLSv1\.[23]$/);
      const byLevel = Object.fromEntries(report.received.map((m) => [m.topic.split("/").at(-1), m]));
      expect(byLevel.retained).toMatchObject({ payload: "kept", qos: 1, retain: true });
      expect(byLevel.q0).toMatchObject({ payload: "hello 0", qos: 0 });
      expect(byLevel.q1).toMatchObject({ payload: "hello 1", qos: 1 });
      expect(report.received).toHaveLength(3);
    });
  });
});
