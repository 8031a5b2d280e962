#!/usr/bin/env node
// `npm run admin -- <command>` (or the package bin `edge-mqtt-admin`): the broker's admin
// command line, over the same HTTP API as everything else (/api/v1, see docs/admin.md).
//
//   Broker: --url URL (default: EDGE_MQTT_URL, else http://127.0.0.1:8787, what `npm start` serves).
//   Token:  --token T, else the ADMIN_TOKEN environment variable, else ADMIN_TOKEN in .dev.vars
//           (the current directory's, then the project's: `npm start` creates it).
//   Output: aligned tables for people; --json for scripts (one JSON document on stdout; a
//           paged listing is fetched whole and printed as one {items: [...]}). A progress line
//           on stderr for operations over many pages or chunks, when stderr is a terminal.
//   Errors: the problem's title and detail (RFC 9457) on stderr, exit status 1; usage errors 2.
import { createHash } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEV_VARS, readDevVars } from "./dev-vars.mjs";

export const DEFAULT_URL = "http://127.0.0.1:8787";
const API = "/api/v1";

/** A refusal from the broker (problem+json), or a failure to reach it. */
export class CliError extends Error {
  /**
   * @param {string} message
   * @param {{ exitCode?: number, problem?: Record<string, unknown> }} [options]
   */
  constructor(message, { exitCode = 1, problem } = {}) {
    super(message);
    this.exitCode = exitCode;
    this.problem = problem;
  }
}

/** @param {string} message */
function usageError(message) {
  return new CliError(`${message}\nRun with --help for the commands and their options.`, { exitCode: 2 });
}

// ------------------------------------------------------------------------- options

/** Every option any command takes; each command lists the ones it accepts. */
const OPTIONS = /** @type {const} */ ({
  url: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  yes: { type: "boolean", short: "y" },
  status: { type: "string" },
  transport: { type: "string" },
  prefix: { type: "string" },
  limit: { type: "string" },
  "page-size": { type: "string" },
  filter: { type: "string" },
  "older-than": { type: "string" },
  "dry-run": { type: "boolean" },
  retained: { type: "string", multiple: true },
  name: { type: "string" },
  scope: { type: "string", multiple: true },
  device: { type: "string" },
  qos: { type: "string" },
  retain: { type: "boolean" },
  base64: { type: "boolean" },
  bulk: { type: "string" },
  chunk: { type: "string" },
  "idempotency-key": { type: "string" },
  password: { type: "string" },
  admin: { type: "boolean" },
  topic: { type: "string" },
  action: { type: "string" },
  allow: { type: "boolean" },
  deny: { type: "boolean" },
  username: { type: "string" },
  clientid: { type: "string" },
});
const GLOBAL = ["url", "token", "json", "help"];

/**
 * @typedef {{ [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string }} Values
 * @typedef {{ client: Client, values: Values, args: string[], out: Output }} Ctx
 * @typedef {{ usage: string, summary: string, options?: string[], args?: number | [number, number], run: (ctx: Ctx) => Promise<void> }} Command
 */

// ------------------------------------------------------------------------- HTTP

export class Client {
  /**
   * @param {string} baseUrl
   * @param {string} token
   */
  constructor(baseUrl, token) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token;
  }

  /**
   * A request to the API; resolves with the parsed JSON answer (undefined for 204), rejects
   * with a CliError carrying the problem's title and detail.
   * @param {string} method
   * @param {string} path under /api/v1, already encoded
   * @param {{ query?: Record<string, string | string[] | undefined>, body?: unknown, headers?: Record<string, string> }} [options]
   * @returns {Promise<any>}
   */
  async request(method, path, { query = {}, body, headers = {} } = {}) {
    const url = new URL(`${this.baseUrl}${API}${path}`);
    for (const [name, value] of Object.entries(query)) {
      for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) url.searchParams.append(name, v);
    }
    /** @type {Response} */
    let res;
    try {
      res = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          Accept: "application/json",
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
      throw new CliError(`cannot reach the broker at ${this.baseUrl}${cause}. Is it running (npm start)? Another one: --url.`);
    }
    const text = await res.text();
    /** @type {any} */
    let json;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) throw problemError(res, json, text, `${method} ${url.pathname}`);
    return json;
  }
}

/**
 * @param {Response} res
 * @param {any} json
 * @param {string} text
 * @param {string} what
 */
function problemError(res, json, text, what) {
  if (json && typeof json === "object" && typeof json.title === "string") {
    const lines = [`${json.title} (${res.status}): ${json.detail ?? ""}`.trim()];
    if (Array.isArray(json.errors)) {
      for (const e of json.errors) lines.push(`  ${e.path ? `${e.path}: ` : ""}${e.message ?? JSON.stringify(e)}`);
    }
    const retryAfter = res.headers.get("Retry-After");
    if (retryAfter) lines.push(`  retry after ${retryAfter} s`);
    if (res.status === 404 && json.type === "about:blank") lines.push(`  (${what}: does this broker have this endpoint? --url)`);
    return new CliError(lines.join("\n"), { problem: json });
  }
  return new CliError(`${what}: HTTP ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ""}`);
}

