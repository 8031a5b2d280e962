/**
 * Content negotiation for GET /metrics (RFC 9110 12.5.1): JSON or Prometheus' text format.
 * JSON stays the default (no Accept, `*∕*`, a tie), so existing readers keep working; a
 * scraper that prefers `text/plain` (Prometheus sends `text/plain;version=0.0.4;q=0.5` after
 * OpenMetrics, and `*∕*;q=0.1`) gets the text format.
 */
export type MetricsFormat = "json" | "prometheus";

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of accept.split(",")) {
    const [mediaType = "", ...params] = part.split(";").map((s) => s.trim());
    const [type, subtype] = mediaType.toLowerCase().split("/");
    if (!type || !subtype) continue;
    let q = 1;
    for (const param of params) {
      const [name, value] = param.split("=").map((s) => s.trim());
      if (name?.toLowerCase() === "q") {
        const n = Number(value);
        q = Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
      }
    }
    ranges.push({ type, subtype, q });
  }
  return ranges;
}

/** The q of a media type under these ranges: the most specific matching range decides; none: 0. */
function qualityOf(ranges: MediaRange[], type: string, subtype: string): number {
  let best = -1;
  let q = 0;
  for (const r of ranges) {
    const specificity = r.type === type && r.subtype === subtype ? 2 : r.type === type && r.subtype === "*" ? 1 : r.type === "*" && r.subtype === "*" ? 0 : -1;
    if (specificity > best) {
      best = specificity;
      q = r.q;
    } else if (specificity === best && specificity >= 0) {
      q = Math.max(q, r.q);
    }
  }
  return best < 0 ? 0 : q;
}

/**
 * The format to answer with. `format` (the `?format=` query parameter: "json" or
 * "prometheus") overrides the header, for a browser.
 */
export function metricsFormat(accept: string | null | undefined, format?: string | null): MetricsFormat {
  if (format === "json" || format === "prometheus") return format;
  if (!accept) return "json";
  const ranges = parseAccept(accept);
  const json = qualityOf(ranges, "application", "json");
  const text = qualityOf(ranges, "text", "plain");
  if (text > json) return "prometheus";
  if (json > 0 || text > 0) return "json";
  // Neither acceptable: an OpenMetrics-only scraper reads the 0.0.4 text format too.
  return qualityOf(ranges, "application", "openmetrics-text") > 0 ? "prometheus" : "json";
}
