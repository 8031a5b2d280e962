// Small helpers of the overload bench (bench/overload/run.mjs): time, statistics, sequence
// ranges, the kernel's view of a TCP connection, the broker's /metrics and the table printer.
import { readFileSync } from "node:fs";

/** Epoch milliseconds with sub-millisecond resolution (comparable across processes). */
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Width of the ASCII sequence number a stamped payload starts with: 12 bytes, so that it is
 * exactly the first 16 characters of the payload in base64 (how the broker stores bytes).
 */
export const SEQ_DIGITS = 12;

/** @param {number} x @param {number} [d] */
export function round(x, d = 1) {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** @param {number} kib */
export const mib = (kib) => round(kib / 1024, 1);

/**
 * p50, p90, p99, max of a list of numbers (nearest rank), or nulls when empty.
 * @param {number[]} values
 */
export function percentiles(values) {
  if (values.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null };
  const s = Float64Array.from(values).sort();
  const at = (/** @type {number} */ p) => round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN, 2);
  return { n: s.length, p50: at(50), p90: at(90), p99: at(99), max: round(s[s.length - 1] ?? NaN, 2) };
}

/**
 * Indexes i of `flags` where test(flags[i]) holds, as [first, last] ranges.
 * @param {ArrayLike<number>} flags @param {(v: number) => boolean} test @param {number} [length]
 * @returns {[number, number][]}
 */
export function ranges(flags, test, length = flags.length) {
  /** @type {[number, number][]} */
  const out = [];
  for (let i = 0; i < length; i++) {
    if (!test(/** @type {number} */ (flags[i]))) continue;
    const last = out[out.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else out.push([i, i]);
  }
  return out;
}

/** "0–65,534, 65,600" from ranges, at most `max` of them. @param {[number, number][]} rs */
export function formatRanges(rs, max = 4) {
  if (rs.length === 0) return "none";
  const f = (/** @type {number} */ n) => n.toLocaleString("en-US");
  const shown = rs.slice(0, max).map(([a, b]) => (a === b ? f(a) : `${f(a)}–${f(b)}`));
  return rs.length > max ? `${shown.join(", ")} (+${rs.length - max} more ranges)` : shown.join(", ");
}

const TCP_STATES = /** @type {Record<string, string>} */ ({
  "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT",
  "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
});

/**
 * Both ends of a loopback TCP connection as the kernel sees them (/proc/net/tcp): state and
 * bytes queued. `server` is the broker's socket (txQueue: bytes it has written that the client
 * has not taken), `client` ours (rxQueue: bytes received that we have not read). Either is
 * undefined once the kernel has forgotten it.
 * @param {number} serverPort @param {number} clientPort
 */
export function tcpPair(serverPort, clientPort) {
  /** @type {{ server?: { state: string, txQueue: number, rxQueue: number }, client?: { state: string, txQueue: number, rxQueue: number } }} */
  const out = {};
  let text = "";
  try {
    text = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return out;
  }
  const port = (/** @type {string} */ addr) => parseInt(addr.split(":")[1] ?? "", 16);
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const [local = "", remote = "", st = "", queues = ""] = [f[1], f[2], f[3], f[4]];
    const [tx = "0", rx = "0"] = queues.split(":");
    const entry = { state: TCP_STATES[st] ?? st, txQueue: parseInt(tx, 16), rxQueue: parseInt(rx, 16) };
    if (port(local) === serverPort && port(remote) === clientPort) out.server = entry;
    else if (port(local) === clientPort && port(remote) === serverPort) out.client = entry;
  }
  return out;
}

/**
 * Bytes queued in the kernel on every connection of the broker's port, its side: `rxQueue`
 * received and not yet read by workerd (the publishers' backlog), `txQueue` written by workerd
 * and not yet taken by the clients.
 * @param {number} serverPort
 */
