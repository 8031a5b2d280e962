// MQTT over TCP through the bridge (bridge/, docs/tcp-bridge.md), with Mosquitto's own clients.
//
// One broker, started as `npm start -- --tls` starts it, with its loopback TCP listener (`tcp`)
// and a BRIDGE_SECRET: mosquitto_pub/mosquitto_sub over TCP and MQTT.js over wss:// exchange
// messages both ways (MQTT 3.1.1 and 5.0, QoS 0/1/2, retained, 256 KB payloads); a killed
// mosquitto_sub's Will is published; the standalone bridge (`node bridge/cli.mjs`, the documented
// command) carries a round trip to the wss:// broker with `--ca` and forwards each device's address.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { createServer, connect as tcpConnect, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startBridge } from "../../bridge/bridge.mjs";
import { getFreePort, ROOT, startLocalTcpListener, tcpPortFromArgs } from "../../scripts/broker-process.mjs";
import { ADMIN_AUTH, useBroker } from "./broker";
import { closeAll, connect, topicBase, uid, waitUntil } from "./clients";

const BRIDGE_SECRET = "tcp-bridge-test-secret-0123456789";
const broker = useBroker({ tls: true, tcp: true, vars: { BRIDGE_SECRET } });

let ca = "";
let tcpPort = 0;
let scratch = "";
beforeAll(async () => {
  ca = await readFile(broker().caFile!, "utf8");
  tcpPort = Number(new URL(broker().tcpUrl!).port);
  scratch = await mkdtemp(join(tmpdir(), "edge-mqtt-tcp-"));
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rm(scratch, { recursive: true, force: true });
});
afterEach(closeAll);

const children = new Set<ChildProcess>();

/** A running Mosquitto client (or the bridge CLI), its output collected. */
interface Proc {
  child: ChildProcess;
  out(): string;
  /** Resolves with the output once `pattern` appears in it; fails with the output so far. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<number | null>;
}

function start(command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  children.add(child);
  let out = "";
  child.stdout!.setEncoding("latin1").on("data", (c: string) => (out += c));
  child.stderr!.setEncoding("latin1").on("data", (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    out: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 8_000) {
      await waitUntil(() => pattern.test(out), `${command} ${args.join(" ")} to print ${pattern}; it printed:\n${out}`, timeoutMs);
      return out;
    },
  };
}

/** Runs a Mosquitto client to its end; fails on a non-zero exit with what it printed. */
async function run(command: string, args: string[]): Promise<string> {
  const proc = start(command, args);
  const code = await Promise.race([proc.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 10_000))]);
  if (code !== 0) {
    proc.child.kill("SIGKILL");
    throw new Error(`${command} ${args.join(" ")} -> ${code}:\n${proc.out()}`);
  }
  return proc.out();
}

type MosquittoVersion = "mqttv311" | "mqttv5";

/** A mosquitto_sub on a TCP port, resolved once its SUBACK arrived (`-d` prints it). */
async function subscribeOverTcp(port: number, topic: string, extra: string[] = [], version: MosquittoVersion = "mqttv5"): Promise<Proc> {
  // Line-buffered (stdbuf): mosquitto_sub block-buffers a pipe, and the SUBACK line is the readiness signal.
  const proc = start("stdbuf", ["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", String(port), "-V", version, "-t", topic, "-v", "-d", ...extra]);
  await proc.waitFor(/received SUBACK/);
  return proc;
}

/** The `topic payload` lines mosquitto_sub -v printed for topics under `base`. */
function messageLines(out: string, base: string): string[] {
  return out.split("\n").filter((line) => line.startsWith(`${base}/`));
}

function mosquittoPub(port: number, args: string[], version: MosquittoVersion = "mqttv5"): Promise<string> {
  return run("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(port), "-V", version, ...args]);
}

/** GET on the TLS broker's HTTP API, verified against its local CA. */
function getJson(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${broker().httpUrl}${path}`, { ca, headers: ADMIN_AUTH, timeout: 5_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The device's remote address as presence recorded it (flushed to D1 within PRESENCE_FLUSH_MS). */
async function remoteAddressOf(clientId: string): Promise<unknown> {
  let last: unknown;
  for (const deadline = Date.now() + 8_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    const res = await getJson(`/api/v1/devices/${encodeURIComponent(clientId)}`);
    last = res.body;
    const device = res.body.device as { remote_address?: string | null } | undefined;
    if (res.status === 200 && device?.remote_address) return device.remote_address;
  }
  throw new Error(`no remote_address for ${clientId}: ${JSON.stringify(last)}`);
}

const wss = (version: 4 | 5) => ({ version, ca });

describe.each([
  ["mqttv311", 4],
  ["mqttv5", 5],
] as const)("npm start's TCP listener, %s", (mosquittoVersion, version) => {
  it("mosquitto_sub over TCP receives what MQTT.js publishes over WebSocket, QoS 0/1/2", async () => {
    const base = topicBase("tcp-down");
    const sub = await subscribeOverTcp(tcpPort, `${base}/#`, ["-q", "2", "-C", "3"], mosquittoVersion);
    const pub = await connect(broker().url, wss(version));
    for (const qos of [0, 1, 2] as const) await pub.publish(`${base}/q${qos}`, `from-ws-q${qos}`, { qos });
    await sub.exited;
    expect(messageLines(sub.out(), base).sort()).toEqual([`${base}/q0 from-ws-q0`, `${base}/q1 from-ws-q1`, `${base}/q2 from-ws-q2`]);
  });

  it("MQTT.js over WebSocket receives what mosquitto_pub publishes over TCP, QoS 0/1/2", async () => {
    const base = topicBase("tcp-up");
    const sub = await connect(broker().url, wss(version));
    await sub.subscribe(`${base}/#`, { qos: 2 });
    for (const qos of [0, 1, 2]) await mosquittoPub(tcpPort, ["-t", `${base}/q${qos}`, "-m", `from-tcp-q${qos}`, "-q", String(qos)], mosquittoVersion);
    const got = await sub.inbox.waitFor(3);
    expect(got.map((m) => [m.topic, m.payload.toString(), m.qos]).sort()).toEqual([0, 1, 2].map((q) => [`${base}/q${q}`, `from-tcp-q${q}`, q]));
  });
});

