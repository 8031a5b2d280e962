// examples/gateway (gateway.sh: curl; gateway.py: Python's urllib) against a broker started as
// `npm start -- --tls` starts it (https with the local CA), through a fault-injecting HTTP proxy written here: the broker is real,
// the proxy only decides what happens on the way. Each script must retry 503, 429 (after
// Retry-After) and a lost answer with ONE Idempotency-Key, so that an MQTT.js subscriber gets
// every message exactly once; must not retry 400/401/403; must give up after MAX_ATTEMPTS;
// and the devices its items name must show online with transport http.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_AUTH, useBroker } from "./broker";
import { closeAll, connect, sleep, topicBase, uid } from "./clients";

const GATEWAY_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "examples", "gateway");
const PYTHON = process.env.PYTHON ?? "/usr/bin/python3";

// TLS, so the scripts' CA_FILE (the local CA of `npm start -- --tls`) is tested too; the fault
// proxy in front of it speaks plain http to the scripts and https (trusting that CA) to the broker.
const broker = useBroker({ tls: true });
const ca = () => readFileSync(broker().caFile!, "utf8");
afterEach(closeAll);

// ------------------------------------------------------------------------- the fault proxy

/** What the proxy does with one request. `drop`: forward it, let the broker answer, then
 * destroy the client's socket instead of answering (the "answer lost on the way back" case). */
type Fault = "forward" | "503" | "429" | "drop";

interface Seen {
  at: number;
  fault: Fault;
  idempotencyKey: string | undefined;
  /** The broker's answer, for forwarded and dropped requests. */
  upstream?: { status: number; body: string; replayed: boolean };
}

class FaultProxy {
  /** Faults for the next requests, in order; afterwards every request is forwarded. */
  plan: Fault[] = [];
  seen: Seen[] = [];
  private server: Server = createServer((req, res) => void this.handle(req, res));

  async start(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  reset(plan: Fault[]): void {
    this.plan = plan;
    this.seen = [];
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = Buffer.concat(await req.toArray());
    const fault = this.plan.shift() ?? "forward";
    const seen: Seen = { at: Date.now(), fault, idempotencyKey: req.headers["idempotency-key"] as string | undefined };
    this.seen.push(seen);
    if (fault === "503") return void res.writeHead(503, { "Content-Type": "text/plain" }).end("injected 503");
    if (fault === "429") {
      return void res
        .writeHead(429, { "Retry-After": "1", "Content-Type": "application/problem+json" })
        .end(JSON.stringify({ type: "urn:edge-mqtt:problem:rate-limited", status: 429, title: "injected" }));
    }
    const upstream = await forward(req, body);
    seen.upstream = { status: upstream.status, body: upstream.body.toString(), replayed: upstream.headers["idempotent-replayed"] === "true" };
    if (fault === "drop") return void req.socket.destroy();
    res.writeHead(upstream.status, upstream.headers).end(upstream.body);
  }
}

/** A JSON request to the broker's API, trusting its local CA (Node's fetch takes no CA). */
async function brokerApi(path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; json: unknown }> {
  const res = await forwardRaw(`${broker().httpUrl}/api/v1${path}`, init.method ?? "GET", {
    ...ADMIN_AUTH,
    ...(init.body === undefined ? {} : { "content-type": "application/json" }),
  }, init.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(init.body)));
  return { status: res.status, json: JSON.parse(res.body.toString() || "null") };
}

function forwardRaw(url: string, method: string, headers: Record<string, string>, body: Buffer) {
  return new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const out = httpsRequest(url, { method, headers, ca: ca() }, (res) => {
      res.toArray().then((chunks) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }), reject);
    });
    out.on("error", reject);
    out.end(body);
  });
}

/** Sends the request on to the broker and reads its whole answer. */
function forward(req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const target = new URL(req.url ?? "/", broker().httpUrl);
  const headers = { ...req.headers, host: target.host };
  return new Promise((resolve, reject) => {
    const out = httpsRequest(target, { method: req.method, headers, ca: ca() }, (res) => {
      res.toArray().then((chunks) => {
        const kept: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string" && k !== "transfer-encoding" && k !== "connection") kept[k] = v;
        resolve({ status: res.statusCode ?? 0, headers: kept, body: Buffer.concat(chunks) });
      }, reject);
    });
    out.on("error", reject);
    out.end(body);
  });
}

const proxy = new FaultProxy();
let proxyUrl = "";
beforeAll(async () => {
  proxyUrl = await proxy.start();
});
afterAll(() => proxy.stop());

