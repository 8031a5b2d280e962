import { Hono } from "hono";
import { formatPrometheus, metricFamilies, metricsFormat, PROMETHEUS_CONTENT_TYPE } from "../../core/metrics";
import type { AppEnv } from "../env";

/**
 * Broker counters in the units Cloudflare bills (requests, incoming WebSocket messages, SQLite
 * rows, D1 requests, MQTT messages received and sent), totalled over every object since
 * `since` (the metrics object's first start: they carry over restarts); this run's start and
 * uptime; message rates; the objects' gauges (connections, subscriptions, retained messages per
 * shard); the retained alert. Objects report at most once per second.
 *
 * JSON by default and for `Accept: application/json`; Prometheus' text format (0.0.4) for a
 * client that prefers `text/plain` (Prometheus does), or with `?format=prometheus`.
 */
export const metrics = new Hono<AppEnv>().get("/", async (c) => {
  const stub = c.env.METRICS.get(c.env.METRICS.idFromName("metrics"));
  const snapshot = await stub.snapshot();
  c.header("Vary", "Accept");
  if (metricsFormat(c.req.header("Accept"), c.req.query("format")) === "prometheus") {
    return c.body(formatPrometheus(metricFamilies(snapshot)), 200, { "Content-Type": PROMETHEUS_CONTENT_TYPE });
  }
  return c.json(snapshot);
});
