// Statistics end to end, against brokers started as `npm start` starts them: $SYS/broker/...
// topics read by an MQTT.js subscriber, GET /metrics in Prometheus' text format,
// GET /api/v1/stats, the retained alert, and uptime versus totals across a restart.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { getFreePort, startBroker, type Broker } from "../../scripts/broker-process.mjs";
import { ADMIN_AUTH, sysAdmin, TEST_VARS, useBroker } from "./broker";
import { closeAll, connect, sleep, uid, type Received } from "./clients";

afterEach(closeAll);

const num = (m: Received) => Number(m.payload.toString());

async function stats(httpUrl: string): Promise<Record<string, any>> {
  const res = await fetch(`${httpUrl}/api/v1/stats`, { headers: ADMIN_AUTH });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, any>;
}

/** A sample's value in Prometheus' text format, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("$SYS broker statistics every SYS_INTERVAL (1 s)", () => {
  const broker = useBroker({ vars: { SYS_INTERVAL: "1", MAX_PUBLISH_RATE: "0" } });

  it("a subscriber to $SYS/broker/# receives Mosquitto's topics with sensible values", async () => {
    const sub = await connect(broker().url, { version: 5, label: "sys-sub", ...(await sysAdmin(broker())) });
    await sub.subscribe("$SYS/broker/#");
    const version = await sub.inbox.waitForTopic("$SYS/broker/version", 10_000);
    expect(version.payload.toString()).toMatch(/^edge-mqtt version \d+\.\d+\.\d+$/);
    expect(version.qos).toBe(0);
    expect((await sub.inbox.waitForTopic("$SYS/broker/uptime")).payload.toString()).toMatch(/^\d+ seconds$/);
    // Connected while this subscriber is.
    await sub.inbox.waitFor(1, 10_000, (m) => m.topic === "$SYS/broker/clients/connected" && num(m) >= 1);
    await sub.inbox.waitFor(1, 10_000, (m) => m.topic === "$SYS/broker/clients/total" && num(m) >= 1);

    // Messages received grows after publishes, and so does the 1 minute load.
    const pub = await connect(broker().url, { version: 5, route: "fast", label: "sys-pub" });
    const topic = `stats/${uid("t")}`;
    for (let i = 0; i < 5; i++) await pub.publish(topic, `m${i}`, { qos: 1 });
    await sub.inbox.waitFor(1, 10_000, (m) => m.topic === "$SYS/broker/messages/received" && num(m) >= 5);
    await sub.inbox.waitFor(1, 10_000, (m) => m.topic === "$SYS/broker/publish/messages/received" && num(m) >= 5);
    await sub.inbox.waitFor(1, 10_000, (m) => m.topic === "$SYS/broker/load/messages/received/1min" && num(m) > 0);

    // Every 1 s only what changed: the uptime changes each time, the version never again.
    const uptimes = await sub.inbox.waitFor(3, 10_000, (m) => m.topic === "$SYS/broker/uptime");
    const seconds = uptimes.map((m) => Number.parseInt(m.payload.toString(), 10));
    expect(seconds[2]!).toBeGreaterThan(seconds[0]!);
    expect(sub.inbox.messages.filter((m) => m.topic === "$SYS/broker/version")).toHaveLength(1);

    // Retained: a new subscriber has the latest values at once.
    const late = await connect(broker().url, { version: 4, label: "sys-late", ...(await sysAdmin(broker())) });
    await late.subscribe("$SYS/broker/uptime");
    const first = await late.inbox.waitForTopic("$SYS/broker/uptime", 2_000);
    expect(first.retain).toBe(true);
  });

  it("GET /metrics speaks Prometheus' text format, and /api/v1/stats has the same figures", async () => {
    const pub = await connect(broker().url, { version: 5, label: "prom-pub" });
    for (let i = 0; i < 3; i++) await pub.publish(`stats/${uid("p")}`, "x", { qos: 1, retain: true });
    await sleep(2_500); // objects report once per second
    const res = await fetch(`${broker().httpUrl}/metrics`, { headers: { Accept: "text/plain;version=0.0.4;q=0.5,*/*;q=0.1" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    expect(text).toContain("# TYPE edge_mqtt_messages_received_total counter");
    expect(sample(text, "edge_mqtt_messages_received_total")).toBeGreaterThanOrEqual(8);
    expect(sample(text, 'edge_mqtt_object_requests_total{kind="session"}')).toBeGreaterThan(0);
    expect(sample(text, "edge_mqtt_connections")).toBeGreaterThanOrEqual(1);
    const retainedPerShard = text.split("\n").filter((l) => l.startsWith("edge_mqtt_retained_messages{shard="));
    // 3 published here and the broker's own $SYS statistics.
    expect(retainedPerShard.reduce((sum, l) => sum + Number(l.split(" ")[1]), 0)).toBeGreaterThanOrEqual(3);
    expect(sample(text, "edge_mqtt_uptime_seconds")).toBeGreaterThanOrEqual(1);

    // JSON stays the answer to a client that asks for nothing in particular.
    expect(((await (await fetch(`${broker().httpUrl}/metrics`)).json()) as { total: unknown }).total).toBeDefined();

    const s = await stats(broker().httpUrl);
    expect(s.connections.online).toBeGreaterThanOrEqual(1);
    expect(s.connections.registry_online).toBeGreaterThanOrEqual(1);
    expect(s.sessions).toBeGreaterThanOrEqual(1);
    expect(s.messages.received.total).toBeGreaterThanOrEqual(8);
    expect(s.messages.received.since_start).toBeGreaterThanOrEqual(8);
    expect(s.messages.received.per_second["1m"]).toBeGreaterThan(0);
    expect(s.retained.total).toBeGreaterThanOrEqual(3);
    expect(Object.keys(s.retained.by_shard).every((k) => /^shard-\d+$/.test(k))).toBe(true);
    expect(s.uptime_seconds).toBeGreaterThanOrEqual(1);
    expect(s.alerts.retained).toBeNull();
    expect((await fetch(`${broker().httpUrl}/api/v1/stats`)).status).toBe(401);
  });
});

