import "uplot/dist/uPlot.min.css";
import "./overview.css";
import uPlot from "uplot";
import { useEffect, useRef, useState } from "preact/hooks";
import type { PageProps } from ".";
import { api, ApiError } from "../api";

/** How often the page asks for /api/v1/stats and /metrics. */
export const POLL_MS = 2_000;
/** How much of the message flow the chart keeps (client-side only). */
export const WINDOW_MS = 5 * 60_000;
/** Refused connections are counted over this last stretch. */
const REFUSED_WINDOW_MS = 60_000;

/** GET /api/v1/stats (worker/routes/api/stats.ts), the parts this page shows. */
interface Stats {
  at: string;
  started_at: string;
  uptime_seconds: number;
  connections: { online: number | null; registry_online: number };
  sessions: number;
  subscriptions: { total: number | null };
  retained: { total: number | null; alert_threshold: number };
  messages: {
    received: { total: number; since_start: number; per_second: Record<"1m" | "5m" | "15m", number> };
    sent: { total: number; since_start: number; per_second: Record<"1m" | "5m" | "15m", number> };
  };
  drops: { qos0: number; queue: number; rate: number };
  alerts: { retained: { count: number; threshold: number; at: string } | null };
}

/** The counters of GET /metrics (durable-objects/metrics.ts MetricsSnapshot) this page reads. */
type RefusedName = "authFailures" | "connectRefused" | "upgradesRefused";
interface MetricsJson {
  byKind: Record<string, Partial<Record<RefusedName, number>>>;
}

const REFUSED: { key: RefusedName; label: string; help: string }[] = [
  { key: "authFailures", label: "Bad credentials", help: "CONNECTs refused for their credentials (wrong password, bad token, unknown user)" },
  { key: "connectRefused", label: "CONNECTs refused", help: "CONNECTs refused for any reason of security (credentials, not authorized, Will topic denied)" },
  { key: "upgradesRefused", label: "Upgrades refused", help: "WebSocket upgrades refused by the limits (rate per address, pending connections, penalties)" },
];

/** One poll's counters, kept for the chart and the one-minute rates. */
interface Sample {
  at: number;
  received: number;
  sent: number;
  refused: Record<RefusedName, number>;
}

function refusedTotals(m: MetricsJson): Record<RefusedName, number> {
  const out = { authFailures: 0, connectRefused: 0, upgradesRefused: 0 };
  for (const counters of Object.values(m.byKind ?? {})) {
    for (const { key } of REFUSED) out[key] += counters?.[key] ?? 0;
  }
  return out;
}

function describe(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.message} (HTTP ${e.status})` : e.message;
  return e instanceof Error ? e.message : String(e);
}

const fmt = (n: number | null | undefined) => (n === null || n === undefined ? "—" : n.toLocaleString("en"));
const perSecond = (n: number) => (n >= 10 ? n.toFixed(0) : n.toFixed(2).replace(/\.?0+$/, "") || "0");

function uptime(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  return d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min` : `${seconds} s`;
}