describe("npm start's TCP listener", () => {
  it("a retained message published over TCP is delivered retained to a later WebSocket subscriber", async () => {
    const topic = `${topicBase("tcp-retain")}/status`;
    await mosquittoPub(tcpPort, ["-t", topic, "-m", "online", "-r", "-q", "1"]);
    const sub = await connect(broker().url, wss(5));
    await sub.subscribe(topic, { qos: 1 });
    const [m] = await sub.inbox.waitFor(1);
    expect([m!.payload.toString(), m!.retain]).toEqual(["online", true]);
  });

  it("a TCP client killed without DISCONNECT: its (retained) Will reaches a WebSocket subscriber", async () => {
    const base = topicBase("tcp-will");
    const willTopic = `${base}/status`;
    const watcher = await connect(broker().url, wss(5));
    await watcher.subscribe(willTopic, { qos: 1 });
    const device = await subscribeOverTcp(tcpPort, `${base}/cmd`, ["-i", uid("tcp-will"), "--will-topic", willTopic, "--will-payload", "offline", "--will-retain", "--will-qos", "1"]);
    device.child.kill("SIGKILL"); // no DISCONNECT: the bridge sees the TCP connection end
    const [will] = await watcher.inbox.waitFor(1, 8_000);
    expect([will!.topic, will!.payload.toString()]).toEqual([willTopic, "offline"]);
    const later = await connect(broker().url, wss(5));
    await later.subscribe(willTopic, { qos: 1 });
    const [retained] = await later.inbox.waitFor(1);
    expect([retained!.payload.toString(), retained!.retain]).toEqual(["offline", true]);
  });

  it("256 KB payloads cross both ways intact (backpressure, packets split over frames)", async () => {
    const base = topicBase("tcp-large");
    const up = randomBytes(256 * 1024);
    const down = randomBytes(256 * 1024);
    const file = join(scratch, "up.bin");
    await writeFile(file, up);
    const sub = await connect(broker().url, wss(5));
    await sub.subscribe(`${base}/up`, { qos: 1 });
    await mosquittoPub(tcpPort, ["-t", `${base}/up`, "-f", file, "-q", "1"]);
    const [m] = await sub.inbox.waitFor(1, 8_000);
    expect(m!.payload.equals(up)).toBe(true);
    // Down: retained, so the TCP subscriber needs no readiness signal; %x prints the payload as hex.
    await sub.publish(`${base}/down`, down, { qos: 1, retain: true });
    const out = await run("mosquitto_sub", ["-h", "127.0.0.1", "-p", String(tcpPort), "-t", `${base}/down`, "-C", "1", "-F", "%x", "-W", "8"]);
    expect(out.trim() === down.toString("hex")).toBe(true);
  });

  it("without the bridge secret the device's remote address is the bridge's own (loopback), not what the client is bound to", async () => {
    const clientId = uid("tcp-local");
    const sub = await subscribeOverTcp(tcpPort, `${topicBase("tcp-local")}/x`, ["-i", clientId, "-A", "127.0.0.8"]);
    expect(await remoteAddressOf(clientId)).toBe("127.0.0.1");
    sub.child.kill("SIGTERM");
  });
});

