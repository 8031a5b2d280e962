/**
 * The Prometheus text exposition format, version 0.0.4: one `# HELP` and one `# TYPE` line per
 * metric family, then one line per sample, `name{label="value",...} value`. Pure: no platform.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

/** What GET /metrics answers with when Prometheus' text format is negotiated. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export type MetricType = "counter" | "gauge";

export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total` by convention. */
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
/** Label names starting with `__` are reserved for Prometheus itself. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** HELP text: backslash and line feed escaped (`\\`, `\n`). */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A label value: backslash, double quote and line feed escaped (`\\`, `\"`, `\n`). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A sample value as Go's ParseFloat reads it: `NaN`, `+Inf`, `-Inf` or a decimal number. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function formatLabels(labels: Record<string, string> | undefined): string {
  if (!labels) return "";
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  for (const [name] of entries) {
    if (!LABEL_NAME.test(name) || name.startsWith("__")) throw new Error(`invalid Prometheus label name: ${JSON.stringify(name)}`);
  }
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

/**
 * The exposition text of these families, in their order. Throws on an invalid metric or label
 * name, a family named twice, or two samples of one family with the same labels: a scrape
 * with either is rejected by Prometheus as a whole, so it is a bug to catch in tests.
 */
export function formatPrometheus(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`invalid Prometheus metric name: ${JSON.stringify(family.name)}`);
    if (seen.has(family.name)) throw new Error(`metric family ${family.name} given twice`);
    seen.add(family.name);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    const series = new Set<string>();
    for (const sample of family.samples) {
      const labels = formatLabels(sample.labels);
      if (series.has(labels)) throw new Error(`metric ${family.name}${labels} given twice`);
      series.add(labels);
      lines.push(`${family.name}${labels} ${formatValue(sample.value)}`);
    }
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