// ------------------------------------------------------------------------- helpers

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a gateway script with env and stdin; resolves when it exits (killed after 30 s). */
function run(cmd: string, args: string[], env: Record<string, string>, stdin: string): Promise<Run> {
  const started = Date.now();
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(stdin);
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

/** Fast backoff for tests (the scripts' default base is 500 ms). */
const FAST = { BACKOFF_BASE_MS: "50", BACKOFF_MAX_MS: "200" };

const GATEWAYS = {
  /** gateway.sh: the batch (a JSON array) on stdin. */
  sh: (env: Record<string, string>, items: Item[]) =>
    run("/bin/sh", [join(GATEWAY_DIR, "gateway.sh")], { BROKER_URL: proxyUrl, ...FAST, ...env }, JSON.stringify(items)),
  /** gateway.py: the same items as JSON-lines readings, one batch (max-items above their number). */
  py: (env: Record<string, string>, items: Item[]) =>
    run(
      PYTHON,
      [join(GATEWAY_DIR, "gateway.py"), "--max-items", "100", "--max-wait", "0.2"],
      { BROKER_URL: proxyUrl, ...FAST, ...env },
      items.map((i) => JSON.stringify(i) + "\n").join(""),
    ),
} as const;

interface Item {
  topic: string;
  payload: string;
  qos: number;
  device: string;
}

async function newKey(scopes: string[]): Promise<string> {
  const res = await brokerApi("/keys", { method: "POST", body: { name: uid("gateway"), scopes } });
  expect(res.status).toBe(201);
  return (res.json as { key: string }).key;
}

async function devicesOnline(prefix: string): Promise<Array<{ client_id: string; online: boolean; transport: string }>> {
  const res = await brokerApi(`/devices?prefix=${encodeURIComponent(prefix)}`);
  expect(res.status).toBe(200);
  return (res.json as { items: Array<{ client_id: string; online: boolean; transport: string }> }).items;
}

// ------------------------------------------------------------------------- tests

describe.each(["sh", "py"] as const)("examples/gateway/gateway.%s", (which) => {
  const gateway = GATEWAYS[which];

  it("retries 503, 429 (Retry-After) and a lost answer with one Idempotency-Key; each message arrives once", async () => {
    const base = topicBase(`gw-${which}`);
    const devices = [uid(`${which}-dev-a`), uid(`${which}-dev-b`)];
    const key = await newKey([`${base}/#`]);
    const sub = await connect(broker().url, { version: 5, ca: ca() } as never);
    await sub.subscribe(`${base}/#`, { qos: 1 });
    const items: Item[] = [
      { topic: `${base}/${devices[0]}/temp`, payload: "21.5", qos: 1, device: devices[0]! },
      { topic: `${base}/${devices[1]}/temp`, payload: "19.0", qos: 1, device: devices[1]! },
      { topic: `${base}/${devices[0]}/hum`, payload: "40", qos: 1, device: devices[0]! },
    ];

    proxy.reset(["503", "429", "drop"]);
    const result = await gateway({ API_KEY: key }, items);
    expect(result.code, result.stderr).toBe(0);

    // Four requests, one key: 503, 429, the one whose answer was dropped, the replayed one.
    expect(proxy.seen.map((s) => s.fault)).toEqual(["503", "429", "drop", "forward"]);
    const keys = new Set(proxy.seen.map((s) => s.idempotencyKey));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^[0-9a-f]{32}$/);
    // Retry-After: 1 was honoured (the backoff alone would be <= 200 ms).
    expect(proxy.seen[2]!.at - proxy.seen[1]!.at).toBeGreaterThanOrEqual(950);
    // The broker published once (dropped answer) and replayed that answer to the retry.
    const [dropped, replay] = [proxy.seen[2]!.upstream!, proxy.seen[3]!.upstream!];
    expect(dropped.status).toBe(200);
    expect(dropped.replayed).toBe(false);
    expect(replay).toEqual({ status: 200, body: dropped.body, replayed: true });

    // The script printed the per-item results (the broker's ids).
    const ids = (JSON.parse(dropped.body) as Array<{ id: string }>).map((r) => r.id);
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(result.stdout).toContain(id);

    // Exactly once at the subscriber: three messages, and no copy arrives later.
    const got = await sub.inbox.waitFor(3, 10_000);
    await sleep(700);
    expect(sub.inbox.messages.map((m) => `${m.topic}=${m.payload.toString()}`).sort()).toEqual(
      items.map((i) => `${i.topic}=${i.payload}`).sort(),
    );
    expect(got).toHaveLength(3);

    // The devices the items named are online over HTTP.
    let seen: Awaited<ReturnType<typeof devicesOnline>> = [];
    for (const deadline = Date.now() + 8_000; Date.now() < deadline; await sleep(200)) {
      seen = await devicesOnline(`${which}-dev-`);
      if (devices.every((d) => seen.some((s) => s.client_id === d && s.online))) break;
    }
    for (const d of devices) expect(seen.find((s) => s.client_id === d)).toMatchObject({ online: true, transport: "http" });
  });

  it.each([
    ["401 (unknown key)", 401, "unauthorized"],
    ["403 (topic outside the key's scopes)", 403, "out-of-scope"],
    ["400 (wildcard in a topic)", 400, "wildcard-in-topic"],
  ] as const)("does not retry a %s and prints the problem", async (_name, status, problem) => {
    const base = topicBase(`gw-refused-${which}`);
    const key = status === 401 ? "emk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" : await newKey([`${base}/#`]);
    const topic = status === 403 ? `elsewhere/${base}` : status === 400 ? `${base}/+/temp` : `${base}/t`;
    proxy.reset([]);
    const result = await gateway({ API_KEY: key }, [{ topic, payload: "1", qos: 1, device: uid("refused") }]);
    expect(result.code, result.stderr).toBe(2);
    expect(proxy.seen).toHaveLength(1);
    expect(proxy.seen[0]!.upstream!.status).toBe(status);
    expect(result.stderr).toContain(`urn:edge-mqtt:problem:${problem}`);
  });

  it("talks https to the broker directly, trusting the local CA given as CA_FILE", async () => {
    const base = topicBase(`gw-tls-${which}`);
    const key = await newKey([`${base}/#`]);
    const sub = await connect(broker().url, { version: 5, ca: ca() } as never);
    await sub.subscribe(`${base}/#`, { qos: 1 });
    const items = [{ topic: `${base}/t`, payload: "tls", qos: 1, device: uid("tls") }];
    const direct = { BROKER_URL: broker().httpUrl, API_KEY: key, CA_FILE: broker().caFile! };
    const result = await gateway(direct, items);
    expect(result.code, result.stderr).toBe(0);
    expect((await sub.inbox.waitForTopic(`${base}/t`, 10_000)).payload.toString()).toBe("tls");
    // Without the CA the certificate does not verify: configuration, so not retried (exit 2).
    const { CA_FILE: _, ...untrusting } = direct;
    const refused = await gateway(untrusting, items);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/certificate/i);
    expect(refused.stderr).not.toMatch(/retrying in/);
  });

  it("gives up after MAX_ATTEMPTS when the broker keeps failing", async () => {
    const base = topicBase(`gw-cap-${which}`);
    const key = await newKey([`${base}/#`]);
    proxy.reset(["503", "503", "503", "503", "503"]);
    const result = await gateway({ API_KEY: key, MAX_ATTEMPTS: "3" }, [{ topic: `${base}/t`, payload: "1", qos: 1, device: uid("cap") }]);
    expect(result.code, result.stderr).toBe(3);
    expect(proxy.seen).toHaveLength(3);
    expect(result.stderr).toMatch(/gave up|giving up/);
  });
});

