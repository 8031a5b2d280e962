import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  BROKER_VERSION,
  escapeHelp,
  escapeLabelValue,
  formatPrometheus,
  formatValue,
  metricFamilies,
  type MetricsView,
} from "../../../core/metrics";

describe("Prometheus text format 0.0.4", () => {
  it("writes HELP and TYPE once per family, then one line per sample", () => {
    const text = formatPrometheus([
      { name: "x_total", help: "Things.", type: "counter", samples: [{ labels: { kind: "a" }, value: 1 }, { labels: { kind: "b" }, value: 2 }] },
      { name: "y", help: "A gauge.", type: "gauge", samples: [{ value: 0.5 }] },
    ]);
    expect(text).toBe(
      [
        "# HELP x_total Things.",
        "# TYPE x_total counter",
        'x_total{kind="a"} 1',
        'x_total{kind="b"} 2',
        "# HELP y A gauge.",
        "# TYPE y gauge",
        "y 0.5",
        "",
      ].join("\n"),
    );
  });

  it("escapes backslash and line feed in HELP, and backslash, quote and line feed in label values", () => {
    expect(escapeHelp('a\\b\nc "d"')).toBe('a\\\\b\\nc "d"');
    expect(escapeLabelValue('a\\b\nc "d"')).toBe('a\\\\b\\nc \\"d\\"');
    const text = formatPrometheus([{ name: "m", help: "line1\nline2 \\", type: "gauge", samples: [{ labels: { shard: 'we"ird\\\n' }, value: 3 }] }]);
    expect(text).toContain("# HELP m line1\\nline2 \\\\\n");
    expect(text).toContain('m{shard="we\\"ird\\\\\\n"} 3\n');
    // Every line of the output is one line: no raw line feed inside a sample.
    expect(text.split("\n").filter((l) => l !== "")).toHaveLength(3);
  });

  it("writes NaN and infinities as Go's ParseFloat reads them", () => {
    expect(formatValue(Number.NaN)).toBe("NaN");
    expect(formatValue(Infinity)).toBe("+Inf");
    expect(formatValue(-Infinity)).toBe("-Inf");
    expect(formatValue(42)).toBe("42");
    expect(formatValue(-0.25)).toBe("-0.25");
  });

  it("refuses invalid names, reserved labels and duplicates (Prometheus rejects the whole scrape)", () => {
    const g = (name: string, labels?: Record<string, string>) => ({ name, help: "h", type: "gauge" as const, samples: [labels ? { labels, value: 1 } : { value: 1 }] });
    expect(() => formatPrometheus([g("9starts_with_digit")])).toThrow(/metric name/);
    expect(() => formatPrometheus([g("has-dash")])).toThrow(/metric name/);
    expect(() => formatPrometheus([g("ok", { "bad-label": "x" })])).toThrow(/label name/);
    expect(() => formatPrometheus([g("ok", { __reserved: "x" })])).toThrow(/label name/);
    expect(() => formatPrometheus([g("ok"), g("ok")])).toThrow(/twice/);
    expect(() =>
      formatPrometheus([{ name: "ok", help: "h", type: "gauge", samples: [{ labels: { a: "1" }, value: 1 }, { labels: { a: "1" }, value: 2 }] }]),
    ).toThrow(/twice/);
    expect(formatPrometheus([g("ns:sub_metric", { le: "0.5" })])).toContain('ns:sub_metric{le="0.5"} 1');
  });
});

function view(over: Partial<MetricsView> = {}): MetricsView {
  const counters = (n: number) => ({ requests: n, webSocketMessages: n, alarms: 0, rowsRead: n, rowsWritten: n, published: 0, delivered: 0, droppedQos0: 0, droppedQueued: 0, rateLimited: 0, d1Requests: 0 });
  return {
    since: 1_700_000_000_000,
    byKind: {
      session: { ...counters(10), published: 7, delivered: 9, droppedQos0: 2, droppedQueued: 3, rateLimited: 1 },
      connection: { ...counters(5), droppedQos0: 1 },
      shard: counters(20),
      presence: { ...counters(1), d1Requests: 4, someNewCounter: 6 },
    },
    reportingRequests: 11,
    messages: { received: 7, sent: 9 },
    run: { startedAt: 1_700_000_500_000, uptime: 123 },
    rates: { received: { "1min": 1.5, "5min": 0.3, "15min": 0.1 }, sent: { "1min": 2, "5min": 0.4, "15min": 0.2 } },
    gauges: {
      connections: 3,
      subscriptions: { total: 4, byShard: { "shard-0": 1, "shard-1": 3 } },
      retained: { total: 5, byShard: { "shard-0": 2, "shard-1": 3 } },
    },
    alerts: { retained: null, retainedThreshold: 100 },
    ...over,
  };
}

