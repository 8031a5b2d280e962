/**
 * Statistics inside workerd: the MetricsDO's gauges, rates, run and alert, GET /metrics in
 * JSON and Prometheus' text format, GET /api/v1/stats (admin only) against D1, and the $SYS
 * alarm. Unit-level tests use their own metrics object (a unique name); the routes read the
 * real one ("metrics"), so they compare before and after.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardOfTopic } from "../../core/topics";
import { shardCountFromEnv, shardName } from "../../durable-objects/config";
import { countInWorker, zeroCounters, type Counters } from "../../durable-objects/metrics";

const BASE = "http://broker.test";
const ADMIN = { Authorization: "Bearer test-admin-token-0123456789" };
let n = 0;
const unique = (p: string) => `${p}-${n++}-${crypto.randomUUID().slice(0, 8)}`;

const metricsObject = (name = unique("metrics-test")) => env.METRICS.get(env.METRICS.idFromName(name));
const counters = (over: Partial<Counters> = {}): Counters => ({ ...zeroCounters(), ...over });
const get = (path: string, headers?: HeadersInit) => exports.default.fetch(new Request(`${BASE}${path}`, { headers }));

/** The retained messages of $SYS topics a shard holds, topic -> payload. */
async function retainedOnShard(topic: string): Promise<string | undefined> {
  const shard = env.SHARDS.get(env.SHARDS.idFromName(shardName(shardOfTopic(topic, shardCountFromEnv(env)))));
  return runInDurableObject(shard, (_i, state) => {
    const row = state.storage.sql.exec<{ b: string | null }>(`SELECT json_extract(message, '$.payload."$b64"') AS b FROM retained WHERE topic = ?`, topic).toArray()[0];
    if (!row) return undefined;
    return row.b ? new TextDecoder().decode(Uint8Array.from(atob(row.b), (c) => c.charCodeAt(0))) : "";
  });
}

describe("MetricsDO gauges", () => {
  it("keeps the latest value per reporting object and sums them, per shard too", async () => {
    const m = metricsObject();
    await m.add("shard", counters(), {}, { id: "a", gauges: [{ name: "retained", value: 3, label: "shard-0" }, { name: "subscriptions", value: 1, label: "shard-0" }] });
    await m.add("shard", counters(), {}, { id: "b", gauges: [{ name: "retained", value: 4, label: "shard-1" }] });
    await m.add("presence", counters(), {}, { id: "p0", gauges: [{ name: "connections", value: 2 }] });
    await m.add("presence", counters(), {}, { id: "p1", gauges: [{ name: "connections", value: 5 }] });
    // A shard reports again: its value replaces its last one, it is not added.
    await m.add("shard", counters(), {}, { id: "a", gauges: [{ name: "retained", value: 1, label: "shard-0" }] });
    const s = await m.snapshot();
    expect(s.gauges).toEqual({
      connections: 7,
      subscriptions: { total: 1, byShard: { "shard-0": 1 } },
      retained: { total: 5, byShard: { "shard-0": 1, "shard-1": 4 } },
    });
  });

  it("keeps the gauges when the metrics object is evicted", async () => {
    const m = metricsObject();
    await m.add("shard", counters(), {}, { id: "a", gauges: [{ name: "retained", value: 9, label: "shard-3" }] });
    await evictDurableObject(m);
    expect((await m.snapshot()).gauges.retained).toEqual({ total: 9, byShard: { "shard-3": 9 } });
  });

  it("shows null for a gauge nobody reported, 0 for one reported as 0", async () => {
    const m = metricsObject();
    expect((await m.snapshot()).gauges.connections).toBeNull();
    await m.add("presence", counters(), {}, { id: "p", gauges: [{ name: "connections", value: 0 }] });
    expect((await m.snapshot()).gauges.connections).toBe(0);
  });
});