describe("examples/gateway/gateway.py batching", () => {
  it("sends up to --max-items per batch, each batch with its own Idempotency-Key", async () => {
    const base = topicBase("gw-batch");
    const key = await newKey([`${base}/#`]);
    const sub = await connect(broker().url, { version: 5, ca: ca() } as never);
    await sub.subscribe(`${base}/#`, { qos: 1 });
    const readings = Array.from({ length: 5 }, (_, n) => ({ device: `batch-${n % 2}`, topic: `${base}/r${n}`, temperature: 20 + n }));
    proxy.reset([]);
    const result = await run(
      PYTHON,
      [join(GATEWAY_DIR, "gateway.py"), "--max-items", "2", "--max-wait", "5"],
      { BROKER_URL: proxyUrl, API_KEY: key, ...FAST },
      readings.map((r) => JSON.stringify(r) + "\n").join(""),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(proxy.seen).toHaveLength(3); // 2 + 2 + 1
    expect(new Set(proxy.seen.map((s) => s.idempotencyKey)).size).toBe(3);
    const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l) as { device: string; topic: string; id: string });
    expect(lines.map((l) => l.topic)).toEqual(readings.map((r) => r.topic));
    for (const l of lines) expect(l.id).toMatch(/^[0-9a-f]{32}$/);
    const got = [...(await sub.inbox.waitFor(5, 10_000))];
    // The payload is the reading without its routing fields.
    expect(JSON.parse(got.find((m) => m.topic === `${base}/r3`)!.payload.toString())).toEqual({ temperature: 23 });

    // --simulate: readings of made-up devices, on <prefix>/<device>/telemetry.
    proxy.reset([]);
    const sim = await run(
      PYTHON,
      [join(GATEWAY_DIR, "gateway.py"), "--simulate", "2", "--count", "2", "--interval", "0", "--prefix", `${base}/sim`, "--max-wait", "0.2"],
      { BROKER_URL: proxyUrl, API_KEY: key, ...FAST },
      "",
    );
    expect(sim.code, sim.stderr).toBe(0);
    const simTopics = sim.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { topic: string }).topic);
    expect(simTopics.sort()).toEqual([`${base}/sim/sim-1/telemetry`, `${base}/sim/sim-1/telemetry`, `${base}/sim/sim-2/telemetry`, `${base}/sim/sim-2/telemetry`]);
    await sub.inbox.waitFor(9, 10_000);
  });
});
