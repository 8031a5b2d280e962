// A broker killed (SIGKILL) and started again in the middle of a QoS 1 and a QoS 2 stream
// with persistent sessions: every message the broker acknowledged reaches the subscriber,
// QoS 1 at least once and QoS 2 exactly once.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { getFreePort, startBroker, type Broker } from "../../scripts/broker-process.mjs";
import { TEST_VARS } from "./broker";

const MESSAGES = 60;
const WINDOW = 8;

let broker: Broker | undefined;
let log = "";
const persistDirs: string[] = [];

afterAll(async () => {
  await broker?.stop();
  for (const dir of persistDirs) await rm(dir, { recursive: true, force: true });
});

async function start(port: number, persistTo: string): Promise<Broker> {
  return startBroker({ port, persistTo, onOutput: (c: string) => (log += c), vars: TEST_VARS });
}

/** SIGKILL the whole broker (wrangler and workerd): nothing gets a chance to flush. */
async function kill(b: Broker): Promise<void> {
  try {
    process.kill(-b.pid, "SIGKILL");
  } catch {
    // gone already
  }
  await b.exited;
  await b.stop();
}

function persistentOptions(clientId: string, protocolVersion: 4 | 5): IClientOptions {
  return {
    clientId,
    protocolVersion,
    clean: false,
    reconnectPeriod: 300,
    connectTimeout: 5_000,
    ...(protocolVersion === 5 && { properties: { sessionExpiryInterval: 3600 } }),
  };
}

describe.each([4, 5] as const)("restart in the middle of a stream, MQTT %s", (version) => {
  it.each([1, 2] as const)(
    "QoS %s: every acknowledged message arrives as the QoS promises",
    async (qos) => {
      const port = await getFreePort();
      const persistTo = await mkdtemp(join(tmpdir(), "edge-mqtt-restart-"));
      persistDirs.push(persistTo);
      broker = await start(port, persistTo);
      const url = `ws://127.0.0.1:${port}/mqtt`;
      const topic = `restart/v${version}/q${qos}`;

      const received = new Map<string, number>();
      const sub: MqttClient = await mqtt.connectAsync(url, persistentOptions(`restart-sub-v${version}-q${qos}`, version));
      sub.on("message", (_t, payload) => {
        const key = payload.toString();
        received.set(key, (received.get(key) ?? 0) + 1);
      });
      await sub.subscribeAsync(topic, { qos });
      const pub: MqttClient = await mqtt.connectAsync(url, persistentOptions(`restart-pub-v${version}-q${qos}`, version));

      const acked = new Set<string>();
      let restarted = false;
      const restart = async () => {
        restarted = true;
        await kill(broker!);
        broker = await start(port, persistTo);
      };

      // Publish with up to WINDOW messages in flight; kill the broker halfway through.
      const inFlight = new Set<Promise<void>>();
      let restartDone: Promise<void> | undefined;
      for (let i = 0; i < MESSAGES; i++) {
        const payload = `m${i}`;
        const p: Promise<void> = pub.publishAsync(topic, payload, { qos }).then(() => {
          acked.add(payload);
          inFlight.delete(p);
        });
        inFlight.add(p);
        if (i === MESSAGES / 2) restartDone = restart();
        if (inFlight.size >= WINDOW) await Promise.race(inFlight);
      }
      await restartDone;
      await withTimeout(Promise.all(inFlight), 60_000, () => `publisher: ${acked.size}/${MESSAGES} acknowledged`);
      expect(restarted).toBe(true);
      expect(acked.size).toBe(MESSAGES);

      await waitFor(
        () => [...acked].every((m) => received.has(m)),
        30_000,
        () => `missing: ${[...acked].filter((m) => !received.has(m)).join(" ")}\n--- broker ---\n${log.slice(-3000)}`,
      );
      if (qos === 2) {
        const duplicated = [...received].filter(([, n]) => n !== 1);
        expect(duplicated, "QoS 2 delivers exactly once").toEqual([]);
      }
      await pub.endAsync(true);
      await sub.endAsync(true);
      await broker.stop();
      broker = undefined;
    },
    180_000,
  );
});

async function waitFor(check: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, describe: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${describe()}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
