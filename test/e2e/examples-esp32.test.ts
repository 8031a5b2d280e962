// examples/esp32: the firmware itself needs an ESP32 toolchain that CI does not have (see
// examples/esp32/README.md), so CI checks what runs the same on any machine: the shared
// device logic (examples/esp32/common/device_logic.h), compiled with the host's gcc as C99
// (what the ESP-IDF variant compiles) and g++ as C++11 (what the Arduino sketch compiles),
// and its test program run; a check that both firmware sources call only functions the
// header defines, since nothing else compiles them here; and the firmware's main loop built
// for the host (host-test/device_sim.c) driving a real broker, started as `npm start` starts
// it, through MQTT.js standing in for esp-mqtt.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import mqtt, { type IPublishPacket, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getFreePort } from "../../scripts/broker-process.mjs";
import { startTestBroker, type TestBroker } from "./broker";

const EXAMPLE = resolve(__dirname, "../../examples/esp32");
const HEADER = join(EXAMPLE, "common/device_logic.h");
const TEST_SOURCE = join(EXAMPLE, "host-test/device_logic_test.c");
const FLAGS = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wno-sign-conversion"];

const work = mkdtempSync(join(tmpdir(), "esp32-host-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Language = "c99" | "c++11";

/** Compiles the host test against the header in `root`/common and returns the binary's path. */
function compile(root: string, language: Language): string {
  const out = join(root, `device-logic-test-${language === "c99" ? "c" : "cpp"}`);
  const source = join(root, "host-test/device_logic_test.c");
  const args =
    language === "c99"
      ? ["gcc", "-std=c99", ...FLAGS, "-o", out, source]
      : ["g++", "-std=c++11", "-x", "c++", ...FLAGS, "-o", out, source];
  const result = spawnSync(args[0]!, args.slice(1), { encoding: "utf8" });
  if (result.error) throw new Error(`${args[0]} not found: the host test needs gcc and g++ (${result.error.message})`);
  if (result.status !== 0) throw new Error(`${args.join(" ")} failed:\n${result.stderr}`);
  return out;
}

/** Runs a compiled test: exit status and output. */
function run(binary: string): { status: number | null; stdout: string } {
  const result = spawnSync(binary, [], { encoding: "utf8", timeout: 20_000 });
  return { status: result.status, stdout: result.stdout };
}

/** A copy of the example's header and test under a temp root, the header optionally changed. */
function copyTree(name: string, editHeader?: (source: string) => string): string {
  const root = join(work, name);
  mkdirSync(join(root, "common"), { recursive: true });
  mkdirSync(join(root, "host-test"), { recursive: true });
  const header = readFileSync(HEADER, "utf8");
  writeFileSync(join(root, "common/device_logic.h"), editHeader ? editHeader(header) : header);
  copyFileSync(TEST_SOURCE, join(root, "host-test/device_logic_test.c"));
  return root;
}

/** Replaces exactly one occurrence, so a drifted header makes this test fail loudly. */
function replaceOnce(source: string, from: string, to: string): string {
  const at = source.indexOf(from);
  if (at < 0 || source.indexOf(from, at + 1) >= 0) throw new Error(`expected exactly one "${from}" in device_logic.h`);
  return source.slice(0, at) + to + source.slice(at + from.length);
}

describe("examples/esp32 shared device logic on the host", () => {
  const root = copyTree("as-shipped");

  for (const language of ["c99", "c++11"] as const) {
    it(`compiles warning-free as ${language} and passes every check`, () => {
      const { status, stdout } = run(compile(root, language));
      expect(stdout).not.toContain("FAIL");
      expect(stdout).toMatch(/^passed \d+ checks$/m);
      expect(Number(/passed (\d+) checks/.exec(stdout)?.[1])).toBeGreaterThan(150);
      expect(status).toBe(0);
    });
  }

  // The checks can fail: the same test against headers with one rule broken each.
  const mutants: Array<[string, (h: string) => string, RegExp]> = [
    [
      "no cap on the backoff",
      (h) => replaceOnce(h, "return ceiling > c->backoff_cap_ms ? c->backoff_cap_ms : (uint32_t)ceiling;", "return (uint32_t)ceiling;"),
      /FAIL test_backoff_schedule .*dl_backoff_ceiling_ms\(&c, 10\)/,
    ],
    [
      "no jitter (always the ceiling)",
      (h) => replaceOnce(h, "return half + random % (span + 1u);", "return (void)random, half + span;"),
      /FAIL test_backoff_jitter .*min_seen/,
    ],
    [
      "a clock wrap read as the far future",
      (h) => replaceOnce(h, "return (int32_t)(now_ms - deadline_ms) >= 0;", "return now_ms >= deadline_ms;"),
      /FAIL test_clock_wrap .*dl_tick\(&m, t \+ 1000\) == DL_ACT_NONE/,
    ],
    [
      "'/' allowed in a device id",
      (h) => replaceOnce(h, "c == '-' || c == '_' || c == '.';", "c == '-' || c == '_' || c == '.' || c == '/';"),
      /FAIL test_device_ids .*"a\/b"/,
    ],
  ];
  for (const [name, edit, expected] of mutants) {
    it(`fails when the header has ${name}`, () => {
      const { status, stdout } = run(compile(copyTree(name.replace(/\W+/g, "-"), edit), "c99"));
      expect(status).toBe(1);
      expect(stdout).toMatch(expected);
      expect(stdout).toMatch(/^failed \d+ of \d+ checks$/m);
    });
  }
});

describe("examples/esp32 firmware sources", () => {
  const header = readFileSync(HEADER, "utf8");
  const defined = new Set([...header.matchAll(/\b(dl_[a-z_]+)\s*\(/g)].map((m) => m[1]));
  const sources = {
    arduino: join(EXAMPLE, "arduino/edge_mqtt_device/edge_mqtt_device.ino"),
    idf: join(EXAMPLE, "idf/main/main.c"),
  };

  for (const [variant, path] of Object.entries(sources)) {
    it(`${variant} calls only dl_ functions the shared header defines`, () => {
      const source = readFileSync(path, "utf8");
      const used = [...new Set([...source.matchAll(/\b(dl_[a-z_]+)\s*\(/g)].map((m) => m[1]))];
      expect(used.length).toBeGreaterThan(8);
      expect(used.filter((name) => !defined.has(name))).toEqual([]);
      expect(source).toContain("device_logic.h");
    });
  }

  it("the ESP-IDF variant enables MQTT 5 and sets expiry on the status and the Will", () => {
    const defaults = readFileSync(join(EXAMPLE, "idf/sdkconfig.defaults"), "utf8");
    expect(defaults).toMatch(/^CONFIG_MQTT_PROTOCOL_5=y$/m);
    const main = readFileSync(sources.idf, "utf8");
    expect(main).toContain("MQTT_PROTOCOL_V_5");
    expect(main).toMatch(/\.message_expiry_interval\s*=\s*dl_online_expiry_s/); // PUBLISH "online"
    expect(main).toMatch(/\.message_expiry_interval\s*=\s*s_cfg\.offline_expiry_s/); // the Will
  });
});

// ---- The firmware's loop against a real broker ------------------------------------------

type SimAction =
  | { do: "configure"; client_id: string; will: { topic: string; payload: string; qos: 0 | 1 | 2; retain: boolean; expiry_s: number } }
  | { do: "connect"; failures: number; delay_ms: number }
  | { do: "publish"; topic: string; payload: string; qos: 0 | 1 | 2; retain: boolean; expiry_s: number };

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
  expiry?: number;
  at: number;
}

const HEARTBEAT_MS = 1000;
const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 800;
const STABLE_MS = 60_000;
const CLOCK_START = 2 ** 32 - 3000; // the 32-bit clock wraps three seconds into the run

async function waitFor<T>(find: () => T | undefined, what: string, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * device_sim as a child process, and the glue that does what the firmware does with
 * esp-mqtt: connect with the Will it was configured with (MQTT 5, no automatic reconnect),
 * publish what it asks, and report "connected" / "disconnected" back.
 */
class SimulatedDevice {
  readonly actions: Array<SimAction & { at: number }> = [];
  readonly closes: number[] = [];
  client: MqttClient | undefined;
  private readonly proc: ChildProcessWithoutNullStreams;
  private stderr = "";

  constructor(binary: string, id: string, private readonly target: () => string) {
    this.proc = spawn(binary, [id, String(HEARTBEAT_MS), String(BACKOFF_BASE_MS), String(BACKOFF_CAP_MS), String(STABLE_MS), String(CLOCK_START)]);
    this.proc.stderr.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const action = { ...(JSON.parse(line) as SimAction), at: Date.now() };
      this.actions.push(action);
      this.perform(action);
    });
  }

  send(event: "net-up" | "net-down" | "connected" | "disconnected" | "quit"): void {
    this.proc.stdin.write(`${event}\n`);
  }

  get configuration(): Extract<SimAction, { do: "configure" }> {
    const c = this.actions.find((a) => a.do === "configure");
    if (!c || c.do !== "configure") throw new Error(`device_sim printed no configuration; stderr: ${this.stderr}`);
    return c;
  }

  private perform(action: SimAction): void {
    if (action.do === "connect") this.connect();
    if (action.do === "publish" && this.client?.connected) {
      this.client.publish(action.topic, action.payload, {
        qos: action.qos,
        retain: action.retain,
        ...(action.expiry_s > 0 ? { properties: { messageExpiryInterval: action.expiry_s } } : {}),
      });
    }
  }

  private connect(): void {
    const { client_id, will } = this.configuration;
    const client = mqtt.connect(this.target(), {
      clientId: client_id,
      protocolVersion: 5,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0, // the state machine decides, as with disable_auto_reconnect
      connectTimeout: 5000,
      will: { topic: will.topic, payload: Buffer.from(will.payload), qos: will.qos, retain: will.retain, properties: { messageExpiryInterval: will.expiry_s } },
    });
    this.client = client;
    let closed = false;
    client.on("connect", () => this.send("connected"));
    client.on("error", () => {}); // a refused or unreachable broker ends in "close"
    client.on("close", () => {
      if (closed || this.client !== client) return;
      closed = true;
      this.closes.push(Date.now());
      this.send("disconnected");
    });
  }

  /** Ends without the Will: DISCONNECT, then the process. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.send("quit");
    if (client) await client.endAsync();
  }

  kill(): void {
    this.client?.end(true);
    this.proc.kill();
  }
}

/** A subscriber that records what arrives on devices/<id>/#, retain flags kept (Retain As Published). */
let observers = 0;
async function observe(url: string, id: string): Promise<{ got: Received[]; client: MqttClient }> {
  const got: Received[] = [];
  observers += 1;
  const clientId = `observer-${observers}-${id}`;
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, reconnectPeriod: 0 });
  client.on("message", (topic, payload, packet: IPublishPacket) => {
    got.push({ topic, payload: payload.toString(), retain: packet.retain, expiry: packet.properties?.messageExpiryInterval, at: Date.now() });
  });
  await client.subscribeAsync(`devices/${id}/#`, { qos: 1, rap: true });
  return { got, client };
}

/** What a new subscriber gets as the retained status now (undefined: nothing retained). */
async function retainedStatus(url: string, id: string): Promise<Received | undefined> {
  const { got, client } = await observe(url, id);
  await new Promise((r) => setTimeout(r, 400));
  await client.endAsync();
  return got.find((m) => m.topic === `devices/${id}/status`);
}

describe("examples/esp32 firmware loop on the host against a real broker", () => {
  let broker: TestBroker;
  let binary: string;
  beforeAll(async () => {
    binary = join(work, "device-sim");
    const built = spawnSync("gcc", ["-std=c99", ...FLAGS, "-o", binary, join(EXAMPLE, "host-test/device_sim.c")], { encoding: "utf8" });
    if (built.status !== 0) throw new Error(`gcc device_sim.c failed:\n${built.stderr}${built.error?.message ?? ""}`);
    broker = await startTestBroker();
  }, 120_000);
  afterAll(async () => {
    await broker?.stop();
  }, 30_000);

  it("online with expiry, heartbeats, the Will on a lost connection, backoff with jitter, expiry when gone", async () => {
    const id = `esp32-sim-${process.pid}`;
    const deadPort = await getFreePort(); // nothing listens there: an unreachable broker
    let target = broker.url;
    const watch = await observe(broker.url, id);
    const device = new SimulatedDevice(binary, id, () => target);
    const statuses = () => watch.got.filter((m) => m.topic === `devices/${id}/status`);
    try {
      // Boot: connects at once, publishes the retained "online" with three heartbeats' expiry.
      device.send("net-up");
      const online = await waitFor(() => statuses().find((m) => m.payload === "online"), "the retained online");
      expect(online.retain).toBe(true);
      expect(online.expiry).toBeGreaterThanOrEqual(2);
      expect(online.expiry).toBeLessThanOrEqual(3);
      expect(device.configuration.will).toEqual({ topic: `devices/${id}/status`, payload: "offline", qos: 1, retain: true, expiry_s: 604800 });

      // Heartbeats once a second, across the wrap of the 32-bit clock.
      const beats = await waitFor(() => {
        const b = watch.got.filter((m) => m.topic === `devices/${id}/heartbeat`);
        return b.length >= 4 ? b : undefined;
      }, "four heartbeats");
      const bodies = beats.map((b) => JSON.parse(b.payload) as { seq: number; interval_s: number; ts: number });
      expect(bodies.map((b) => b.seq)).toEqual([1, 2, 3, 4]);
      expect(bodies.every((b) => b.interval_s === 1 && Math.abs(b.ts - Date.now() / 1000) < 30)).toBe(true);
      const gaps = beats.slice(1).map((b, i) => b.at - beats[i]!.at);
      // one per interval, no burst (loose bounds: the messages cross a loaded CI machine's broker)
      expect(Math.min(...gaps)).toBeGreaterThan(500);
      expect(Math.max(...gaps)).toBeLessThan(2500);
      expect(beats.every((b) => !b.retain)).toBe(true);

      // The connection dies without DISCONNECT: the broker publishes the Will, retained.
      target = `ws://127.0.0.1:${deadPort}/mqtt`; // and the next attempts find nobody
      device.client!.stream.destroy();
      const offline = await waitFor(() => statuses().find((m) => m.payload === "offline"), "the Will (offline)");
      expect(offline.retain).toBe(true);
      const kept = await retainedStatus(broker.url, id);
      expect(kept?.payload).toBe("offline");
      expect(kept?.expiry).toBeGreaterThan(604000);
      expect(kept?.expiry).toBeLessThanOrEqual(604800);

      // Four failed attempts: each delay in [c/2, c], c doubling from 200 ms to the 800 ms cap.
      const retries = await waitFor(() => {
        const r = device.actions.filter((a) => a.do === "connect" && a.failures > 0);
        return r.length >= 4 ? r : undefined;
      }, "four retries");
      target = broker.url;
      const windows = [[100, 200], [200, 400], [400, 800], [400, 800]];
      retries.slice(0, 4).forEach((r, i) => {
        if (r.do !== "connect") throw new Error("not a connect");
        expect(r.failures).toBe(i + 1);
        expect(r.delay_ms).toBeGreaterThanOrEqual(windows[i]![0]!);
        expect(r.delay_ms).toBeLessThanOrEqual(windows[i]![1]!);
        // and it really waited that long after the failure was reported
        expect(r.at - device.closes[i]!).toBeGreaterThanOrEqual(r.delay_ms - 25);
      });

      // Back: "online" again, replacing the retained "offline".
      const back = await waitFor(() => statuses().filter((m) => m.payload === "online" && m.at > offline.at)[0], "online after the outage");
      expect(back.retain).toBe(true);

      // A normal DISCONNECT sends no Will [MQTT-3.1.2-10]; the retained "online" then expires
      // on its own after three missed heartbeats: no ghost.
      const stoppedAt = Date.now();
      await device.stop();
      let last: Received | undefined = { topic: "", payload: "online", retain: true, at: 0 };
      const expiryDeadline = Date.now() + 8000;
      while (last && Date.now() < expiryDeadline) {
        last = await retainedStatus(broker.url, id);
      }
      expect(last).toBeUndefined();
      expect(Date.now() - stoppedAt).toBeGreaterThan(1000); // it did not vanish at once
      expect(statuses().filter((m) => m.payload === "offline" && m.at > back.at)).toEqual([]);
    } finally {
      device.kill();
      await watch.client.endAsync();
    }
  }, 60_000);
});