export function tcpServerQueues(serverPort) {
  let text = "";
  try {
    text = readFileSync("/proc/net/tcp", "utf8");
  } catch {
    return { rxQueue: 0, txQueue: 0, connections: 0 };
  }
  const out = { rxQueue: 0, txQueue: 0, connections: 0 };
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || f[3] === "0A") continue; // not the listening socket
    if (parseInt((f[1] ?? "").split(":")[1] ?? "", 16) !== serverPort) continue;
    const [tx = "0", rx = "0"] = (f[4] ?? "").split(":");
    out.txQueue += parseInt(tx, 16);
    out.rxQueue += parseInt(rx, 16);
    out.connections++;
  }
  return out;
}

/**
 * GET /metrics of the broker, or null (absent, not JSON, or no answer within `timeoutMs`).
 * @param {string} httpUrl
 * @returns {Promise<any>}
 */
export async function readMetrics(httpUrl, timeoutMs = 5_000) {
  try {
    const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    return await res.json();
  } catch {
    return null;
  }
}

const DROP_WORD = /^(drop|shed|discard|overflow|refus|evict|disconnect|slow|overload|limit|kill|cut)/i;
/** The words of a camelCase or snake_case name. @param {string} name */
const words = (name) => name.split(/_|(?=[A-Z])/).filter(Boolean);

/**
 * Every numeric field of a /metrics snapshot whose name says it counts something dropped,
 * shed, discarded, refused or cut off, as "path.to.field" → value.
 * @param {any} value @param {string} [path]
 * @returns {Record<string, number>}
 */
export function dropFields(value, path = "") {
  /** @type {Record<string, number>} */
  const out = {};
  if (!value || typeof value !== "object") return out;
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    if (typeof v === "number" && words(k).some((w) => DROP_WORD.test(w))) out[p] = v;
    else if (v && typeof v === "object") Object.assign(out, dropFields(v, p));
  }
  return out;
}

/**
 * Polls /metrics every `everyMs` from `t0` on: the broker's `published` and `delivered`
 * counters over time (objects report at most once a second, so they lag by up to 1 s), or
 * nulls when /metrics did not answer within 5 s.
 * @param {string} httpUrl @param {number} t0 @param {number} [everyMs]
 */
export function pollMetrics(httpUrl, t0, everyMs = 2_000) {
  /** @type {{ t: number, published: number | null, delivered: number | null }[]} */
  const series = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const asked = now();
      const m = await readMetrics(httpUrl);
      series.push({ t: round((asked - t0) / 1000, 1), published: m?.total?.published ?? null, delivered: m?.total?.delivered ?? null });
      const until = now() + everyMs;
      while (running && now() < until) await sleep(100);
    }
  })();
  return {
    series,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/**
 * Field-wise difference of two /metrics `total` objects (numbers only).
 * @param {any} before @param {any} after
 * @returns {Record<string, number> | null}
 */
export function metricsDelta(before, after) {
  if (!before?.total || !after?.total) return null;
  /** @type {Record<string, number>} */
  const d = {};
  for (const [k, v] of Object.entries(after.total)) if (typeof v === "number") d[k] = v - (before.total[k] ?? 0);
  return d;
}

/** Formats a number with thousands separators; "-" for null/undefined. @param {unknown} x @param {string} [unit] */
export function fmt(x, unit = "") {
  if (x === null || x === undefined || (typeof x === "number" && Number.isNaN(x))) return "-";
  return `${typeof x === "number" ? x.toLocaleString("en-US") : String(x)}${unit}`;
}

/**
 * A two-column table: the figure and its value.
 * @param {string} title @param {[string, string][]} rows
 */
export function printFigures(title, rows) {
  const w = Math.max(6, ...rows.map(([k]) => k.length));
  console.log(`\n${title}`);
  console.log(`  ${"figure".padEnd(w)}  value`);
  console.log(`  ${"-".repeat(w)}  ${"-".repeat(40)}`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
}