/** The broker at a glance: counters, the message flow (live chart), alerts. */
export function OverviewPage(_props: PageProps) {
  const [stats, setStats] = useState<Stats | null>(null);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [metricsError, setMetricsError] = useState<string | null>(null);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      const [s, m] = await Promise.allSettled([api<Stats>("GET", "stats"), api<MetricsJson>("GET", "/metrics")]);
      if (stopped) return;
      if (s.status === "fulfilled") {
        setStats(s.value);
        setError(null);
      } else {
        setError(`Could not read /api/v1/stats: ${describe(s.reason)}`);
      }
      if (m.status === "rejected") setMetricsError(`Could not read /metrics: ${describe(m.reason)}`);
      else setMetricsError(null);
      if (s.status === "fulfilled" && m.status === "fulfilled") {
        const now = Date.now();
        const sample: Sample = {
          at: now,
          received: s.value.messages.received.since_start,
          sent: s.value.messages.sent.since_start,
          refused: refusedTotals(m.value),
        };
        setSamples((prev) => [...prev.filter((p) => p.at > now - WINDOW_MS), sample]);
      }
      timer = setTimeout(poll, POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  const last = samples[samples.length - 1];
  // Refused connections over the last minute (or over what this page has seen of it so far).
  const minuteAgo = last ? (samples.find((p) => p.at >= last.at - REFUSED_WINDOW_MS - POLL_MS / 2) ?? last) : undefined;
  const seenSeconds = last && minuteAgo ? Math.round((last.at - minuteAgo.at) / 1000) : 0;

  return (
    <section class="overview">
      <h1>Overview</h1>
      {error && (
        <p class="error" role="alert" data-testid="overview-error">
          {error}
        </p>
      )}
      {metricsError && (
        <p class="error" role="alert" data-testid="overview-metrics-error">
          {metricsError}
        </p>
      )}
      {!stats && !error && <p class="hint">Loading…</p>}
      {stats && (
        <>
          <div class="overview-cards">
            <Card label="Connections" value={fmt(stats.connections.online)} testid="overview-connections" note={`${fmt(stats.connections.registry_online)} online in the registry`} />
            <Card label="Sessions" value={fmt(stats.sessions)} testid="overview-sessions" note="online, or offline with a live session" />
            <Card label="Subscriptions" value={fmt(stats.subscriptions.total)} testid="overview-subscriptions" note="topic filters, all shards" />
            <Card
              label="Retained"
              value={fmt(stats.retained.total)}
              testid="overview-retained"
              note={stats.retained.alert_threshold > 0 ? `alert above ${fmt(stats.retained.alert_threshold)}` : "no alert threshold"}
            />
          </div>
          <p class="hint" data-testid="overview-uptime">
            Up {uptime(stats.uptime_seconds)} (since {new Date(stats.started_at).toLocaleString()}). Messages since then: {fmt(stats.messages.received.since_start)} in,{" "}
            {fmt(stats.messages.sent.since_start)} out. Averages over 1 min: {perSecond(stats.messages.received.per_second["1m"])}/s in,{" "}
            {perSecond(stats.messages.sent.per_second["1m"])}/s out.
          </p>
        </>
      )}
      <h2>Messages per second</h2>
      <FlowChart samples={samples} />
      <h2>Alerts</h2>
      <ul class="overview-alerts" data-testid="overview-alerts">
        <li data-testid="overview-alert-retained" class={stats?.alerts.retained ? "overview-bad" : "overview-ok"}>
          {!stats
            ? "Retained messages: —"
            : stats.alerts.retained
              ? `Retained messages: ${fmt(stats.alerts.retained.count)} passed the threshold ${fmt(stats.alerts.retained.threshold)} at ${new Date(stats.alerts.retained.at).toLocaleString()}.`
              : stats.retained.alert_threshold > 0
                ? `Retained messages: below the threshold (${fmt(stats.retained.total)} of ${fmt(stats.retained.alert_threshold)}).`
                : "Retained messages: no alert (RETAINED_ALERT_THRESHOLD is 0: off)."}
        </li>
      </ul>
      <table class="overview-refused" data-testid="overview-refused">
        <caption>Refused connections</caption>
        <thead>
          <tr>
            <th scope="col">Counter</th>
            <th scope="col">Total</th>
            <th scope="col">Last minute{seenSeconds > 0 && seenSeconds < 55 ? ` (seen ${seenSeconds} s)` : ""}</th>
          </tr>
        </thead>
        <tbody>
          {REFUSED.map(({ key, label, help }) => {
            const recent = last && minuteAgo ? last.refused[key] - minuteAgo.refused[key] : null;
            return (
              <tr key={key} data-testid={`overview-refused-${key}`} class={recent ? "overview-bad" : ""}>
                <th scope="row" title={help}>
                  {label}
                </th>
                <td data-testid={`overview-refused-${key}-total`}>{fmt(last?.refused[key])}</td>
                <td data-testid={`overview-refused-${key}-minute`}>{recent === null ? "—" : `${fmt(Math.max(0, recent))} (${perSecond(Math.max(0, recent) / 60)}/s)`}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

function Card({ label, value, note, testid }: { label: string; value: string; note: string; testid: string }) {
  return (
    <div class="overview-card">
      <div class="overview-label">{label}</div>
      <div class="overview-value" data-testid={testid}>
        {value}
      </div>
      <div class="overview-note">{note}</div>
    </div>
  );
}

/** Per-second rates between consecutive samples (a counter that went back, a restart, is skipped). */
function flow(samples: Sample[]): [number[], number[], number[]] {
  const xs: number[] = [];
  const ins: number[] = [];
  const outs: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const dt = (b.at - a.at) / 1000;
    if (dt <= 0 || b.received < a.received || b.sent < a.sent) continue;
    xs.push(b.at / 1000);
    ins.push((b.received - a.received) / dt);
    outs.push((b.sent - a.sent) / dt);
  }
  return [xs, ins, outs];
}

/** Messages in and out per second, the last five minutes, drawn by uPlot. */
function FlowChart({ samples }: { samples: Sample[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = flow(samples);

  useEffect(() => {
    const el = box.current!;
    const width = () => Math.max(320, el.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 220,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
        axes: [{}, { label: "msg/s", size: 60 }],
        series: [
          {},
          { label: "in", stroke: "#2456d3", width: 2, value: (_u, v) => (v === null ? "—" : perSecond(v)) },
          { label: "out", stroke: "#067647", width: 2, value: (_u, v) => (v === null ? "—" : perSecond(v)) },
        ],
      },
      [[], [], []],
      el,
    );
    const resize = () => plot.current?.setSize({ width: width(), height: 220 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
  }, [samples]);

  const lastIn = data[1][data[1].length - 1];
  const lastOut = data[2][data[2].length - 1];
  return (
    <figure class="overview-chart" data-testid="overview-chart" data-points={data[0].length} data-max-in={Math.max(0, ...data[1])} data-max-out={Math.max(0, ...data[2])}>
      <div ref={box} />
      <figcaption class="hint">
        Now: <span data-testid="overview-rate-in">{lastIn === undefined ? "—" : perSecond(lastIn)}</span> in/s,{" "}
        <span data-testid="overview-rate-out">{lastOut === undefined ? "—" : perSecond(lastOut)}</span> out/s. Polled every {POLL_MS / 1000} s; the last{" "}
        {WINDOW_MS / 60_000} minutes are kept in this tab only.
      </figcaption>
    </figure>
  );
}
