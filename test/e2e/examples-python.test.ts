// examples/python run as its README says (cd examples/python, settings in MQTT_* variables,
// /usr/bin/python3 with Debian's paho-mqtt 1.6) against a broker started as
// `npm start -- --tls` starts it, with the production stance: no anonymous clients, nothing
// allowed without an ACL rule, HS256 tokens accepted as passwords.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_AUTH, TEST_ADMIN_TOKEN, useBroker } from "./broker";
import { pahoAvailable, PYTHON } from "./python";
import { closeAll, connect } from "./clients";

const EXAMPLES = fileURLToPath(new URL("../../examples/python/", import.meta.url));
const JWT_SECRET = "examples-python-jwt-secret-0123456789abcdef";
const PASSWORD = "correct horse battery staple";
const MONITOR_USER = "monitor";


const broker = useBroker({ tls: true, vars: { ALLOW_ANONYMOUS: "false", JWT_SECRET } });

/** The local CA (PEM) of the test broker, as `npm start -- --tls` prints its path. */
function caFile(): string {
  const file = broker().caFile;
  if (!file) throw new Error("the test broker has no CA file: was it started with tls?");
  return file;
}

/** An admin API request over https, verified against the broker's local CA only. */
function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${broker().httpUrl}${path}`,
      {
        method,
        ca: readFileSync(caFile(), "utf8"),
        headers: { ...ADMIN_AUTH, ...(text !== undefined ? { "Content-Type": "application/json" } : {}) },
        timeout: 10_000,
      },
      (res) => {
        let answer = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (answer += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: answer ? JSON.parse(answer) : undefined }));
      },
    );
    req.on("error", reject);
    req.end(text);
  });
}

async function apiOk(method: string, path: string, body?: unknown): Promise<any> {
  const res = await api(method, path, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** What the README tells users to export; `extra` adds credentials. Nothing leaks in from the caller's MQTT_*. */
function exampleEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MQTT_") && k !== "ADMIN_TOKEN" && k !== "EDGE_MQTT_URL") env[k] = v;
  // PYTHONDONTWRITEBYTECODE: running the examples leaves no __pycache__ in the work tree.
  return { ...env, PYTHONDONTWRITEBYTECODE: "1", MQTT_URL: broker().url, MQTT_CA_FILE: caFile(), ...extra };
}

const userEnv = (user: string) => exampleEnv({ MQTT_USERNAME: user, MQTT_PASSWORD: PASSWORD });

interface Line {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** One example running as a child process: its stdout JSON lines and its stderr log, with bounded waits. */
class Example {
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;

  constructor(script: string, args: string[], env: NodeJS.ProcessEnv) {
    this.#child = spawn(PYTHON, [script, ...args], { cwd: EXAMPLES, env, stdio: ["ignore", "pipe", "pipe"] });
    this.#child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (this.stdout += chunk));
    this.#child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
    running.add(this);
  }

  /** monitor.py's complete JSON lines so far. */
  get lines(): Line[] {
    return this.stdout
      .split("\n")
      .slice(0, -1)
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Line);
  }

  describe(): string {
    return `${this.#child.spawnargs.slice(1).join(" ")}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`;
  }

  async until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline || this.#child.exitCode !== null) throw new Error(`waiting for ${what}:\n${this.describe()}\n--- broker ---\n${broker().output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  untilLog(text: string | RegExp): Promise<void> {
    return this.until(() => (typeof text === "string" ? this.stderr.includes(text) : text.test(this.stderr)), `stderr ${text}`);
  }

  async kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.#child.exitCode === null) this.#child.kill(signal);
    const code = await this.exited;
    running.delete(this);
    return code;
  }

  /** Waits for a normal exit; fails with the output when the script failed or hangs. */
  async finished(timeoutMs = 20_000): Promise<this> {
    const code = await Promise.race([this.exited, new Promise<"hung">((r) => setTimeout(() => r("hung"), timeoutMs))]);
    if (code === "hung") await this.kill("SIGKILL");
    running.delete(this);
    if (code !== 0) throw new Error(`exit ${code}: ${this.describe()}`);
    return this;
  }
}
const running = new Set<Example>();

const run = (script: string, args: string[], env: NodeJS.ProcessEnv) => new Example(script, args, env).finished();

/** The retained message on `topic` through the admin API, or null (404). */
async function retained(topic: string): Promise<any> {
  const res = await api("GET", `/api/v1/retained/${topic}`);
  if (res.status === 404) return null;
  expect(res.status).toBe(200);
  return res.body;
}