describe("retained alert (RETAINED_ALERT_THRESHOLD 3, $SYS statistics off)", () => {
  const broker = useBroker({ vars: { SYS_INTERVAL: "0", RETAINED_ALERT_THRESHOLD: "3" } });

  it("fires once 4 retained messages exist, and clears once fewer than 3 remain", async () => {
    const watcher = await connect(broker().url, { version: 5, label: "alert-watcher", ...(await sysAdmin(broker())) });
    await watcher.subscribe("$SYS/broker/alerts/retained");
    const pub = await connect(broker().url, { version: 5, label: "alert-pub" });
    const base = `alert/${uid("r")}`;
    for (let i = 0; i < 3; i++) await pub.publish(`${base}/${i}`, `v${i}`, { qos: 1, retain: true });
    await sleep(2_500);
    expect(watcher.inbox.length).toBe(0); // 3 is not past 3
    await pub.publish(`${base}/3`, "v3", { qos: 1, retain: true });
    const alert = await watcher.inbox.waitForTopic("$SYS/broker/alerts/retained", 10_000);
    expect(JSON.parse(alert.payload.toString())).toEqual({ count: 4, threshold: 3, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });

    const s = await stats(broker().httpUrl);
    expect(s.alerts.retained).toMatchObject({ count: 4, threshold: 3 });
    const metrics = (await (await fetch(`${broker().httpUrl}/metrics`, { headers: { Accept: "application/json" } })).json()) as { alerts: { retained: unknown } };
    expect(metrics.alerts.retained).toMatchObject({ count: 4, threshold: 3 });
    expect(broker().output()).toContain("passed the threshold 3");

    // A subscriber that comes later sees the alert: it is retained.
    const late = await connect(broker().url, { version: 4, label: "alert-late", ...(await sysAdmin(broker())) });
    await late.subscribe("$SYS/broker/alerts/retained");
    expect((await late.inbox.waitForTopic("$SYS/broker/alerts/retained")).retain).toBe(true);

    // More retained messages: no second alert.
    await pub.publish(`${base}/4`, "v4", { qos: 1, retain: true });
    // Down to 2 (< 3): cleared with an empty retained message.
    for (const i of [0, 1, 2]) await pub.publish(`${base}/${i}`, "", { qos: 1, retain: true });
    const cleared = await watcher.inbox.waitFor(2, 10_000, (m) => m.topic === "$SYS/broker/alerts/retained");
    expect(cleared[1]!.payload.length).toBe(0);
    expect((await stats(broker().httpUrl)).alerts.retained).toBeNull();
  });
});

describe("uptime counts from this run; totals carry over a restart", () => {
  let broker: Broker | undefined;
  let persistTo: string | undefined;
  afterAll(async () => {
    await broker?.stop();
    if (persistTo) await rm(persistTo, { recursive: true, force: true });
  });

  it("a restarted broker has a new start and uptime, the same `since` and its totals", async () => {
    persistTo = await mkdtemp(join(tmpdir(), "edge-mqtt-stats-"));
    const port = await getFreePort();
    const start = () => startBroker({ port, persistTo: persistTo!, vars: { ...TEST_VARS, SYS_INTERVAL: "0" } });
    broker = await start();
    const url = `ws://127.0.0.1:${port}/mqtt`;
    const http = `http://127.0.0.1:${port}`;
    const pub = await connect(url, { version: 5, label: "restart-pub" });
    for (let i = 0; i < 4; i++) await pub.publish(`restart/${uid("t")}`, "x", { qos: 1 });
    await sleep(2_500); // reported, and the totals saved
    const before = (await (await fetch(`${http}/metrics`)).json()) as Record<string, any>;
    expect(before.messages.received).toBe(4);
    await closeAll();
    await broker.stop();
    await sleep(1_100); // a start at least a second later
    broker = await start();
    const after = (await (await fetch(`${http}/metrics`)).json()) as Record<string, any>;
    expect(after.since).toBe(before.since);
    expect(after.messages.received).toBe(before.messages.received);
    expect(after.run.startedAt).toBeGreaterThan(before.run.startedAt);
    expect(after.run.messages.received).toBe(0);
    expect(after.run.uptime).toBeLessThan(before.run.uptime + 60);
    const s = await stats(http);
    expect(s.messages.received.total).toBe(before.messages.received);
    expect(s.messages.received.since_start).toBe(0);
  });
});