describe("MetricsDO since, run and rates", () => {
  it("saves `since` as soon as the totals exist: an eviction before the first save does not move it", async () => {
    const m = metricsObject();
    const first = await m.snapshot();
    await evictDurableObject(m);
    await new Promise((r) => setTimeout(r, 20));
    const second = await m.snapshot();
    expect(second.since).toBe(first.since);
  });

  it("keeps its run (and uptime) over an eviction within one runtime, and counts the run's messages", async () => {
    const m = metricsObject();
    await m.add("session", counters({ published: 4, delivered: 6, webSocketMessages: 4 }));
    const a = await m.snapshot();
    await evictDurableObject(m);
    const b = await m.snapshot();
    expect(b.run.startedAt).toBe(a.run.startedAt);
    expect(b.run.startedAt).toBeLessThanOrEqual(b.at);
    expect(b.run.uptime).toBe(Math.floor((b.at - b.run.startedAt) / 1000));
    // Totals are saved at most once a second: an eviction within it loses what was not saved,
    // never more. The run's counts are the totals less the totals at its start.
    expect(b.run.total.published).toBe(b.total.published - (a.total.published - a.run.total.published));
    expect(a.run.total.published).toBe(4);
    expect(a.run.total.delivered).toBe(6);
  });

  it("does not count the broker's own presence events as messages received", async () => {
    const m = metricsObject();
    await m.add("session", counters({ published: 3, delivered: 2 }));
    await m.add("presence", counters({ published: 5 }));
    const s = await m.snapshot();
    expect(s.total.published).toBe(8); // every message routed
    expect(s.messages).toEqual({ received: 3, sent: 2 });
    expect(s.run.messages).toEqual({ received: 3, sent: 2 });
    expect(s.rates.received["1min"]).toBeCloseTo(s.rates.sent["1min"] * 1.5);
  });

  it("computes messages per second over 1, 5 and 15 minutes from the reports", async () => {
    const m = metricsObject();
    await m.add("session", counters({ published: 120, delivered: 300 }));
    const s = await m.snapshot();
    for (const w of ["1min", "5min", "15min"] as const) {
      expect(s.rates.received[w]).toBeGreaterThan(0);
      expect(s.rates.sent[w]).toBeGreaterThan(s.rates.received[w]);
    }
    // 120 messages in the last minute: at least 2 per second, at most 120 / 50 s.
    expect(s.rates.received["1min"]).toBeGreaterThanOrEqual(2);
    expect(s.rates.received["1min"]).toBeLessThanOrEqual(120 / 50);
  });
});

describe("countInWorker (HTTP ingest)", () => {
  it("reports the Worker's counts as kind worker within a second, as messages received", async () => {
    const real = metricsObject("metrics");
    const before = await real.snapshot();
    const waits: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void waits.push(p) };
    countInWorker(env, ctx, "published", 2);
    countInWorker(env, ctx, "published", 3); // the same second: one report
    expect(waits).toHaveLength(1);
    await Promise.all(waits);
    const after = await real.snapshot();
    expect(after.byKind.worker.published - (before.byKind.worker?.published ?? 0)).toBe(5);
    expect(after.messages.received - before.messages.received).toBe(5);
  });
});

describe("MetricsDO $SYS alarm and retained alert", () => {
  it("arms its alarm on client traffic, publishes the $SYS statistics retained, and stops once idle", async () => {
    const m = metricsObject();
    await m.add("shard", counters({ requests: 1 }));
    expect(await runInDurableObject(m, (_i, state) => state.storage.getAlarm())).toBeNull(); // no client traffic: no alarm
    await m.add("session", counters({ webSocketMessages: 3, published: 2 }), {}, undefined);
    // The first statistics go out at once (an alarm set for now, which may be running already).
    await expect.poll(() => retainedOnShard("$SYS/broker/version")).toMatch(/^edge-mqtt version \d+\.\d+\.\d+$/);
    expect(await retainedOnShard("$SYS/broker/uptime")).toMatch(/^\d+ seconds$/);
    expect(Number(await retainedOnShard("$SYS/broker/clients/total"))).toBeGreaterThanOrEqual(0);
    // Re-armed SYS_INTERVAL later while there was traffic in the last 5 minutes.
    await expect.poll(() => runInDurableObject(m, (_i, state) => state.storage.getAlarm())).not.toBeNull();
    const at = (await runInDurableObject(m, (_i, state) => state.storage.getAlarm()))!;
    expect(at - Date.now()).toBeGreaterThan(Number(env.SYS_INTERVAL) * 1000 - 2_000);
    // Idle: the last traffic is older than 5 minutes; the alarm runs once more and is not re-armed.
    await runInDurableObject(m, (_i, state) => {
      const totals = state.storage.kv.get<{ lastActivity?: number }>("totals")!;
      state.storage.kv.put("totals", { ...totals, lastActivity: Date.now() - 6 * 60_000 });
    });
    await evictDurableObject(m);
    expect(await runDurableObjectAlarm(m)).toBe(true);
    expect(await runInDurableObject(m, (_i, state) => state.storage.getAlarm())).toBeNull();
  });

  it("raises the retained alert once when the total passes RETAINED_ALERT_THRESHOLD, and clears it below", async () => {
    const threshold = Number(env.RETAINED_ALERT_THRESHOLD);
    expect(threshold).toBeGreaterThan(0);
    const m = metricsObject();
    await m.add("shard", counters(), {}, { id: "a", gauges: [{ name: "retained", value: threshold, label: "shard-0" }] });
    expect((await m.snapshot()).alerts).toEqual({ retained: null, retainedThreshold: threshold });
    await m.add("shard", counters(), {}, { id: "b", gauges: [{ name: "retained", value: 1, label: "shard-1" }] });
    const raised = (await m.snapshot()).alerts.retained;
    expect(raised).toMatchObject({ count: threshold + 1, threshold });
    expect(JSON.parse((await retainedOnShard("$SYS/broker/alerts/retained"))!)).toEqual({ count: threshold + 1, threshold, at: new Date(raised!.at).toISOString() });
    // Still over: no new alert (same `at`).
    await m.add("shard", counters(), {}, { id: "b", gauges: [{ name: "retained", value: 2, label: "shard-1" }] });
    expect((await m.snapshot()).alerts.retained).toEqual(raised);
    // Below: cleared, and the retained alert is deleted by an empty retained message.
    await m.add("shard", counters(), {}, { id: "a", gauges: [{ name: "retained", value: 0, label: "shard-0" }] });
    expect((await m.snapshot()).alerts.retained).toBeNull();
    expect(await retainedOnShard("$SYS/broker/alerts/retained")).toBeUndefined();
  });
});