async function pollRetained(topic: string, payload: string | null, timeoutMs = 10_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const item = await retained(topic);
    if ((item?.payload_text ?? null) === payload) return item;
    if (Date.now() > deadline) throw new Error(`${topic}: retained ${JSON.stringify(item)}, expected ${JSON.stringify(payload)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A device user named after its client id, as the README creates one (`credentials add`). */
async function deviceUser(id: string): Promise<void> {
  await apiOk("POST", "/api/v1/credentials", { username: id, password: PASSWORD });
}

describe.skipIf(!pahoAvailable)("examples/python against `npm start -- --tls`", () => {
  beforeAll(async () => {
    // The README's rules: each device writes its own subtree, the monitor reads everyone's.
    await apiOk("POST", "/api/v1/acl", { topic: "devices/%c/#", action: "all", allow: true });
    await apiOk("POST", "/api/v1/acl", { username: MONITOR_USER, topic: "devices/#", action: "subscribe", allow: true });
    await apiOk("POST", "/api/v1/credentials", { username: MONITOR_USER, password: PASSWORD });
  });

  afterAll(async () => {
    await Promise.all([...running].map((e) => e.kill("SIGKILL")));
    await closeAll();
  });

  it("user name and password: sensor.py's status and readings reach monitor.py", async () => {
    await deviceUser("sensor-pw");
    // --exit-after 5 counts every message: this test runs first, so no retained status exists yet.
    const monitor = new Example("monitor.py", ["--client-id", "monitor-pw", "--exit-after", "5", "--timeout", "20"], userEnv(MONITOR_USER));
    await monitor.untilLog("subscribed: devices/+/readings -> 0x01, devices/+/status -> 0x01");
    const sensor = await run("sensor.py", ["--client-id", "sensor-pw", "--count", "3", "--interval", "0.1"], userEnv("sensor-pw"));
    expect(sensor.stderr).toContain("sensor-pw: status offline, disconnected after 3 readings");
    await monitor.finished();
    expect(monitor.stderr).toContain("received 5 messages");
    const mine = () => monitor.lines.filter((l) => l.topic.startsWith("devices/sensor-pw/"));
    expect(mine().map((l) => [l.topic.split("/")[2], l.qos, l.retain])).toEqual([
      ["status", 1, false],
      ["readings", 1, false],
      ["readings", 1, false],
      ["readings", 1, false],
      ["status", 1, false],
    ]);
    expect(mine().map((l) => (l.topic.endsWith("status") ? l.payload : JSON.parse(l.payload).seq))).toEqual(["online", 1, 2, 3, "offline"]);
    expect(JSON.parse(mine()[1]!.payload)).toMatchObject({ seq: 1, temperature: expect.any(Number) });
  });

  it("a wrong password is refused with 0x86 and said plainly", async () => {
    const sensor = new Example("sensor.py", ["--client-id", "sensor-pw", "--count", "1"], exampleEnv({ MQTT_USERNAME: "sensor-pw", MQTT_PASSWORD: "not the password" }));
    expect(await sensor.exited).toBe(1);
    expect(sensor.stderr).toContain("reason code 0x86");
  });

  it("a JWT as the password, minted for JWT_SECRET, with the token's own ACL", async () => {
    const mint = (secret: string) =>
      new SignJWT({ client_id: "sensor-jwt", acl: { pub: ["devices/%c/#"] } })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject("sensor-jwt")
        .setExpirationTime("10m")
        .sign(new TextEncoder().encode(secret));
    const sensor = await run("sensor.py", ["--client-id", "sensor-jwt", "--count", "2", "--interval", "0.1"], exampleEnv({ MQTT_JWT: await mint(JWT_SECRET) }));
    expect(sensor.stderr).toContain("sensor-jwt: connected to");
    expect((await retained("devices/sensor-jwt/status"))?.payload_text).toBe("offline");
    // Signed with another key: refused before anything is published.
    const forged = new Example("sensor.py", ["--client-id", "sensor-jwt", "--count", "1"], exampleEnv({ MQTT_JWT: await mint("some-other-secret-0123456789abcdef") }));
    expect(await forged.exited).toBe(1);
    expect(forged.stderr).toContain("reason code 0x86");
  });

  it("mint_jwt.py mints a token the broker accepts, for that client id only", async () => {
    const env = exampleEnv({ JWT_SECRET });
    const token = (await run("mint_jwt.py", ["sensor-minted", "--ttl", "600", "--pub", "devices/%c/#"], env)).stdout.trim();
    expect(token.split(".")).toHaveLength(3);
    await run("sensor.py", ["--client-id", "sensor-minted", "--count", "1"], exampleEnv({ MQTT_JWT: token }));
    expect((await retained("devices/sensor-minted/status"))?.payload_text).toBe("offline");
    // The client_id claim pins the token to its device [docs/security.md]: 0x87 for another one.
    const other = new Example("sensor.py", ["--client-id", "sensor-other", "--count", "1"], exampleEnv({ MQTT_JWT: token }));
    expect(await other.exited).toBe(1);
    expect(other.stderr).toContain("reason code 0x87");
  });

  it("the retained 'online' expires; SIGKILL fires the Will: retained 'offline', also with an expiry", async () => {
    await deviceUser("sensor-kill");
    const sensor = new Example("sensor.py", ["--client-id", "sensor-kill", "--interval", "1", "--status-expiry", "600"], userEnv("sensor-kill"));
    await sensor.untilLog("sensor-kill: connected to");
    const online = await retained("devices/sensor-kill/status");
    expect(online).toMatchObject({ payload_text: "online", qos: 1 });
    expect(online.properties.message_expiry_interval).toBeGreaterThan(590);
    expect(online.properties.message_expiry_interval).toBeLessThanOrEqual(600);
    expect(online.expires_at).not.toBeNull();
    // On the wire too: an MQTT 5 subscriber gets the retained status with the seconds left [MQTT-3.3.2-6].
    const watcher = await connect(broker().url, { version: 5, clientId: "watcher", username: MONITOR_USER, password: PASSWORD, ca: readFileSync(caFile()) });
    await watcher.client.subscribeAsync("devices/sensor-kill/status", { qos: 1 });
    const first = await watcher.inbox.waitForTopic("devices/sensor-kill/status");
    expect(first).toMatchObject({ retain: true });
    expect(first.payload.toString()).toBe("online");
    expect(first.properties.messageExpiryInterval).toBeGreaterThan(590);

    expect(await sensor.kill("SIGKILL")).toBeNull();
    const will = await watcher.inbox.waitFor(2, 10_000, (m) => m.topic === "devices/sensor-kill/status");
    expect(will[1]!.payload.toString()).toBe("offline");
    expect(will[1]!.properties.messageExpiryInterval).toBeGreaterThan(590);
    const offline = await pollRetained("devices/sensor-kill/status", "offline");
    expect(offline.properties.message_expiry_interval).toBeGreaterThan(590);
  });

  it("monitor.py killed, readings published, monitor.py restarted: it gets them (persistent session)", async () => {
    await deviceUser("sensor-away");
    const env = userEnv(MONITOR_USER);
    const first = new Example("monitor.py", ["--client-id", "monitor-away"], env);
    await first.untilLog("subscribed:");
    expect(await first.kill("SIGKILL")).toBeNull();
    await run("sensor.py", ["--client-id", "sensor-away", "--count", "3", "--interval", "0.1"], userEnv("sensor-away"));
    // Not --exit-after: the earlier tests' retained statuses, sent at the first SUBSCRIBE and
    // perhaps never acknowledged before the kill, may come again and would count.
    const again = new Example("monitor.py", ["--client-id", "monitor-away"], env);
    const mine = () => again.lines.filter((l) => l.topic.startsWith("devices/sensor-away/"));
    await again.until(() => mine().length >= 5, "the 5 messages published while the monitor was away");
    expect(await again.kill("SIGTERM")).toBe(0);
    expect(again.stderr).toContain("resumed the session of monitor-away");
    expect(mine().map((l) => (l.topic.endsWith("status") ? l.payload : JSON.parse(l.payload).seq))).toEqual(["online", 1, 2, 3, "offline"]);
    expect(mine().every((l) => l.qos === 1)).toBe(true);
  });

  it("decommission.py: a dry run changes nothing, then the device is retired and its retained status gone", async () => {
    const env = exampleEnv({ ADMIN_TOKEN: TEST_ADMIN_TOKEN, EDGE_MQTT_URL: broker().httpUrl });
    await pollRetained("devices/sensor-kill/status", "offline");

    const dry = JSON.parse((await run("decommission.py", ["sensor-kill", "--dry-run"], env)).stdout);
    expect(dry).toMatchObject({ client_id: "sensor-kill", dry_run: true, retained_cleared: { "devices/sensor-kill/#": 1 }, credentials_revoked: 1 });
    expect((await retained("devices/sensor-kill/status"))?.payload_text).toBe("offline");

    const done = JSON.parse((await run("decommission.py", ["sensor-kill"], env)).stdout);
    expect(done).toMatchObject({ client_id: "sensor-kill", dry_run: false, retained_cleared: { "devices/sensor-kill/#": 1 }, credentials_revoked: 1 });
    expect(done.decommissioned_at).toEqual(expect.any(String));
    expect(await retained("devices/sensor-kill/status")).toBeNull();
    const device = await apiOk("GET", "/api/v1/devices/sensor-kill");
    expect(device.device).toMatchObject({ client_id: "sensor-kill", decommissioned_at: expect.any(String) });
    // Its credentials are revoked: the sensor can no longer connect.
    const refused = new Example("sensor.py", ["--client-id", "sensor-kill", "--count", "1"], userEnv("sensor-kill"));
    expect(await refused.exited).toBe(1);
    expect(refused.stderr).toContain("reason code 0x86");
  });

  it("decommission.py says plainly what the broker refused (wrong token, unknown device)", async () => {
    const wrongToken = new Example("decommission.py", ["sensor-pw"], exampleEnv({ ADMIN_TOKEN: "not-the-token", EDGE_MQTT_URL: broker().httpUrl }));
    expect(await wrongToken.exited).toBe(1);
    expect(wrongToken.stderr).toContain(": 401 ");
    const unknown = new Example("decommission.py", ["never-seen"], exampleEnv({ ADMIN_TOKEN: TEST_ADMIN_TOKEN, EDGE_MQTT_URL: broker().httpUrl }));
    expect(await unknown.exited).toBe(1);
    expect(unknown.stderr).toContain(": 404 ");
  });
});
