// Python's paho-mqtt (Debian's python3-paho-mqtt, transport="websockets") against the broker.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { useBroker } from "./broker";
import { pahoAvailable, PYTHON } from "./python";

const SCRIPT = fileURLToPath(new URL("./paho/paho_check.py", import.meta.url));

const broker = useBroker();

describe.skipIf(!pahoAvailable)("paho-mqtt over WebSocket", () => {
  it.each([4, 5])("MQTT %i: connect, retained, QoS 0/1/2, Will", async (version) => {
    const { port } = broker();
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [SCRIPT, "127.0.0.1", String(port), String(version)], { timeout: 60_000 }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
      );
    });
    const report = JSON.parse(stdout) as {
      connack: number;
      received: { topic: string; payload: string; qos: number; retain: boolean }[];
    };
    expect(report.connack).toBe(0);
    const byLevel = Object.fromEntries(report.received.map((m) => [m.topic.split("/").at(-1), m]));
    expect(byLevel.retained).toMatchObject({ payload: "kept", qos: 1, retain: true });
    expect(byLevel.q0).toMatchObject({ payload: "hello 0", qos: 0, retain: false });
    expect(byLevel.q1).toMatchObject({ payload: "hello 1", qos: 1 });
    expect(byLevel.q2).toMatchObject({ payload: "hello 2", qos: 2 });
    expect(byLevel.will).toMatchObject({ payload: "gone", qos: 1 });
    expect(report.received).toHaveLength(5);
  });
});
