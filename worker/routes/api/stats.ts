import { createRoute, z } from "@hono/zod-openapi";
import { createDb } from "../../../db";
import { countOnline, countSessions } from "../../../db/counts";
import { requireAdmin } from "../../auth";
import { adminProblems } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/stats: the broker's figures in one answer, for an operator (admin only): connections
 * and sessions, subscriptions, retained messages per shard, messages in and out (totals and
 * rates), drops, the retained alert. Live figures come from the metrics object (what the
 * objects last reported, within a second or so) and the device registry (D1). See
 * docs/sys-topics.md for what each figure means.
 */
export const stats = apiRouter();
stats.use("*", requireAdmin);

const Time = z.string().openapi({ format: "date-time", example: "2026-12-03T21:45:40.000Z" });
const Count = z.number().int().nonnegative();
const PerShard = z.record(z.string(), Count).openapi({ example: { "shard-0": 12, "shard-1": 9 } });
const Rates = z
  .object({ "1m": z.number(), "5m": z.number(), "15m": z.number() })
  .openapi("Rates", { description: "Messages per second, averaged over the last 1, 5 and 15 minutes." });
const MessageFlow = z.object({
  total: Count.openapi({ description: "Since `messages.totals_since` (carried over restarts)." }),
  since_start: Count.openapi({ description: "Since this run of the broker started (`started_at`)." }),
  per_second: Rates,
});
const RetainedAlert = z
  .object({ count: Count, threshold: Count, at: Time })
  .openapi("RetainedAlert", { description: "Raised when the total retained count passed RETAINED_ALERT_THRESHOLD; `count` as it was then." });

const StatsSchema = z
  .object({
    at: Time,
    started_at: Time.openapi({ description: "When this run of the broker started (a runtime restart is a new run)." }),
    uptime_seconds: Count,
    connections: z.object({
      online: Count.nullable().openapi({ description: "Connected now, as the presence shards report (null until one has reported)." }),
      registry_online: Count.openapi({ description: "Devices online in the registry (D1): online = 1 AND lease_expires_at > now; HTTP devices included." }),
    }),
    sessions: Count.openapi({ description: "Devices online, or offline with a session that has not expired (D1)." }),
    subscriptions: z.object({
      total: Count.nullable().openapi({ description: "Sum over the topic shards (a wildcard filter is held by every shard); null until a shard reported." }),
      by_shard: PerShard,
    }),
    retained: z.object({
      total: Count.nullable().openapi({ description: "Retained messages stored, all shards; null until a shard reported." }),
      by_shard: PerShard,
      alert_threshold: Count.openapi({ description: "RETAINED_ALERT_THRESHOLD; 0: the alert is off." }),
    }),
    messages: z.object({
      received: MessageFlow.openapi({ description: "MQTT PUBLISH messages received from clients (and HTTP ingest); not the broker's own $SYS messages." }),
      sent: MessageFlow.openapi({ description: "MQTT PUBLISH messages sent to clients ($SYS ones included)." }),
      totals_since: Time.openapi({ description: "When the totals started counting (the metrics object's first start)." }),
    }),
    drops: z.object({
      qos0: Count.openapi({ description: "QoS 0 messages dropped for clients that did not keep up." }),
      queue: Count.openapi({ description: "Queued QoS 1/2 messages dropped (oldest first) to keep a session's queue in bounds." }),
      rate: Count.openapi({ description: "Connections closed for publishing faster than the rate limits." }),
    }),
    alerts: z.object({ retained: RetainedAlert.nullable() }),
  })
  .openapi("Stats");

const iso = (ms: number) => new Date(ms).toISOString();

stats.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["stats"],
    summary: "Broker statistics",
    description: "Connections, sessions, subscriptions, retained messages (per shard), messages in and out (totals and rates), drops, alerts.",
    security: [{ bearer: [] }],
    responses: {
      200: { description: "The figures.", content: { "application/json": { schema: StatsSchema } } },
      ...adminProblems,
    },
  }),
  async (c) => {
    const now = Date.now();
    const db = createDb(c.env.DB);
    const [m, registryOnline, sessions] = await Promise.all([
      c.env.METRICS.get(c.env.METRICS.idFromName("metrics")).snapshot(),
      countOnline(db, now),
      countSessions(db, now),
    ]);
    const rates = (r: { "1min": number; "5min": number; "15min": number }) => ({ "1m": r["1min"], "5m": r["5min"], "15m": r["15min"] });
    const alert = m.alerts.retained;
    return c.json(
      {
        at: iso(m.at),
        started_at: iso(m.run.startedAt),
        uptime_seconds: m.run.uptime,
        connections: { online: m.gauges.connections, registry_online: registryOnline },
        sessions: sessions.n,
        subscriptions: { total: m.gauges.subscriptions.total, by_shard: m.gauges.subscriptions.byShard },
        retained: { total: m.gauges.retained.total, by_shard: m.gauges.retained.byShard, alert_threshold: m.alerts.retainedThreshold },
        messages: {
          received: { total: m.messages.received, since_start: m.run.messages.received, per_second: rates(m.rates.received) },
          sent: { total: m.messages.sent, since_start: m.run.messages.sent, per_second: rates(m.rates.sent) },
          totals_since: iso(m.since),
        },
        drops: { qos0: m.drops.qos0, queue: m.drops.queue, rate: m.drops.rate },
        alerts: { retained: alert ? { count: alert.count, threshold: alert.threshold, at: iso(alert.at) } : null },
      },
      200,
    );
  },
);