/**
 * Each level of a topic percent-encoded, its `/` kept.
 * @param {string} topic
 */
export function topicPath(topic) {
  return topic.split("/").map(encodeURIComponent).join("/");
}

// ------------------------------------------------------------------------- output

/** Writes results: tables or JSON on stdout, progress on stderr. */
export class Output {
  /**
   * @param {{ json: boolean, progress: boolean, stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream }} options
   */
  constructor({ json, progress, stdout = process.stdout, stderr = process.stderr }) {
    this.json = json;
    this.progressOn = progress;
    this.stdout = stdout;
    this.stderr = stderr;
    this.progressShown = false;
  }

  /** @param {string} line */
  line(line = "") {
    this.stdout.write(`${line}\n`);
  }

  /** @param {unknown} value */
  printJson(value) {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /**
   * An aligned table (columns padded to their widest cell; the last one not padded).
   * @param {string[]} headers
   * @param {unknown[][]} rows
   */
  table(headers, rows) {
    const cells = rows.map((r) => r.map(cell));
    const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
    const fmt = (/** @type {string[]} */ r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd();
    this.line(fmt(headers));
    for (const r of cells) this.line(fmt(r));
  }

  /**
   * Label: value lines, labels aligned.
   * @param {[string, unknown][]} pairs
   */
  fields(pairs) {
    const width = Math.max(...pairs.map(([k]) => k.length));
    for (const [k, v] of pairs) this.line(`${`${k}:`.padEnd(width + 1)} ${cell(v)}`);
  }

  /**
   * A progress line on stderr (rewritten in place): a bar when the total is known.
   * @param {string} label
   * @param {number} done
   * @param {number} [total]
   * @param {string} [unit]
   */
  progress(label, done, total, unit = "") {
    if (!this.progressOn) return;
    let text;
    if (total !== undefined && total > 0) {
      const width = 30;
      const filled = Math.round((Math.min(done, total) / total) * width);
      text = `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}${unit ? ` ${unit}` : ""}`;
    } else {
      text = `${label}: ${done}${unit ? ` ${unit}` : ""}`;
    }
    this.stderr.write(`\r${text}\x1b[K`);
    this.progressShown = true;
  }

  /**
   * A one-line status on stderr while a single long request runs (cleared by progressDone).
   * @param {string} text
   */
  status(text) {
    if (!this.progressOn) return;
    this.stderr.write(`\r${text}\x1b[K`);
    this.progressShown = true;
  }

  progressDone() {
    if (this.progressShown) this.stderr.write("\n");
    this.progressShown = false;
  }
}

/**
 * @param {unknown} v
 * @returns {string}
 */
function cell(v) {
  if (v === null || v === undefined || v === "") return "-";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.length === 0 ? "-" : v.map(cell).join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  const s = String(v);
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) ? s.replace("T", " ").replace(/\.\d+Z$/, "Z") : s;
}

/** @param {string} s @param {number} n */
function clip(s, n) {
  const flat = s.replace(/[\r\n\t]+/g, " ");
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

// ------------------------------------------------------------------------- helpers

/**
 * Every page of a cursor-paginated listing, with progress; stops after `max` items.
 * @param {Ctx} ctx
 * @param {string} label
 * @param {string} path
 * @param {Record<string, string | string[] | undefined>} query
 * @param {number} [max]
 * @returns {Promise<any[]>}
 */
async function allPages(ctx, label, path, query, max = Infinity) {
  const pageSize = intOption(ctx.values["page-size"], "page-size", { min: 1, max: 1000 }) ?? 1000;
  /** @type {any[]} */
  const items = [];
  /** @type {string | undefined} */
  let cursor;
  let pages = 0;
  do {
    const limit = String(Math.min(pageSize, Math.max(1, max - items.length)));
    const page = await ctx.client.request("GET", path, { query: { ...query, limit, ...(cursor ? { cursor } : {}) } });
    items.push(...(page.items ?? []));
    pages += 1;
    cursor = page.next_cursor ?? undefined;
    ctx.out.progress(label, items.length, undefined, `item(s), ${pages} page(s)`);
  } while (cursor && items.length < max);
  ctx.out.progressDone();
  return items.slice(0, max);
}

/**
 * @param {string | undefined} value
 * @param {string} name
 * @param {{ min?: number, max?: number }} [bounds]
 */
function intOption(value, name, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw usageError(`--${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return n;
}

/**
 * Seconds from "3600", "90s", "15m", "12h", "7d".
 * @param {string | undefined} value
 * @returns {string | undefined}
 */
export function seconds(value) {
  if (value === undefined) return undefined;
  const m = /^(\d+)\s*([smhdw]?)$/.exec(value.trim());
  if (!m) throw usageError(`--older-than takes seconds, or a number with s, m, h, d or w (e.g. 7d), not ${JSON.stringify(value)}`);
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] ?? ""] ?? 1;
  return String(Number(m[1]) * unit);
}

/**
 * Asks before a destructive operation; --yes skips, and without a terminal --yes is required.
 * @param {Ctx} ctx
 * @param {string} question
 */
async function confirm(ctx, question) {
  if (ctx.values.yes) return;
  if (!process.stdin.isTTY) throw usageError(`${question} Add --yes to do it without asking (stdin is not a terminal).`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError("cancelled: nothing was changed.");
  } finally {
    rl.close();
  }
}

/**
 * A password from --password, else typed at the terminal without echo (twice, to catch a
 * typo), else the first line of stdin when it is not a terminal (`... < file`, a pipe).
 * @param {Ctx} ctx
 * @param {string} username
 * @returns {Promise<string>}
 */
async function readPassword(ctx, username) {
  if (ctx.values.password !== undefined) return ctx.values.password;
  if (!process.stdin.isTTY) {
    /** @type {Buffer[]} */
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk));
    const text = Buffer.concat(chunks).toString("utf8");
    const line = text.split(/\r?\n/)[0] ?? "";
    if (line === "") throw usageError("no password: pass --password, type it at a terminal, or give it on stdin");
    return line;
  }
  const first = await hiddenInput(`password for ${username}: `);
  const again = await hiddenInput("again: ");
  if (first !== again) throw new CliError("the two passwords differ: nothing was changed.", { exitCode: 2 });
  return first;
}

/**
 * One line typed at the terminal, not echoed.
 * @param {string} prompt
 * @returns {Promise<string>}
 */
function hiddenInput(prompt) {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolvePromise, reject) => {
    let text = "";
    const done = (/** @type {Error | undefined} */ err) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (err) reject(err);
      else resolvePromise(text);
    };
    const onData = (/** @type {Buffer} */ data) => {
      for (const ch of data.toString("utf8")) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") return done(undefined);
        if (ch === "\u0003") return done(new CliError("cancelled: nothing was changed."));
        if (ch === "\u007f" || ch === "\b") text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on("data", onData);
  });
}

/** @param {any} r an ACL rule of the API */
function ruleRow(r) {
  return [r.id, r.allow ? "allow" : "deny", r.action, r.topic, r.username ?? "(any)", r.clientid ?? "(any)", r.created_at];
}

/** @param {any} d */
function deviceStatus(d) {
  if (d.decommissioned_at) return "decommissioned";
  return d.online ? "online" : "offline";
}

// ------------------------------------------------------------------------- commands

/** @type {Record<string, Command>} */
export const COMMANDS = {
  stats: {
    usage: "stats",
    summary: "Connections, sessions, subscriptions, retained messages, message rates (GET /stats)",
    async run({ client, out }) {
      const s = await client.request("GET", "/stats");
      if (out.json) return out.printJson(s);
      const m = s.messages ?? {};
      const flow = (/** @type {any} */ f) => (f ? `${f.total} total, ${f.since_start} since start, ${f.per_second?.["1m"] ?? 0}/s (1 min)` : "-");
      out.fields([
        ["at", s.at],
        ["started at", s.started_at],
        ["uptime", `${s.uptime_seconds} s`],
        ["connections online", s.connections?.online],
        ["devices online (registry)", s.connections?.registry_online],
        ["sessions", s.sessions],
        ["subscriptions", s.subscriptions?.total],
        ["retained messages", s.retained?.total],
        ["retained by shard", Object.entries(s.retained?.by_shard ?? {}).map(([k, v]) => `${k}=${v}`).join(" ") || "-"],
        ["retained alert threshold", s.retained?.alert_threshold || "off"],
        ["messages received", flow(m.received)],
        ["messages sent", flow(m.sent)],
        ["totals since", m.totals_since],
        ["drops (qos0/queue/rate)", s.drops ? `${s.drops.qos0}/${s.drops.queue}/${s.drops.rate}` : "-"],
        ["retained alert", s.alerts?.retained ? `${s.alerts.retained.count} >= ${s.alerts.retained.threshold} at ${cell(s.alerts.retained.at)}` : "none"],
      ]);
    },
  },

  "devices list": {
    usage: "devices list [--status online|offline] [--transport mqtt|http] [--prefix P] [--limit N] [--page-size N]",
    summary: "Devices and their presence, every page (GET /devices)",
    options: ["status", "transport", "prefix", "limit", "page-size"],
    async run(ctx) {
      const { values, out } = ctx;
      if (values.status && !["online", "offline"].includes(values.status)) throw usageError("--status is online or offline");
      if (values.transport && !["mqtt", "http"].includes(values.transport)) throw usageError("--transport is mqtt or http");
      const max = intOption(values.limit, "limit", { min: 1 }) ?? Infinity;
      const items = await allPages(ctx, "devices", "/devices", { status: values.status, transport: values.transport, prefix: values.prefix }, max);
      if (out.json) return out.printJson({ items });
      out.table(
        ["CLIENT ID", "STATUS", "TRANSPORT", "CONNECTED AT", "LAST SEEN", "DISCONNECT REASON", "ADDRESS", "MQTT"],
        items.map((d) => [
          d.client_id,
          deviceStatus(d),
          d.transport,
          d.connected_at,
          d.last_seen_at,
          d.online ? "" : d.disconnect_reason,
          d.remote_address,
          d.protocol_version === 5 ? "5.0" : d.protocol_version === 4 ? "3.1.1" : d.protocol_version === 3 ? "3.1" : d.protocol_version,
        ]),
      );
      out.line(`${items.length} device(s)`);
    },
  },

  "devices show": {
    usage: "devices show <client-id>",
    summary: "One device: registry record and live session (GET /devices/<id>)",
    args: 1,
    async run({ client, args, out }) {
      const r = await client.request("GET", `/devices/${encodeURIComponent(args[0] ?? "")}`);
      if (out.json) return out.printJson(r);
      const d = r.device;
      out.line(`device ${r.client_id}`);
      if (d) {
        out.fields([
          ["status", deviceStatus(d)],
          ["transport", d.transport],
          ["connected at", d.connected_at],
          ["disconnected at", d.disconnected_at],
          ["last seen", d.last_seen_at],
          ["disconnect reason", d.disconnect_reason ? `${d.disconnect_reason}${d.disconnect_code != null ? ` (0x${Number(d.disconnect_code).toString(16)})` : ""}` : null],
          ["will fired", d.will_fired],
          ["protocol version", d.protocol_version],
          ["username", d.username],
          ["remote address", d.remote_address],
          ["connections", d.connection_count],
          ["lease expires", d.lease_expires_at],
          ["session expires", d.session_expires_at],
          ["decommissioned at", d.decommissioned_at],
        ]);
      } else out.line("  (no registry record)");
      const s = r.session;
      out.line("");
      if (!s) return out.line("session: none");
      out.line("session");
      out.fields([
        ["connected", s.connected],
        ["route", s.route],
        ["expiry interval", `${s.session_expiry_interval} s`],
        ["expires at", s.expires_at],
        ["keep alive", s.keep_alive != null ? `${s.keep_alive} s` : null],
        ["queued", `${s.queued?.messages ?? 0} message(s), ${s.queued?.bytes ?? 0} bytes`],
        ["in flight", `${s.in_flight?.outbound ?? 0} out, ${s.in_flight?.inbound_awaiting_release ?? 0} awaiting PUBREL`],
        ["will pending", s.will_pending],
      ]);
      if ((s.subscriptions ?? []).length > 0) {
        out.line("");
        out.table(
          ["FILTER", "QOS", "NO LOCAL", "RETAIN AS PUBLISHED", "RETAIN HANDLING", "ID"],
          s.subscriptions.map((/** @type {any} */ x) => [x.filter, x.qos, x.no_local, x.retain_as_published, x.retain_handling, x.subscription_id]),
        );
      }
    },
  },

  "devices disconnect": {
    usage: "devices disconnect <client-id>",
    summary: "Close a device's connection; its session stays (POST /devices/<id>/disconnect)",
    args: 1,
    async run({ client, args, out }) {
      const r = await client.request("POST", `/devices/${encodeURIComponent(args[0] ?? "")}/disconnect`);
      if (out.json) return out.printJson(r);
      out.line(`disconnected ${r.client_id}${r.will_published ? "; its Will was published" : ""}; session ${r.session_kept ? "kept" : "ended"}`);
    },
  },

  "devices decommission": {
    usage: "devices decommission <client-id> [--retained FILTER]... [--dry-run] [--yes]",
    summary: "End a device's session, clear its retained topics, revoke its credentials and keys (DELETE /devices/<id>)",
    options: ["retained", "dry-run", "yes"],
    args: 1,
    async run(ctx) {
      const { client, args, values, out } = ctx;
      const id = args[0] ?? "";
      const query = { retained: values.retained, ...(values["dry-run"] ? { dry_run: "true" } : {}) };
      if (!values["dry-run"]) await confirm(ctx, `Decommission ${JSON.stringify(id)}: end its session, clear its retained messages, revoke its credentials and keys?`);
      const r = await client.request("DELETE", `/devices/${encodeURIComponent(id)}`, { query });
      if (out.json) return out.printJson(r);
      out.line(`${r.dry_run ? "would decommission (dry run, nothing changed)" : "decommissioned"} ${r.client_id}`);
      out.fields([
        ["was online", r.was_online],
        ["session ended", r.session_ended],
        ["subscriptions removed", r.subscriptions_removed],
        ["messages dropped", r.messages_dropped],
        ["will discarded", r.will_discarded],
        ["retained cleared", Object.entries(r.retained_cleared ?? {}).map(([f, n]) => `${f}: ${n}`).join(", ") || "-"],
        ["retained skipped", (r.retained_skipped ?? []).map((/** @type {any} */ s) => `${s.template} (${s.reason})`).join(", ") || "-"],
        ["credentials revoked", r.credentials_revoked],
        ["keys revoked", r.keys_revoked],
        ["decommissioned at", r.decommissioned_at],
      ]);
    },
  },

  "retained list": {
    usage: "retained list [--filter F] [--older-than AGE] [--limit N] [--page-size N]",
    summary: "Retained messages matching a filter, every shard, every page (GET /retained)",
    options: ["filter", "older-than", "limit", "page-size"],
    async run(ctx) {
      const { values, out } = ctx;
      const max = intOption(values.limit, "limit", { min: 1 }) ?? Infinity;
      const items = await allPages(ctx, "retained", "/retained", { filter: values.filter ?? "#", older_than: seconds(values["older-than"]) }, max);
      if (out.json) return out.printJson({ items });
      out.table(
        ["TOPIC", "SIZE", "QOS", "STORED AT", "EXPIRES AT", "PUBLISHER", "PAYLOAD"],
        items.map((m) => [m.topic, m.size, m.qos, m.stored_at, m.expires_at, m.publisher, m.payload_text !== undefined ? clip(m.payload_text, 40) : `(binary, base64 ${clip(m.payload, 24)})`]),
      );
      out.line(`${items.length} retained message(s)`);
    },
  },

  "retained get": {
    usage: "retained get <topic>",
    summary: "One retained message (GET /retained/<topic>)",
    args: 1,
    async run({ client, args, out }) {
      const m = await client.request("GET", `/retained/${topicPath(args[0] ?? "")}`);
      if (out.json) return out.printJson(m);
      out.fields([
        ["topic", m.topic],
        ["size", `${m.size} bytes`],
        ["qos", m.qos],
        ["stored at", m.stored_at],
        ["expires at", m.expires_at],
        ["publisher", m.publisher],
        ...Object.entries(m.properties ?? {}).map(([k, v]) => /** @type {[string, unknown]} */ ([k.replace(/_/g, " "), v])),
        ["payload", m.payload_text ?? `(binary) base64 ${m.payload}`],
      ]);
    },
  },

  "retained delete": {
    usage: "retained delete <topic>",
    summary: "Delete one retained message (DELETE /retained/<topic>)",
    args: 1,
    async run({ client, args, out }) {
      await client.request("DELETE", `/retained/${topicPath(args[0] ?? "")}`);
      if (out.json) return out.printJson({ topic: args[0], deleted: true });
      out.line(`deleted the retained message on ${args[0]}`);
    },
  },

  "retained clear": {
    usage: "retained clear --filter F [--older-than AGE] [--dry-run] [--yes]",
    summary: "Delete every retained message matching a filter, every shard (DELETE /retained?filter=)",
    options: ["filter", "older-than", "dry-run", "yes"],
    async run(ctx) {
      const { client, values, out } = ctx;
      if (!values.filter) throw usageError("retained clear needs --filter (`#` for everything but $ topics)");
      const query = { filter: values.filter, older_than: seconds(values["older-than"]) };
      // Count first to ask (a dry run scans every shard too): not when --yes already answered.
      if (!values["dry-run"] && !values.yes) {
        const count = await client.request("DELETE", "/retained", { query: { ...query, dry_run: "true" } });
        if (count.matched === 0) {
          if (out.json) return out.printJson(count);
          return out.line(`no retained message matches ${values.filter}: nothing to clear`);
        }
        await confirm(ctx, `Clear ${count.matched} retained message(s) matching ${values.filter}?`);
      }
      out.status(`clearing ${values.filter} on every shard...`);
      const r = await client.request("DELETE", "/retained", { query: { ...query, ...(values["dry-run"] ? { dry_run: "true" } : {}) } });
      out.progressDone();
      if (out.json) return out.printJson(r);
      out.line(r.dry_run ? `${r.matched} retained message(s) match ${values.filter} (dry run: nothing cleared)` : `cleared ${r.cleared} of ${r.matched} retained message(s) matching ${values.filter}`);
    },
  },

  "retained sweep": {
    usage: "retained sweep [--older-than AGE] [--dry-run] [--yes]",
    summary: "Clear retained messages older than RETAINED_MAX_AGE (or --older-than) now (POST /retained/sweep)",
    options: ["older-than", "dry-run", "yes"],
    async run(ctx) {
      const { client, values, out } = ctx;
      const olderThan = seconds(values["older-than"]);
      if (!values["dry-run"] && !values.yes) {
        const count = await client.request("POST", "/retained/sweep", { query: { older_than: olderThan, dry_run: "true" } });
        if (count.matched > 0) await confirm(ctx, `Sweep ${count.matched} retained message(s) older than ${count.older_than} s?`);
      }
      const r = await client.request("POST", "/retained/sweep", { query: { older_than: olderThan, ...(values["dry-run"] ? { dry_run: "true" } : {}) } });
      if (out.json) return out.printJson(r);
      out.line(r.dry_run ? `${r.matched} retained message(s) older than ${r.older_than} s (dry run: nothing cleared)` : `swept ${r.cleared} retained message(s) older than ${r.older_than} s`);
    },
  },

  "keys create": {
    usage: "keys create --name N --scope FILTER... [--device D]",
    summary: "Create an API key for HTTP ingest, scoped to topic filters; shown once (POST /keys)",
    options: ["name", "scope", "device"],
    async run({ client, values, out }) {
      if (!values.name) throw usageError("keys create needs --name");
      if (!values.scope?.length) throw usageError("keys create needs at least one --scope FILTER (e.g. --scope 'devices/gw-1/#')");
      const k = await client.request("POST", "/keys", { body: { name: values.name, scopes: values.scope, ...(values.device ? { device: values.device } : {}) } });
      if (out.json) return out.printJson(k);
      out.fields([
        ["id", k.id],
        ["name", k.name],
        ["scopes", k.scopes],
        ["device", k.device],
        ["created at", k.created_at],
      ]);
      out.line("");
      out.line(`key (shown this once; store it now): ${k.key}`);
    },
  },

  "keys list": {
    usage: "keys list",
    summary: "API keys, revoked ones included, never their secrets (GET /keys)",
    async run({ client, out }) {
      const r = await client.request("GET", "/keys");
      if (out.json) return out.printJson(r);
      const keys = r.keys ?? [];
      out.table(
        ["ID", "NAME", "SCOPES", "DEVICE", "CREATED AT", "LAST USED", "REVOKED AT"],
        keys.map((/** @type {any} */ k) => [k.id, k.name, k.scopes, k.device, k.created_at, k.last_used_at, k.revoked_at]),
      );
      out.line(`${keys.length} key(s)`);
    },
  },

  "keys revoke": {
    usage: "keys revoke <id>",
    summary: "Revoke an API key (DELETE /keys/<id>)",
    args: 1,
    async run({ client, args, out }) {
      const k = await client.request("DELETE", `/keys/${encodeURIComponent(args[0] ?? "")}`);
      if (out.json) return out.printJson(k);
      out.line(`revoked key ${k.id} (${k.name}) at ${cell(k.revoked_at)}`);
    },
  },

  "credentials add": {
    usage: "credentials add <username> [--admin] [--password P]",
    summary: "Create an MQTT user or replace its password; typed without echo or read from stdin unless --password (POST /credentials)",
    options: ["admin", "password"],
    args: 1,
    async run(ctx) {
      const { client, args, values, out } = ctx;
      const username = args[0] ?? "";
      const password = await readPassword(ctx, username);
      const c = await client.request("POST", "/credentials", { body: { username, password, ...(values.admin ? { admin: true } : {}) } });
      if (out.json) return out.printJson(c);
      out.line(`user ${c.username} stored (${c.algorithm}${c.admin ? ", admin" : ""})`);
    },
  },

  "credentials list": {
    usage: "credentials list [--limit N] [--page-size N]",
    summary: "MQTT users, never their passwords (GET /credentials)",
    options: ["limit", "page-size"],
    async run(ctx) {
      const max = intOption(ctx.values.limit, "limit", { min: 1 }) ?? Infinity;
      const items = await allPages(ctx, "credentials", "/credentials", {}, max);
      if (ctx.out.json) return ctx.out.printJson({ items });
      ctx.out.table(
        ["USERNAME", "ADMIN", "ALGORITHM", "CREATED AT"],
        items.map((c) => [c.username, c.admin, c.algorithm, c.created_at]),
      );
      ctx.out.line(`${items.length} user(s)`);
    },
  },

  "credentials delete": {
    usage: "credentials delete <username>",
    summary: "Delete an MQTT user: new CONNECTs refused within AUTH_CACHE_SECONDS (DELETE /credentials/<username>)",
    args: 1,
    async run({ client, args, out }) {
      const username = args[0] ?? "";
      await client.request("DELETE", `/credentials/${encodeURIComponent(username)}`);
      if (out.json) return out.printJson({ username, deleted: true });
      out.line(`deleted user ${username} (live connections stay until they reconnect: devices disconnect <id>)`);
    },
  },

  "acl add": {
    usage: "acl add --topic FILTER --action publish|subscribe|all (--allow|--deny) [--username U] [--clientid C]",
    summary: "Add an ACL rule; %c / %u in the topic stand for client id / user name (POST /acl)",
    options: ["topic", "action", "allow", "deny", "username", "clientid"],
    async run({ client, values, out }) {
      if (!values.topic) throw usageError("acl add needs --topic FILTER (e.g. --topic 'devices/%c/#')");
      if (!values.action || !["publish", "subscribe", "all"].includes(values.action)) throw usageError("acl add needs --action publish, subscribe or all");
      if (Boolean(values.allow) === Boolean(values.deny)) throw usageError("acl add needs exactly one of --allow and --deny");
      const body = {
        topic: values.topic,
        action: values.action,
        allow: Boolean(values.allow),
        ...(values.username !== undefined ? { username: values.username } : {}),
        ...(values.clientid !== undefined ? { clientid: values.clientid } : {}),
      };
      const r = await client.request("POST", "/acl", { body });
      if (out.json) return out.printJson(r);
      out.line(`rule ${r.id}: ${r.allow ? "allow" : "deny"} ${r.action} ${r.topic} for user ${r.username ?? "(any)"}, client ${r.clientid ?? "(any)"}`);
    },
  },

  "acl list": {
    usage: "acl list [--username U] [--clientid C] [--limit N] [--page-size N]",
    summary: "ACL rules, oldest first (GET /acl)",
    options: ["username", "clientid", "limit", "page-size"],
    async run(ctx) {
      const max = intOption(ctx.values.limit, "limit", { min: 1 }) ?? Infinity;
      const items = await allPages(ctx, "rules", "/acl", { username: ctx.values.username, clientid: ctx.values.clientid }, max);
      if (ctx.out.json) return ctx.out.printJson({ items });
      ctx.out.table(["ID", "DECISION", "ACTION", "TOPIC", "USERNAME", "CLIENT ID", "CREATED AT"], items.map(ruleRow));
      ctx.out.line(`${items.length} rule(s)`);
    },
  },

  "acl delete": {
    usage: "acl delete <id>",
    summary: "Delete an ACL rule (DELETE /acl/<id>)",
    args: 1,
    async run({ client, args, out }) {
      const id = args[0] ?? "";
      if (!/^[1-9]\d*$/.test(id)) throw usageError(`acl delete takes a rule id (a positive whole number), not ${JSON.stringify(id)}`);
      await client.request("DELETE", `/acl/${id}`);
      if (out.json) return out.printJson({ id: Number(id), deleted: true });
      out.line(`deleted rule ${id}`);
    },
  },

  publish: {
    usage: "publish <topic> <payload> [--qos 0|1|2] [--retain] [--base64] [--device D] [--idempotency-key K]\n  publish --bulk FILE.json [--chunk N]",
    summary: "Publish over HTTP as an MQTT client would (POST /publish, /publish/bulk)",
    options: ["qos", "retain", "base64", "device", "idempotency-key", "bulk", "chunk"],
    args: [0, 2],
    async run(ctx) {
      const { client, args, values, out } = ctx;
      if (values.bulk !== undefined) {
        if (args.length > 0) throw usageError("publish --bulk FILE takes no topic or payload");
        return publishBulk(ctx, values.bulk);
      }
      if (args.length !== 2) throw usageError("publish needs <topic> <payload> (or --bulk FILE)");
      const qos = intOption(values.qos, "qos", { max: 2 }) ?? 0;
      const item = {
        topic: args[0],
        payload: args[1],
        payload_encoding: values.base64 ? "base64" : "plain",
        qos,
        retain: values.retain ?? false,
        ...(values.device ? { clientid: values.device } : {}),
      };
      /** @type {Record<string, string>} */
      const headers = values["idempotency-key"] ? { "Idempotency-Key": values["idempotency-key"] } : {};
      const r = await client.request("POST", "/publish", { body: item, headers });
      if (out.json) return out.printJson(r);
      out.line(`published to ${args[0]} (id ${r.id})${r.message === "no_matching_subscribers" ? ": no matching subscribers" : ""}`);
    },
  },
};

/**
 * `publish --bulk FILE`: a JSON array of items (EMQX's shape, as POST /publish/bulk) or one
 * item per line, sent in chunks of --chunk (default 500) with a progress bar. Each chunk
 * carries an Idempotency-Key made from the file's content and the chunk's place, so running
 * the same command again after a failure publishes nothing twice (within IDEMPOTENCY_TTL).
 * @param {Ctx} ctx
 * @param {string} file
 */
async function publishBulk(ctx, file) {
  const { client, values, out } = ctx;
  const text = readFileSync(file === "-" ? 0 : file, "utf8");
  /** @type {unknown[]} */
  let items;
  try {
    const trimmed = text.trim();
    items = trimmed.startsWith("[") ? JSON.parse(trimmed) : trimmed.split(/\r?\n/).filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
  } catch (err) {
    throw new CliError(`${file}: not a JSON array nor one JSON object per line (${err instanceof Error ? err.message : err})`, { exitCode: 2 });
  }
  if (!Array.isArray(items) || items.length === 0) throw new CliError(`${file}: no items to publish`, { exitCode: 2 });
  const chunk = intOption(values.chunk, "chunk", { min: 1, max: 100_000 }) ?? 500;
  const digest = createHash("sha256").update(text).digest("hex").slice(0, 32);
  /** @type {unknown[]} */
  const results = [];
  let noMatch = 0;
  for (let start = 0; start < items.length; start += chunk) {
    const part = items.slice(start, start + chunk);
    const key = `${values["idempotency-key"] ?? `cli-${digest}`}-${start}-${part.length}`;
    out.progress("publishing", start, items.length, "message(s)");
    /** @type {any[]} */
    let answer;
    try {
      answer = await client.request("POST", "/publish/bulk", { body: part, headers: { "Idempotency-Key": key } });
    } catch (err) {
      out.progressDone();
      if (err instanceof CliError) {
        err.message = `items ${start} to ${start + part.length - 1} refused (${start} published before them; run the same command again to resume: earlier chunks are not published twice):\n${err.message}`;
      }
      throw err;
    }
    results.push(...answer);
    noMatch += answer.filter((r) => r && r.message === "no_matching_subscribers").length;
  }
  out.progress("publishing", items.length, items.length, "message(s)");
  out.progressDone();
  if (out.json) return out.printJson(results);
  out.line(`published ${items.length} message(s) in ${Math.ceil(items.length / chunk)} request(s)${noMatch ? `; ${noMatch} matched no subscriber` : ""}`);
}

// ------------------------------------------------------------------------- main

export function helpText() {
  const lines = [
    "edge-mqtt admin: the broker's admin API from the command line (docs/admin.md)",
    "",
    "usage: npm run admin -- <command> [options]     (or: npx edge-mqtt-admin <command>)",
    "",
    "commands:",
  ];
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}  ${c.summary}`);
  lines.push("", "usage of each:");
  for (const c of Object.values(COMMANDS)) lines.push(`  ${c.usage}`);
  lines.push(
    "",
    "options of every command:",
    `  --url URL      the broker (default: $EDGE_MQTT_URL, else ${DEFAULT_URL})`,
    "  --token T      the admin token (default: $ADMIN_TOKEN, else ADMIN_TOKEN in ./.dev.vars or the project's .dev.vars)",
    "  --json         JSON on stdout, for scripts",
    "  --limit N      list commands: at most N items in all; --page-size N: items per request (default 1000)",
    "  AGE            seconds, or with a unit: 90s, 15m, 12h, 7d, 2w",
  );
  return lines.join("\n");
}

/**
 * The admin token: --token, $ADMIN_TOKEN, ./.dev.vars, then the project's .dev.vars.
 * @param {string | undefined} flag
 * @param {NodeJS.ProcessEnv} env
 */
export function findToken(flag, env = process.env) {
  if (flag) return { token: flag, from: "--token" };
  if (env.ADMIN_TOKEN) return { token: env.ADMIN_TOKEN, from: "ADMIN_TOKEN" };
  for (const path of [...new Set([resolve(".dev.vars"), DEV_VARS])]) {
    const token = readDevVars(path)?.ADMIN_TOKEN;
    if (token) return { token, from: path };
  }
  return undefined;
}

/**
 * @param {string[]} argv
 * @param {{ env?: NodeJS.ProcessEnv, stdout?: NodeJS.WritableStream, stderr?: NodeJS.WritableStream }} [io]
 * @returns {Promise<number>} the exit status
 */
export async function main(argv, { env = process.env, stdout = process.stdout, stderr = process.stderr } = {}) {
  /** @type {{ values: Values, positionals: string[] }} */
  let parsed;
  try {
    parsed = /** @type {any} */ (parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    stderr.write(`${err instanceof Error ? err.message : err}\nRun with --help for the commands and their options.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    (positionals.length === 0 && !values.help ? stderr : stdout).write(`${helpText()}\n`);
    return values.help ? 0 : 2;
  }
  const two = positionals.slice(0, 2).join(" ");
  const name = COMMANDS[two] ? two : positionals[0] ?? "";
  const command = COMMANDS[name];
  const out = new Output({ json: values.json ?? false, progress: Boolean(stderr === process.stderr && process.stderr.isTTY) || env.EDGE_MQTT_PROGRESS === "1", stdout, stderr });
  try {
    if (!command) {
      const group = Object.keys(COMMANDS).filter((n) => n.startsWith(`${positionals[0]} `));
      throw usageError(group.length > 0 ? `${positionals[0]}: expected one of ${group.map((g) => g.split(" ")[1]).join(", ")}` : `unknown command: ${positionals.join(" ")}`);
    }
    const args = positionals.slice(name.split(" ").length);
    const [minArgs, maxArgs] = Array.isArray(command.args) ? command.args : [command.args ?? 0, command.args ?? 0];
    if (args.length < minArgs || args.length > maxArgs) throw usageError(`usage: ${command.usage}`);
    const allowed = new Set([...GLOBAL, ...(command.options ?? [])]);
    const extra = Object.keys(values).filter((o) => !allowed.has(o));
    if (extra.length > 0) throw usageError(`${name} takes no ${extra.map((o) => `--${o}`).join(", ")} (usage: ${command.usage})`);
    const found = findToken(values.token, env);
    if (!found) throw new CliError("no admin token: pass --token, set ADMIN_TOKEN, or run `npm start` once (it writes one to .dev.vars)", { exitCode: 2 });
    const client = new Client(values.url ?? env.EDGE_MQTT_URL ?? DEFAULT_URL, found.token);
    await command.run({ client, values, args, out });
    return 0;
  } catch (err) {
    out.progressDone();
    if (err instanceof CliError) {
      stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
    return 1;
  }
}

// Run directly, or through the package bin (a symlink in node_modules/.bin).
if (process.argv[1] && realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url))) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
