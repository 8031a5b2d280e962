import mqtt from "mqtt";
import { describe, expect, it } from "vitest";
import { useBroker } from "./broker";

const broker = useBroker();

describe("MQTT over WebSocket (MQTT.js)", () => {
  it.each([
    [4, "/mqtt"],
    [5, "/mqtt"],
    [4, "/mqtt/<clientId>"],
    [5, "/mqtt/<clientId>"],
  ] as const)("protocol version %i via %s gets CONNACK", async (protocolVersion, path) => {
    const clientId = `e2e-connect-v${protocolVersion}-${path.length}`;
    const url = path === "/mqtt" ? broker().url : `${broker().url}/${encodeURIComponent(clientId)}`;
    const client = await mqtt
      .connectAsync(url, { protocolVersion, clientId, connectTimeout: 10_000, reconnectPeriod: 0 })
      .catch((err: Error) => {
        throw new Error(`${err.message}\n--- wrangler output ---\n${broker().output()}`);
      });
    try {
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync(true); // force: this test is about CONNACK, not the DISCONNECT handshake
    }
  });
});
