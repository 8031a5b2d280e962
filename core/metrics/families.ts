/**
 * GET /metrics in Prometheus' terms: the metrics object's snapshot as metric families named by
 * Prometheus' conventions (prefix `edge_mqtt_`, base units, `_total` for counters, labels for
 * the object kind, the drop cause, the ACL action, the shard, the rate window).
 */
import type { RetainedAlert } from "./alert";
import type { MetricFamily } from "./prometheus";
import { RATE_WINDOWS, type RateWindow } from "./rates";

/** What the formatter reads of the snapshot (GET /metrics JSON has all of it, and more). */
export interface MetricsView {
  /** Epoch ms the `*_total` counters count from. */
  since: number;
  /** Per object kind, its counters (requests, rowsWritten, published, ...). */
  byKind: Record<string, Record<string, number>>;
  /** MQTT PUBLISH messages received from clients (the broker's own not included) and sent to clients, since `since`. */
  messages: { received: number; sent: number };
  reportingRequests: number;
  run: { startedAt: number; uptime: number };
  /** Per second, per window. */
  rates: { received: Record<RateWindow, number>; sent: Record<RateWindow, number> };
  gauges: {
    connections: number | null;
    subscriptions: { total: number | null; byShard: Record<string, number> };
    retained: { total: number | null; byShard: Record<string, number> };
  };
  alerts: { retained: RetainedAlert | null; retainedThreshold: number };
}

const PREFIX = "edge_mqtt_";

/**
 * Counters with their own family; `summed`: one sample over every kind (only one kind counts it);
 * `label`: that sample's label, when several counters share a family (e.g. `cause="qos0"`).
 */
const KNOWN: Record<string, { family: string; help: string; summed?: boolean; label?: Record<string, string> }> = {
  published: { family: "messages_routed_total", help: "MQTT PUBLISH messages routed into the topic space, by the kind of object that routed them (session: from clients; presence: the broker's $SYS events)." },
  delivered: { family: "messages_delivered_total", help: "MQTT PUBLISH messages sent to clients, by object kind." },
  requests: { family: "object_requests_total", help: "Durable Object requests (RPC calls, fetches, alarms), by object kind." },
  webSocketMessages: { family: "websocket_messages_received_total", help: "Incoming WebSocket messages (billed 20:1 as requests), by object kind." },
  alarms: { family: "object_alarms_total", help: "Durable Object alarms run, by object kind." },
  rowsRead: { family: "sqlite_rows_read_total", help: "Durable Object SQLite rows read, by object kind." },
  rowsWritten: { family: "sqlite_rows_written_total", help: "Durable Object SQLite rows written (index rows included), by object kind." },
  d1Requests: { family: "d1_requests_total", help: "D1 requests (queries and batches), by object kind." },
  droppedQos0: { family: "dropped_messages_total", help: "Messages dropped by the per-client bounds, by cause.", summed: true, label: { cause: "qos0" } },
  droppedQueued: { family: "dropped_messages_total", help: "Messages dropped by the per-client bounds, by cause.", summed: true, label: { cause: "queue" } },
  rateLimited: { family: "rate_limited_connections_total", help: "Connections closed for publishing faster than the rate limits.", summed: true },
  authFailures: { family: "auth_failures_total", help: "CONNECTs refused for their credentials (wrong password, bad or expired token, unknown user).", summed: true },
  connectRefused: { family: "connects_refused_total", help: "CONNECTs refused by authentication or authorization.", summed: true },
  aclDeniedPublish: { family: "acl_denied_total", help: "Operations the ACL refused, by action.", summed: true, label: { action: "publish" } },
  aclDeniedSubscribe: { family: "acl_denied_total", help: "Operations the ACL refused, by action.", summed: true, label: { action: "subscribe" } },
  aclDeniedRead: { family: "acl_denied_total", help: "Operations the ACL refused, by action.", summed: true, label: { action: "read" } },
  upgradesRefused: { family: "upgrades_refused_total", help: "WebSocket upgrades refused by the connection limits (rate per address, pending connections, failed-authentication penalties).", summed: true },
};