describe("standalone bridge (node bridge/cli.mjs)", () => {
  it("carries a round trip to a wss:// broker with --ca, and forwards each device's address with the secret", async () => {
    const port = await getFreePort();
    const bridge = start(process.execPath, [join(ROOT, "bridge", "cli.mjs"), "--broker", broker().url, "--ca", broker().caFile!, "--listen", `127.0.0.1:${port}`], {
      EDGE_MQTT_BRIDGE_SECRET: BRIDGE_SECRET,
    });
    try {
      await bridge.waitFor(/edge-mqtt-bridge: mqtt:\/\/127\.0\.0\.1:\d+ -> wss:/);
      const base = topicBase("standalone");
      const clientId = uid("tcp-device");
      const sub = await subscribeOverTcp(port, `${base}/#`, ["-i", clientId, "-A", "127.0.0.7", "-q", "1", "-C", "1"]);
      await mosquittoPub(port, ["-t", `${base}/hello`, "-m", "secret-payload-not-logged", "-q", "1"]);
      await sub.exited;
      expect(messageLines(sub.out(), base)).toEqual([`${base}/hello secret-payload-not-logged`]);
      expect(await remoteAddressOf(clientId)).toBe("127.0.0.7");
      // One line per connection opened and closed, with the peer; never a payload.
      expect(bridge.out()).toMatch(/open 127\.0\.0\.7:\d+ -> wss:\/\/127\.0\.0\.1:\d+/);
      expect(bridge.out()).toMatch(/close 127\.0\.0\.7:\d+ after/);
      expect(bridge.out()).not.toContain("secret-payload-not-logged");
    } finally {
      bridge.child.kill("SIGTERM");
      expect(await bridge.exited).toBe(0);
    }
  });

  it("--cert/--key: MQTT over TLS from the device, verified with the CA (mosquitto_pub --cafile)", async () => {
    const port = await getFreePort();
    const tlsDir = join(broker().persistTo, "tls"); // the local CA's server certificate is for 127.0.0.1
    const bridge = start(process.execPath, [join(ROOT, "bridge", "cli.mjs"), "--broker", broker().url, "--ca", broker().caFile!, "--listen", `127.0.0.1:${port}`, "--cert", join(tlsDir, "server.pem"), "--key", join(tlsDir, "server-key.pem")]);
    try {
      await bridge.waitFor(/edge-mqtt-bridge: mqtts:\/\/127\.0\.0\.1:\d+ -> wss:/);
      const topic = `${topicBase("tls-listener")}/x`;
      const sub = await connect(broker().url, wss(5));
      await sub.subscribe(topic, { qos: 1 });
      await mosquittoPub(port, ["--cafile", broker().caFile!, "-t", topic, "-m", "over-tls", "-q", "1"]);
      const [m] = await sub.inbox.waitFor(1);
      expect(m!.payload.toString()).toBe("over-tls");
      // Plain MQTT to the TLS port gets nowhere.
      await expect(mosquittoPub(port, ["-t", topic, "-m", "plain", "-q", "1"])).rejects.toThrow();
    } finally {
      bridge.child.kill("SIGTERM");
      await bridge.exited;
    }
  });

  it("bad options: usage and exit status 2", async () => {
    const proc = start(process.execPath, [join(ROOT, "bridge", "cli.mjs"), "--broker", "http://example.invalid/mqtt"]);
    expect(await proc.exited).toBe(2);
    expect(proc.out()).toMatch(/not a WebSocket URL[\s\S]*usage: edge-mqtt-bridge/);
  });

  it("broker unreachable: the TCP client is closed (no CONNACK is invented)", async () => {
    const lines: string[] = [];
    const bridge = await startBridge({ broker: `ws://127.0.0.1:${await getFreePort()}/mqtt`, port: 0, log: (l) => lines.push(l) });
    try {
      const received: Buffer[] = [];
      const socket = tcpConnect(bridge.port, "127.0.0.1");
      socket.on("data", (c: Buffer) => received.push(c));
      socket.on("error", () => undefined);
      const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
      await closed;
      expect(Buffer.concat(received).length).toBe(0);
      expect(lines.join("\n")).toMatch(/broker unreachable/);
    } finally {
      await bridge.close();
    }
  });
});

describe("npm start's TCP port options", () => {
  let taken: Server | undefined;
  afterEach(() => taken?.close());

  it("a taken port is one warning line, not a failure", async () => {
    taken = createServer();
    const port = await getFreePort();
    await new Promise<void>((resolve) => taken!.listen(port, "127.0.0.1", resolve));
    const result = await startLocalTcpListener({ brokerUrl: broker().url, port, ca });
    expect(result).toEqual({ warning: expect.stringMatching(new RegExp(`port ${port} is in use.*the MQTT TCP listener is off; --tcp-port N picks another`)) });
  });

  it("--tcp-port, MQTT_TCP_PORT, --no-tcp; 1883 by default", () => {
    expect(tcpPortFromArgs([], {})).toBe(1883);
    expect(tcpPortFromArgs(["--tcp-port", "11883"], { MQTT_TCP_PORT: "2000" })).toBe(11883);
    expect(tcpPortFromArgs([], { MQTT_TCP_PORT: "2000" })).toBe(2000);
    expect(tcpPortFromArgs(["--tcp-port=0"], {})).toBe(0);
    expect(tcpPortFromArgs(["--no-tcp"], { MQTT_TCP_PORT: "2000" })).toBe(0);
    expect(() => tcpPortFromArgs(["--tcp-port", "x"], {})).toThrow(/invalid port/);
  });
});