describe("GET /metrics as Prometheus metric families", () => {
  const text = formatPrometheus(metricFamilies(view()));
  const line = (l: string) => expect(text.split("\n")).toContain(l);

  it("names the message counters by Prometheus' conventions: from and to clients, and per object kind", () => {
    line("# TYPE edge_mqtt_messages_received_total counter");
    line("edge_mqtt_messages_received_total 7");
    line("edge_mqtt_messages_sent_total 9");
    line('edge_mqtt_messages_routed_total{kind="session"} 7');
    line('edge_mqtt_messages_routed_total{kind="presence"} 0');
    line('edge_mqtt_messages_delivered_total{kind="session"} 9');
    line('edge_mqtt_dropped_messages_total{cause="qos0"} 3');
    line('edge_mqtt_dropped_messages_total{cause="queue"} 3');
    line("edge_mqtt_rate_limited_connections_total 1");
  });

  it("labels the billed units by object kind", () => {
    line('edge_mqtt_object_requests_total{kind="session"} 10');
    line('edge_mqtt_object_requests_total{kind="shard"} 20');
    line('edge_mqtt_sqlite_rows_written_total{kind="connection"} 5');
    line('edge_mqtt_d1_requests_total{kind="presence"} 4');
    line('edge_mqtt_websocket_messages_received_total{kind="session"} 10');
  });

  it("sums the security counters over every kind: ACL denials by action, refusals of CONNECTs and upgrades", () => {
    const sec = (o: Record<string, number>) => ({ authFailures: 0, connectRefused: 0, aclDeniedPublish: 0, aclDeniedSubscribe: 0, aclDeniedRead: 0, upgradesRefused: 0, ...o });
    const base = view();
    const t = formatPrometheus(
      metricFamilies(
        view({
          byKind: {
            ...base.byKind,
            session: { ...base.byKind.session!, ...sec({ authFailures: 2, connectRefused: 3, aclDeniedPublish: 4, aclDeniedSubscribe: 5, aclDeniedRead: 6 }) },
            connection: { ...base.byKind.connection!, ...sec({ connectRefused: 1 }) },
            worker: sec({ upgradesRefused: 7, aclDeniedPublish: 1 }),
          },
        }),
      ),
    ).split("\n");
    for (const l of [
      "# TYPE edge_mqtt_acl_denied_total counter",
      'edge_mqtt_acl_denied_total{action="publish"} 5',
      'edge_mqtt_acl_denied_total{action="subscribe"} 5',
      'edge_mqtt_acl_denied_total{action="read"} 6',
      "edge_mqtt_auth_failures_total 2",
      "edge_mqtt_connects_refused_total 4",
      "edge_mqtt_upgrades_refused_total 7",
    ]) {
      expect(t).toContain(l);
    }
    expect(t.filter((l) => l.startsWith("# TYPE edge_mqtt_acl_denied_total"))).toHaveLength(1);
  });

  it("exposes a counter it has no name for under its snake_case name", () => {
    line('edge_mqtt_some_new_counter_total{kind="presence"} 6');
    line('edge_mqtt_some_new_counter_total{kind="session"} 0');
  });

  it("gives gauges per shard, uptime, start time, rates and the alert", () => {
    line("edge_mqtt_connections 3");
    line('edge_mqtt_retained_messages{shard="shard-0"} 2');
    line('edge_mqtt_retained_messages{shard="shard-1"} 3');
    line('edge_mqtt_subscriptions{shard="shard-1"} 3');
    line("edge_mqtt_uptime_seconds 123");
    line("edge_mqtt_start_time_seconds 1700000500");
    line("edge_mqtt_counters_since_seconds 1700000000");
    line('edge_mqtt_messages_received_per_second{window="1m"} 1.5');
    line('edge_mqtt_messages_sent_per_second{window="15m"} 0.2');
    line("edge_mqtt_retained_alert 0");
    line("edge_mqtt_retained_alert_threshold 100");
    line("edge_mqtt_metrics_reports_total 11");
  });

  it("leaves out gauges nobody reported, and shows a raised alert", () => {
    const t = formatPrometheus(
      metricFamilies(
        view({
          gauges: { connections: null, subscriptions: { total: null, byShard: {} }, retained: { total: null, byShard: {} } },
          alerts: { retained: { count: 101, threshold: 100, at: 1 }, retainedThreshold: 100 },
        }),
      ),
    );
    expect(t).not.toContain("edge_mqtt_connections");
    expect(t).not.toContain("edge_mqtt_retained_messages");
    expect(t).toContain("edge_mqtt_retained_alert 1\n");
  });

  it("has exactly one HELP and one TYPE line per family", () => {
    const helps = text.split("\n").filter((l) => l.startsWith("# HELP "));
    const types = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    expect(helps.length).toBe(types.length);
    expect(new Set(helps.map((l) => l.split(" ")[2])).size).toBe(helps.length);
  });
});

describe("broker version", () => {
  it("is package.json's", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(BROKER_VERSION).toBe(pkg.version);
  });
});