function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[^a-zA-Z0-9_]/g, "_").toLowerCase();
}

/** The metric families of a snapshot, in a stable order. */
export function metricFamilies(view: MetricsView): MetricFamily[] {
  const families = new Map<string, MetricFamily>();
  const family = (name: string, help: string, type: MetricFamily["type"]): MetricFamily => {
    const full = PREFIX + name;
    let f = families.get(full);
    if (!f) families.set(full, (f = { name: full, help, type, samples: [] }));
    return f;
  };

  family("messages_received_total", "MQTT PUBLISH messages received from clients (and HTTP ingest).", "counter").samples.push({ value: view.messages.received });
  family("messages_sent_total", "MQTT PUBLISH messages sent to clients.", "counter").samples.push({ value: view.messages.sent });

  const kinds = Object.keys(view.byKind).sort();
  const counterKeys = [...new Set(kinds.flatMap((k) => Object.keys(view.byKind[k]!)))];
  // Known counters first, in the table's order, then any other (e.g. added later) by name.
  const ordered = [...Object.keys(KNOWN).filter((k) => counterKeys.includes(k)), ...counterKeys.filter((k) => !(k in KNOWN)).sort()];
  for (const key of ordered) {
    const known = KNOWN[key];
    const f = family(known?.family ?? `${snake(key)}_total`, known?.help ?? `Counter ${key}, by object kind.`, "counter");
    if (known?.summed) {
      const value = kinds.reduce((sum, k) => sum + (view.byKind[k]![key] ?? 0), 0);
      f.samples.push(known.label ? { labels: known.label, value } : { value });
    } else {
      for (const k of kinds) f.samples.push({ labels: { kind: k }, value: view.byKind[k]![key] ?? 0 });
    }
  }
  family("metrics_reports_total", "Reports the objects sent to the metrics object (requests too, not in object_requests_total).", "counter").samples.push({
    value: view.reportingRequests,
  });
  family("counters_since_seconds", "Unix time the *_total counters count from (the metrics object's first start; they carry over restarts).", "gauge").samples.push({
    value: view.since / 1000,
  });
  family("start_time_seconds", "Unix time this run of the broker started.", "gauge").samples.push({ value: view.run.startedAt / 1000 });
  family("uptime_seconds", "Seconds since this run of the broker started.", "gauge").samples.push({ value: view.run.uptime });

  for (const [series, name] of [
    ["received", "messages_received_per_second"],
    ["sent", "messages_sent_per_second"],
  ] as const) {
    const f = family(name, `MQTT PUBLISH messages ${series} per second, averaged over the window.`, "gauge");
    for (const w of Object.keys(RATE_WINDOWS) as RateWindow[]) f.samples.push({ labels: { window: w.replace("min", "m") }, value: view.rates[series][w] });
  }

  if (view.gauges.connections !== null) {
    family("connections", "Devices online now: MQTT connections and HTTP devices within their window (as the presence shards report).", "gauge").samples.push({ value: view.gauges.connections });
  }
  const perShard = (name: string, help: string, g: { total: number | null; byShard: Record<string, number> }) => {
    if (g.total === null) return;
    const f = family(name, help, "gauge");
    for (const [shard, value] of Object.entries(g.byShard)) f.samples.push({ labels: { shard }, value });
  };
  perShard("retained_messages", "Retained messages stored, by topic shard.", view.gauges.retained);
  perShard("subscriptions", "Subscriptions registered, by topic shard.", view.gauges.subscriptions);
  family("retained_alert", "1 while the retained-message alert is raised (total over the threshold).", "gauge").samples.push({
    value: view.alerts.retained ? 1 : 0,
  });
  family("retained_alert_threshold", "RETAINED_ALERT_THRESHOLD (0: the alert is off).", "gauge").samples.push({ value: view.alerts.retainedThreshold });
  return [...families.values()];
}