describe("GET /metrics", () => {
  it("answers JSON by default, with the run, rates, gauges and alerts", async () => {
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(res.headers.get("Vary")).toBe("Accept");
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(expect.arrayContaining(["since", "at", "total", "byKind", "drops", "reportingRequests", "run", "rates", "gauges", "alerts"]));
  });

  it("answers Prometheus' text format to Prometheus' Accept header and to text/plain", async () => {
    for (const accept of ["text/plain", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"]) {
      const res = await get("/metrics", { Accept: accept });
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const text = await res.text();
      expect(text).toContain("# TYPE edge_mqtt_messages_received_total counter\n");
      expect(text).toMatch(/^edge_mqtt_object_requests_total\{kind="session"\} \d+$/m);
      expect(text).toMatch(/^edge_mqtt_uptime_seconds \d+$/m);
      // Every sample line is `name{labels} value`.
      for (const line of text.trim().split("\n")) expect(line).toMatch(/^(# (HELP|TYPE) \S+ .+|[a-z0-9_:]+(\{[^}]*\})? \S+)$/);
    }
    expect((await get("/metrics?format=prometheus")).headers.get("Content-Type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect((await get("/metrics", { Accept: "application/json" })).headers.get("Content-Type")).toMatch(/^application\/json/);
  });
});

describe("GET /api/v1/stats", () => {
  it("needs the admin token", async () => {
    const none = await get("/api/v1/stats");
    expect(none.status).toBe(401);
    expect(none.headers.get("Content-Type")).toBe("application/problem+json");
    expect((await get("/api/v1/stats", { Authorization: "Bearer wrong" })).status).toBe(401);
  });

  it("counts connections and sessions in D1 with the presence semantics, and has the documented shape", async () => {
    const before = (await (await get("/api/v1/stats", ADMIN)).json()) as { connections: { registry_online: number }; sessions: number };
    const now = Date.now();
    const p = unique("dev");
    const insert = env.DB.prepare(
      `INSERT INTO devices (client_id, protocol_version, online, lease_expires_at, session_expires_at) VALUES (?, 5, ?, ?, ?)`,
    );
    await env.DB.batch([
      insert.bind(`${p}-online`, 1, now + 60_000, null), // online
      insert.bind(`${p}-lease-expired`, 1, now - 1_000, null), // offline: lease expired
      insert.bind(`${p}-offline-session`, 0, null, now + 3_600_000), // offline, session kept
      insert.bind(`${p}-offline-gone`, 0, null, now - 1_000), // offline, session expired
    ]);
    const res = await get("/api/v1/stats", ADMIN);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    expect(body.connections.registry_online - before.connections.registry_online).toBe(1);
    expect(body.sessions - before.sessions).toBe(2);
    expect(body).toMatchObject({
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      started_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      uptime_seconds: expect.any(Number),
      subscriptions: { by_shard: expect.any(Object) },
      retained: { by_shard: expect.any(Object), alert_threshold: Number(env.RETAINED_ALERT_THRESHOLD) },
      messages: {
        received: { total: expect.any(Number), since_start: expect.any(Number), per_second: { "1m": expect.any(Number), "5m": expect.any(Number), "15m": expect.any(Number) } },
        sent: { total: expect.any(Number), since_start: expect.any(Number), per_second: expect.any(Object) },
        totals_since: expect.any(String),
      },
      drops: { qos0: expect.any(Number), queue: expect.any(Number), rate: expect.any(Number) },
      alerts: { retained: null },
    });
  });

  it("is in the OpenAPI document", async () => {
    const doc = (await (await get("/api/v1/openapi.json")).json()) as { paths: Record<string, any>; components: { schemas: Record<string, unknown> } };
    expect(doc.paths["/stats"]?.get?.responses).toHaveProperty("200");
    expect(doc.paths["/stats"]?.get?.responses).toHaveProperty("401");
    expect(doc.components.schemas).toHaveProperty("Stats");
  });
});
