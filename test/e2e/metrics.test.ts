// GET /metrics: the broker's own count of requests, storage rows and messages.
import mqtt from "mqtt";
import { describe, expect, it } from "vitest";
import { useBroker } from "./broker";

const broker = useBroker();

interface Snapshot {
  total: Record<"requests" | "webSocketMessages" | "alarms" | "rowsRead" | "rowsWritten" | "published" | "delivered", number>;
  /** From and to clients: `total.published` also counts the broker's own presence events on $SYS. */
  messages: { received: number; sent: number };
  byKind: Record<"session" | "connection" | "shard", Snapshot["total"]>;
}

async function snapshot(): Promise<Snapshot> {
  const res = await fetch(`${broker().httpUrl}/metrics`);
  expect(res.status).toBe(200);
  return (await res.json()) as Snapshot;
}

describe("GET /metrics", () => {
  it("counts what a QoS 1 message through the relay and the fast path costs", async () => {
    const before = await snapshot();
    const sub = await mqtt.connectAsync(`${broker().url}`, { clientId: "metrics-sub", reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(`${broker().url}/metrics-pub`, { clientId: "metrics-pub", reconnectPeriod: 0 });
    const got: string[] = [];
    sub.on("message", (_t, p) => got.push(p.toString()));
    await sub.subscribeAsync("metrics/#", { qos: 1 });
    for (let i = 0; i < 10; i++) await pub.publishAsync("metrics/a", `m${i}`, { qos: 1 });
    while (got.length < 10) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 2_500)); // objects report once per second
    const after = await snapshot();
    const delta = (k: keyof Snapshot["total"]) => after.total[k] - before.total[k];
    expect(after.messages.received - before.messages.received).toBe(10);
    expect(after.messages.sent - before.messages.sent).toBe(10);
    expect(delta("published")).toBeGreaterThanOrEqual(10); // and the presence events of the two connects
    expect(delta("delivered")).toBe(10);
    // Each QoS 1 delivery is stored once and deleted on PUBACK: at least 2 rows per message.
    expect(delta("rowsWritten")).toBeGreaterThanOrEqual(20);
    // At least: publisher session → shard, shard → subscriber session, session → connection.
    expect(delta("requests")).toBeGreaterThanOrEqual(30);
    expect(after.byKind.shard.requests - before.byKind.shard.requests).toBeGreaterThanOrEqual(10);
    expect(delta("webSocketMessages")).toBeGreaterThan(0);
    await pub.endAsync();
    await sub.endAsync();
  });
});
