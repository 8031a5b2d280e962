#!/usr/bin/env node
// `npm run bench:security` (and the "security" part of `npm run bench`): what authentication
// costs on connect and what ACL rules cost on publish, against brokers started as `npm start`
// starts them (startBroker), clients in separate processes (bench/client-worker.mjs, the lean
// client over the fast path /mqtt/<id>).
//
// (a) Connections per second, each client connecting, getting its CONNACK and disconnecting,
//     `--connections N` of them (default 200, --quick 100), 16 in flight, on ONE broker
//     (ALLOW_ANONYMOUS=true, so anonymous clients are allowed there too), in rounds (below):
//       anonymous-new     no user name, a new client identifier each
//       anonymous-again   the same identifiers again (their session objects exist)
//       password-cold     a user name and password each, N different users never seen: one
//                         D1 read and one PBKDF2 (PBKDF2_ITERATIONS) per connection
//       password-warm     the same users and identifiers again within AUTH_CACHE_SECONDS: from
//                         the isolate's cache, no D1 read, no PBKDF2
//       jwt-hs256-new     a JSON Web Token (HS256, JWT_SECRET, audience and issuer checked) as
//                         the password, a different `sub` each, new identifiers
//       jwt-hs256-again   the same tokens and identifiers again
//     Ratios: each against anonymous-new (new identifiers) or anonymous-again (again).
// (b) Publish throughput, fan-in: `--publishers N` (default 20, --quick 10) publishers, each its
//     own user, flooding QoS 0 (PINGREQ-paced) or QoS 1 (16 in flight) to bench/sec/<user>/x
//     for a few seconds, one subscriber on bench/sec/# (every delivery is also a read check),
//     all authenticated with passwords, each rule set on its own broker with
//     ALLOW_ANONYMOUS=false (written once, before any session exists):
//       rules-1     one rule: everyone may use bench/sec/# (the least that lets it run)
//       rules-100   the subscriber's rule, a `bench/sec/%u/#` publish rule per publisher user,
//                   and filler up to 100: 90% per-user rules of other users, 10% rules for
//                   everyone (deny rules on topics the load does not use)
//       rules-1000  the same up to 1,000
//     and, as the zero point, the same load on the first broker with no rule at all
//     (ALLOW_ANONYMOUS=true: allowed where nothing matches): rules-0.
//     Figures: messages taken in per second (published/s), delivered per second, and the
//     broker's CPU per message taken in (QoS 0 floods overrun the one subscriber, whose QoS 0
//     backlog the broker then drops: per delivered message would charge the drops to the
//     rules); GET /metrics' ACL counters must stay at 0 (else a WARNING: the rules are wrong).
//     Ratios: each against rules-1 (and rules-0).
//
// Rounds (`--rounds N`, default 3, --quick 1): every scenario N times, the order of the kinds
// (connect) or of the rule sets' brokers (publish) turning each round, all brokers up all
// along; the median of each figure is kept, every round is in the JSON. The machine's drift
// (other work on its 2 cores) then falls on every kind alike instead of on whichever ran last.
//
//   --quick            smaller N, 3 s loads, one round (about 3 minutes)
//   --only a,b         only parts whose name starts with one of these (connect, publish)
//   --out FILE         JSON (default bench/results/security.json)
//
// The machine is shared and noisy: compare figures of ONE run (ratios), not across runs.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { argFromArgs, getFreePort, NO_NETWORK_ENV, startBroker } from "../../scripts/broker-process.mjs";
import { cpuDelta, treeCpu } from "../lib/proc.mjs";
import { bundleCodec, startWorker } from "../lib/workers.mjs";
/** @typedef {import("../lib/workers.mjs").Worker} Worker */

const HERE = dirname(fileURLToPath(import.meta.url));
const now = () => performance.timeOrigin + performance.now();
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
const round = (/** @type {number} */ x, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : null);

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = (argFromArgs("--only", args) ?? "").split(",").filter(Boolean);
const out = argFromArgs("--out", args) ?? join(HERE, "..", "results", "security.json");
const wanted = (/** @type {string} */ part) => only.length === 0 || only.some((o) => part.startsWith(o));

const P = {
  connections: Number(argFromArgs("--connections", args) ?? (quick ? 100 : 200)),
  connectConcurrency: 16,
  publishers: Number(argFromArgs("--publishers", args) ?? (quick ? 10 : 20)),
  durationMs: quick ? 3_000 : 8_000,
  maxPerClient: quick ? 30_000 : 200_000,
  payloadBytes: 64,
  drainMaxMs: quick ? 8_000 : 15_000,
  ruleCounts: [1, 100, 1000],
  /** Rounds of every scenario, in turning order; the median is kept (all are in the JSON). */
  rounds: Number(argFromArgs("--rounds", args) ?? (quick ? 1 : 3)),
};
const ADMIN_TOKEN = `bench-${Math.random().toString(36).slice(2)}`;
const JWT_SECRET = `bench-secret-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
const JWT_AUDIENCE = "edge-mqtt-bench";
const JWT_ISSUER = "bench";
const PASSWORD = "bench-password-0123";
/** The broker's ACL_CACHE_SECONDS (wrangler.toml's): how long a rule change takes to reach a session. */
const ACL_CACHE_SECONDS = 10;
/** Broker settings of every run: publish rates off (flooding publishers), the rest as deployed. */
const COMMON_VARS = { ADMIN_TOKEN, MAX_PUBLISH_RATE: "0", MAX_PUBLISH_BYTES_RATE: "0" };

/**
 * @typedef {{ url: string, httpUrl: string, pid: number, stop: () => Promise<void> }} Running
 */

/** @param {Record<string, string>} vars @returns {Promise<Running>} */
async function start(vars) {
  const persistTo = mkdtempSync(join(tmpdir(), "edge-mqtt-bench-security-"));
  let log = "";
  try {
    const b = await startBroker({
      port: await getFreePort(),
      persistTo,
      onOutput: (chunk) => {
        log = (log + chunk).slice(-20_000);
        if (process.env.BROKER_LOG) process.stderr.write(chunk);
      },
      vars: { ...COMMON_VARS, ...vars },
    });
    return {
      url: b.url,
      httpUrl: b.httpUrl,
      pid: b.pid,
      stop: async () => {
        await b.stop();
        rmSync(persistTo, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(persistTo, { recursive: true, force: true });
    throw new Error(`${e instanceof Error ? e.message : e}\n--- broker output ---\n${log}`);
  }
}

/**
 * An admin API call; throws on a status other than `expect`.
 * @param {Running} b @param {string} method @param {string} path @param {unknown} [body] @param {number} [expect]
 */
async function api(b, method, path, body, expect) {
  const res = await fetch(`${b.httpUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (expect !== undefined ? res.status !== expect : !res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/**
 * Runs `fn` over `items`, `concurrency` at a time.
 * @template T @param {T[]} items @param {number} concurrency @param {(item: T) => Promise<unknown>} fn
 */
async function pool(items, concurrency, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(/** @type {T} */ (items[next++]));
    }),
  );
}

/** @param {string[]} names creates each user with PASSWORD; returns ms per user */
async function createUsers(/** @type {Running} */ b, names) {
  const t0 = now();
  await pool(names, 4, (username) => api(b, "POST", "/credentials", { username, password: PASSWORD }, 201));
  return (now() - t0) / Math.max(1, names.length);
}

/** Counters of GET /metrics that tell where messages went: a denial here means the rules were wrong. */
const WATCHED = ["published", "delivered", "aclDeniedPublish", "aclDeniedRead", "droppedQos0", "droppedQueued", "authFailures", "connectRefused"];

/** The broker's counters (GET /metrics `total`), or null when it does not answer. @param {Running} b */
async function counters(b) {
  try {
    const res = await fetch(`${b.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
    const json = /** @type {any} */ (await res.json());
    return res.ok && json && typeof json.total === "object" ? /** @type {Record<string, number>} */ (json.total) : null;
  } catch {
    return null;
  }
}

/**
 * What the watched counters did between two readings (the metrics object gathers them about
 * once a second: read after a pause).
 * @param {Record<string, number> | null} before @param {Record<string, number> | null} after
 */
function counterDelta(before, after) {
  if (!before || !after) return null;
  return Object.fromEntries(WATCHED.filter((k) => k in after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));
}

/** @param {number} total @param {number} parts */
function split(total, parts) {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, k) => base + (k < total % parts ? 1 : 0));
}

// ---------------------------------------------------------------- (a) connections per second

/**
 * N connections, each closed once its CONNACK arrived, from two client processes.
 * @param {Running} b @param {Worker[]} W @param {{ name: string, ids: string, credentials?: { username?: string, password?: string }[] }} o
 */
async function connectRate(b, W, { name, ids, credentials }) {
  const [A, B] = /** @type {[Worker, Worker]} */ (W);
  const parts = split(P.connections, 2);
  const m0 = await counters(b);
  const cpu0 = treeCpu(b.pid);
  const t0 = now();
  const results = await Promise.all(
    [A, B].map((w, k) =>
      w.call("connect", {
        group: `conn-${name}-${k}`,
        kind: "lean",
        url: b.url,
        route: "fast",
        count: parts[k],
        idPrefix: `${ids}-${w.name}-`,
        concurrency: P.connectConcurrency / 2,
        keepAlive: 60,
        version: 5,
        hold: false,
        timeoutMs: 300_000,
        ...(credentials ? { credentials: credentials.slice(k === 0 ? 0 : parts[0], k === 0 ? parts[0] : undefined) } : {}),
      }),
    ),
  );
  const ms = now() - t0;
  const d = cpuDelta(cpu0, treeCpu(b.pid));
  await Promise.all([A, B].map((w, k) => w.call("close", { group: `conn-${name}-${k}` })));
  const connected = results.reduce((a, r) => a + r.connected, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  await sleep(1_200); // let the disconnects settle, the counters arrive
  const m1 = await counters(b);
  return {
    connections: P.connections,
    connected,
    failed,
    ...(failed ? { errors: results.flatMap((r) => r.errors).slice(0, 5) } : {}),
    seconds: round(ms / 1000, 2),
    connectsPerSec: round(connected / (ms / 1000)),
    brokerCpuMsPerConnection: connected ? round(d.totalUs / 1000 / connected, 2) : null,
    brokerCounters: counterDelta(m0, m1),
  };
}

/**
 * The median of each numeric figure over rounds (and the rounds themselves).
 * @param {Record<string, any>[]} rounds
 */
function medianOf(rounds) {
  /** @type {Record<string, any>} */
  const m = {};
  for (const key of Object.keys(rounds[0] ?? {})) {
    const values = rounds.map((r) => r[key]).filter((v) => typeof v === "number").sort((x, y) => x - y);
    if (values.length === rounds.length && values.length > 0) m[key] = values[Math.floor((values.length - 1) / 2)];
  }
  // Counters (GET /metrics deltas) are summed over the rounds.
  /** @type {Record<string, number> | null} */
  let counters = null;
  for (const r of rounds) {
    if (!r.brokerCounters) continue;
    counters ??= {};
    for (const [k, v] of Object.entries(/** @type {Record<string, number>} */ (r.brokerCounters))) counters[k] = (counters[k] ?? 0) + v;
  }
  return rounds.length > 1 ? { ...m, brokerCountersAllRounds: counters, rounds } : { ...rounds[0] };
}

/** @param {Running} b @param {Worker[]} W */
async function connectPart(b, W) {
  const n = P.connections;
  /** @type {Record<string, Record<string, any>[]>} */
  const rounds = {};
  /** @type {number[]} */
  const createMs = [];
  const secret = new TextEncoder().encode(JWT_SECRET);
  for (let rnd = 0; rnd < P.rounds; rnd++) {
    const tag = `sec-${process.pid}-r${rnd}`;
    const users = Array.from({ length: n }, (_, i) => `cold-r${rnd}-${i}`);
    process.stderr.write(`round ${rnd + 1}/${P.rounds}: creating ${n} users (PBKDF2 each) ...`);
    createMs.push(await createUsers(b, users));
    process.stderr.write(` ${round(createMs.at(-1) ?? NaN)} ms per user\n`);
    const passwords = users.map((username) => ({ username, password: PASSWORD }));
    const nowS = Math.floor(Date.now() / 1000);
    // `client_id` as JWT_CLIENTID_CLAIM (wrangler.toml: "client_id") expects: each token for the
    // identifier it is used with (bench/client-worker.mjs names clients `${idPrefix}${i}`).
    /** @param {string} ids @param {string} worker @param {number} i */
    const token = (ids, worker, i) =>
      new SignJWT({ client_id: `${ids}-${worker}-${i}` })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(`jwt-${tag}-${worker}-${i}`)
        .setAudience(JWT_AUDIENCE)
        .setIssuer(JWT_ISSUER)
        .setIssuedAt(nowS)
        .setExpirationTime(nowS + 3600)
        .sign(secret);
    const parts = split(n, 2);
    const jwtIds = `${tag}-jwt`;
    const tokens = [
      ...(await Promise.all(Array.from({ length: parts[0] ?? 0 }, (_, i) => token(jwtIds, "A", i)))),
      ...(await Promise.all(Array.from({ length: parts[1] ?? 0 }, (_, i) => token(jwtIds, "B", i)))),
    ].map((password) => ({ username: "token", password })); // the user name is the token's `sub`; this one is not looked at
    /** @type {Record<string, { ids: string, credentials?: { username?: string, password?: string }[] }>} */
    const kinds = { anonymous: { ids: `${tag}-anon` }, password: { ids: `${tag}-pw`, credentials: passwords }, "jwt-hs256": { ids: jwtIds, credentials: tokens } };
    // Every kind's first connections, then every kind's again (the again-phase finds what the
    // first left: session objects, cached credentials); the kinds' order turns each round so
    // that the machine's drift is spread over them.
    const order = Object.keys(kinds).map((_, k, all) => /** @type {string} */ (all[(k + rnd) % all.length]));
    for (const phase of ["new", "again"]) {
      for (const kind of order) {
        const name = kind === "password" ? (phase === "new" ? "password-cold" : "password-warm") : `${kind}-${phase}`;
        process.stderr.write(`connect: ${name} ...`);
        const r = await connectRate(b, W, { name: `${name}-r${rnd}`, ...(/** @type {any} */ (kinds[kind])) });
        (rounds[name] ??= []).push(r);
        process.stderr.write(` ${r.connectsPerSec}/s${r.failed ? ` (${r.failed} failed: ${r.errors?.[0]})` : ""}\n`);
      }
    }
  }
  /** @type {Record<string, any>} */
  const r = {};
  for (const name of ["anonymous-new", "anonymous-again", "password-cold", "password-warm", "jwt-hs256-new", "jwt-hs256-again"]) {
    if (rounds[name]) r[name] = medianOf(rounds[name]);
  }
  const ratio = (/** @type {string} */ a, /** @type {string} */ base) => {
    const x = r[a]?.connectsPerSec;
    const y = r[base]?.connectsPerSec;
    return x && y ? round(x / y, 3) : null;
  };
  const cpuRatio = (/** @type {string} */ a, /** @type {string} */ base) => {
    const x = r[a]?.brokerCpuMsPerConnection;
    const y = r[base]?.brokerCpuMsPerConnection;
    return x && y ? round(x / y, 2) : null;
  };
  return {
    usersCreatedMsEach: round(createMs.sort((x, y) => x - y)[Math.floor((createMs.length - 1) / 2)] ?? NaN),
    scenarios: r,
    ratios: {
      "password-cold / anonymous-new": ratio("password-cold", "anonymous-new"),
      "password-warm / anonymous-again": ratio("password-warm", "anonymous-again"),
      "jwt-hs256-new / anonymous-new": ratio("jwt-hs256-new", "anonymous-new"),
      "jwt-hs256-again / anonymous-again": ratio("jwt-hs256-again", "anonymous-again"),
      "password-warm / password-cold": ratio("password-warm", "password-cold"),
    },
    cpuPerConnectionRatios: {
      "password-cold / anonymous-new": cpuRatio("password-cold", "anonymous-new"),
      "password-warm / anonymous-again": cpuRatio("password-warm", "anonymous-again"),
      "jwt-hs256-new / anonymous-new": cpuRatio("jwt-hs256-new", "anonymous-new"),
      "jwt-hs256-again / anonymous-again": cpuRatio("jwt-hs256-again", "anonymous-again"),
    },
  };
}

// ---------------------------------------------------------------- (b) ACL cost on publish

/**
 * The rule set of `count` rules (count >= 1): see the header. Publisher users are pub-0..;
 * the subscriber is user `reader`.
 * @param {number} count @param {number} publishers
 */
export function ruleSet(count, publishers) {
  if (count <= 1) return [{ topic: "bench/sec/#", action: "all", allow: true }];
  /** @type {{ username?: string, clientid?: string, topic: string, action: "publish" | "subscribe" | "all", allow: boolean }[]} */
  const rules = [{ username: "reader", topic: "bench/sec/#", action: "subscribe", allow: true }];
  for (let k = 0; k < publishers && rules.length < count; k++) rules.push({ username: `pub-${k}`, topic: "bench/sec/%u/#", action: "publish", allow: true });
  for (let j = 0; rules.length < count; j++) {
    rules.push(
      j % 10 === 9
        ? { topic: `bench/closed/${j}/#`, action: "all", allow: false } // for everyone
        : { username: `other-${j}`, topic: `devices/other-${j}/#`, action: "all", allow: true },
    );
  }
  return rules;
}

/** Deletes every rule (a page at a time). @param {Running} b */
async function clearRules(b) {
  for (;;) {
    const page = await api(b, "GET", "/acl?limit=1000");
    if (!page.items.length) return;
    await pool(page.items, 8, (/** @type {any} */ rule) => api(b, "DELETE", `/acl/${rule.id}`, undefined, 204));
  }
}

/**
 * One fan-in run: publishers (W[0], W[1]) flood bench/sec/<user>/x, one subscriber (W[2]).
 * @param {Running} b @param {Worker[]} W @param {{ name: string, qos: 0 | 1 }} o
 */
async function fanIn(b, W, { name, qos }) {
  const [A, B, C] = /** @type {[Worker, Worker, Worker]} */ (W);
  const base = { kind: "lean", url: b.url, route: "fast", keepAlive: 60, version: 5 };
  const sub = await C.call("connect", { ...base, group: "sub", count: 1, idPrefix: `${name}-q${qos}-sub-`, subscribe: { filter: "bench/sec/#", qos }, credentials: [{ username: "reader", password: PASSWORD }] });
  if (sub.connected !== 1) throw new Error(`subscriber did not connect: ${sub.errors.join("; ")}`);
  const parts = split(P.publishers, 2);
  const creds = Array.from({ length: P.publishers }, (_, i) => ({ username: `pub-${i}`, password: PASSWORD }));
  const pubs = await Promise.all(
    [A, B].map((w, k) =>
      w.call("connect", {
        ...base,
        group: "pub",
        count: parts[k],
        idPrefix: `${name}-q${qos}-p${w.name}-`,
        concurrency: 10,
        credentials: creds.slice(k === 0 ? 0 : parts[0], k === 0 ? parts[0] : undefined),
      }),
    ),
  );
  const connected = pubs.reduce((a, p) => a + p.connected, 0);
  if (connected < P.publishers) throw new Error(`publishers: ${connected}/${P.publishers} connected: ${pubs.flatMap((p) => p.errors).join("; ")}`);
  await sleep(1_200);
  const m0 = await counters(b);
  const cpu0 = treeCpu(b.pid);
  const startAt = now() + 150;
  const pubArgs = { group: "pub", topic: "bench/sec/pub-{i}/x", qos, durationMs: P.durationMs, maxMessages: P.maxPerClient, payloadBytes: P.payloadBytes, window: 16, startAt };
  const results = await Promise.all([A, B].map((w, k) => w.call("publish", { ...pubArgs, indexOffset: k === 0 ? 0 : parts[0] })));
  const published = results.reduce((a, r) => a + r.published, 0);
  const acked = results.reduce((a, r) => a + r.acked, 0);
  const endAt = Math.max(...results.map((r) => r.endAt));
  // Drain: until everything arrived, or nothing arrived for 2 s, or drainMaxMs.
  /** @type {any} */
  let s = await C.call("stats", { group: "sub" });
  const drainEnd = now() + P.drainMaxMs;
  let lastCount = -1;
  let lastChange = now();
  while (s.delivered < published && now() < drainEnd && now() - lastChange < 2_000) {
    await sleep(200);
    s = await C.call("stats", { group: "sub" });
    if (s.delivered !== lastCount) (lastCount = s.delivered), (lastChange = now());
  }
  const d = cpuDelta(cpu0, treeCpu(b.pid));
  await sleep(1_200);
  const m1 = await counters(b);
  await Promise.all([A.call("close", { group: "pub" }), B.call("close", { group: "pub" }), C.call("close", { group: "sub" })]);
  await sleep(500);
  const deliverMs = Math.max(1, (s.lastAt || endAt) - startAt);
  return {
    qos,
    publishers: P.publishers,
    published,
    ...(qos > 0 ? { acked } : {}),
    delivered: s.delivered,
    loss: published - s.delivered,
    publishedPerSec: Math.round(published / ((endAt - startAt) / 1000)),
    deliveredPerSec: Math.round(s.delivered / (deliverMs / 1000)),
    brokerCpuUsPerMsg: s.delivered ? round(d.totalUs / s.delivered, 2) : null,
    // Per message taken in: QoS 0 floods overrun the one subscriber and the broker drops
    // (droppedQos0), so per delivered message would charge the drops to the rules.
    brokerCpuUsPerPublished: published ? round(d.totalUs / published, 2) : null,
    brokerCounters: counterDelta(m0, m1),
  };
}

/**
 * @param {Running} open ALLOW_ANONYMOUS=true, no rules (rules-0)
 * @param {Map<number, Running>} closed ALLOW_ANONYMOUS=false, one broker per rule count
 * @param {Worker[]} W
 */
async function publishPart(open, closed, W) {
  const users = ["reader", ...Array.from({ length: P.publishers }, (_, i) => `pub-${i}`)];
  await Promise.all([open, ...closed.values()].map((b) => createUsers(b, users)));
  // Each rule set written once, to its own broker, before any session exists.
  await Promise.all(
    [...closed].map(async ([count, b]) => {
      const t0 = now();
      await pool(ruleSet(count, P.publishers), 8, (rule) => api(b, "POST", "/acl", rule, 201));
      process.stderr.write(`${count} rule(s) written in ${round((now() - t0) / 1000, 1)} s\n`);
    }),
  );
  // Within ACL_CACHE_SECONDS every isolate has read them; and workerd has evicted the idle
  // session objects of the connection part (about 10 s after their last event).
  await sleep((ACL_CACHE_SECONDS + 2) * 1000);
  /** @type {[string, Running][]} */
  const configs = [["rules-0", open], ...[...closed].map(([count, b]) => /** @type {[string, Running]} */ ([`rules-${count}`, b]))];
  /** @type {Record<string, Record<string, any>[]>} */
  const rounds = {};
  for (let rnd = 0; rnd < P.rounds; rnd++) {
    // The order turns each round: the machine's drift is spread over the rule sets.
    for (let k = 0; k < configs.length; k++) {
      const [name, b] = /** @type {[string, Running]} */ (configs[(k + rnd) % configs.length]);
      for (const qos of /** @type {const} */ ([0, 1])) {
        process.stderr.write(`publish (round ${rnd + 1}/${P.rounds}): ${name} QoS ${qos} ...`);
        const x = /** @type {Record<string, any>} */ (await fanIn(b, W, { name: `${name}-r${rnd}`, qos }));
        // Every rule set lets the whole load through: a denial is the bench's (or the ACL's) bug.
        const denied = (x.brokerCounters?.aclDeniedPublish ?? 0) + (x.brokerCounters?.aclDeniedRead ?? 0);
        if (denied > 0) x.warning = `the ACL denied ${denied} messages the rules allow`;
        (rounds[`${name}-q${qos}`] ??= []).push(x);
        process.stderr.write(` ${x.publishedPerSec}/s published, ${x.deliveredPerSec}/s delivered${x.warning ? ` WARNING: ${x.warning}` : ""}\n`);
      }
    }
  }
  /** @type {Record<string, any>} */
  const r = {};
  for (const [name] of configs) for (const qos of [0, 1]) if (rounds[`${name}-q${qos}`]) r[`${name}-q${qos}`] = medianOf(rounds[`${name}-q${qos}`] ?? []);
  for (const [name, list] of Object.entries(rounds)) {
    const warnings = list.map((x) => x.warning).filter(Boolean);
    if (warnings.length && r[name]) r[name].warning = warnings.join("; ");
  }
  /** @param {"deliveredPerSec" | "publishedPerSec" | "brokerCpuUsPerPublished"} key */
  const ratiosOf = (key) => {
    /** @type {Record<string, number | null>} */
    const ratios = {};
    for (const qos of [0, 1]) {
      const ref = r[`rules-1-q${qos}`]?.[key];
      const zero = r[`rules-0-q${qos}`]?.[key];
      for (const count of P.ruleCounts) {
        const x = r[`rules-${count}-q${qos}`]?.[key];
        if (count !== 1) ratios[`rules-${count} / rules-1, QoS ${qos}`] = x && ref ? round(x / ref, 3) : null;
        ratios[`rules-${count} / rules-0, QoS ${qos}`] = x && zero ? round(x / zero, 3) : null;
      }
    }
    return ratios;
  };
  return { scenarios: r, ratios: ratiosOf("deliveredPerSec"), publishedRatios: ratiosOf("publishedPerSec"), cpuPerPublishedRatios: ratiosOf("brokerCpuUsPerPublished") };
}

// ---------------------------------------------------------------- main

/** @param {string[][]} rows */
function table(rows) {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
      return ri === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
    })
    .join("\n");
}

/** @param {any} result */
export function printSecurity(result) {
  const f = (/** @type {any} */ x) => (x === null || x === undefined ? "-" : typeof x === "number" ? x.toLocaleString("en-US") : String(x));
  if (result.connect) {
    const rows = [["connect scenario", "connected", "conn/s", "broker CPU ms/conn"]];
    for (const [name, s] of Object.entries(result.connect.scenarios)) rows.push([name, `${f(s.connected)}/${f(s.connections)}`, f(s.connectsPerSec), f(s.brokerCpuMsPerConnection)]);
    console.log(table(rows));
    for (const [k, v] of Object.entries(result.connect.ratios)) console.log(`  conn/s ${k}: ${f(v)}`);
    for (const [k, v] of Object.entries(result.connect.cpuPerConnectionRatios)) console.log(`  broker CPU per connection ${k}: ${f(v)}`);
    console.log(`  creating a user (POST /api/v1/credentials, PBKDF2): ${f(result.connect.usersCreatedMsEach)} ms each, 4 at a time`);
  }
  if (result.publish) {
    const rows = [["publish scenario", "published", "delivered", "published/s", "delivered/s", "broker µs/published", "ACL denied (pub/read)", "dropped (QoS 0/queue)"]];
    for (const [name, s] of Object.entries(result.publish.scenarios)) {
      const c = s.brokerCounters ?? s.brokerCountersAllRounds;
      rows.push([name, f(s.published), f(s.delivered), f(s.publishedPerSec), f(s.deliveredPerSec), f(s.brokerCpuUsPerPublished), c ? `${f(c.aclDeniedPublish)}/${f(c.aclDeniedRead)}` : "-", c ? `${f(c.droppedQos0)}/${f(c.droppedQueued)}` : "-"]);
    }
    console.log(`\n${table(rows)}`);
    for (const [name, s] of Object.entries(result.publish.scenarios)) if (s.warning) console.log(`  WARNING ${name}: ${s.warning}`);
    for (const [k, v] of Object.entries(result.publish.ratios)) console.log(`  delivered/s ${k}: ${f(v)}`);
    for (const [k, v] of Object.entries(result.publish.publishedRatios ?? {})) console.log(`  published/s ${k}: ${f(v)}`);
    for (const [k, v] of Object.entries(result.publish.cpuPerPublishedRatios ?? {})) console.log(`  broker CPU per published message ${k}: ${f(v)}`);
  }
}

/** Runs the security benchmark; returns its result object (also what the JSON holds). */
export async function runSecurity() {
  Object.assign(process.env, NO_NETWORK_ENV, { WRANGLER_LOG: process.env.WRANGLER_LOG ?? "warn" });
  const t0 = now();
  const codecPath = await bundleCodec();
  const W = await Promise.all(["A", "B", "C"].map((n) => startWorker(n, codecPath)));
  /** @type {Record<string, any>} */
  const result = {
    date: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    machine: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? "?", node: process.versions.node },
    parameters: { ...P, aclCacheSeconds: ACL_CACHE_SECONDS },
  };
  /** @type {Running[]} */
  const running = [];
  try {
    if (wanted("connect") || wanted("publish")) {
      // All brokers at once (each idle while another is measured): the rule sets' loads take
      // turns within minutes rather than one after the other.
      process.stderr.write(`starting brokers: ALLOW_ANONYMOUS=true with JWT_SECRET${wanted("publish") ? `; ALLOW_ANONYMOUS=false for ${P.ruleCounts.join(", ")} rule(s)` : ""} ...\n`);
      const counts = wanted("publish") ? P.ruleCounts : [];
      const started = await Promise.allSettled([
        start({ ALLOW_ANONYMOUS: "true", JWT_SECRET, JWT_AUDIENCE, JWT_ISSUER }),
        ...counts.map(() => start({ ALLOW_ANONYMOUS: "false" })),
      ]);
      for (const s of started) if (s.status === "fulfilled") running.push(s.value);
      const failed = started.find((s) => s.status === "rejected");
      if (failed) throw /** @type {PromiseRejectedResult} */ (failed).reason;
      const [open, ...closedList] = /** @type {[Running, ...Running[]]} */ (running);
      if (wanted("connect")) result.connect = await connectPart(open, W);
      if (wanted("publish")) result.publish = await publishPart(open, new Map(counts.map((c, k) => [c, /** @type {Running} */ (closedList[k])])), W);
    }
  } finally {
    await Promise.all(running.map((b) => b.stop().catch(() => {})));
    await Promise.all(W.map((w) => w.call("exit").catch(() => {})));
  }
  result.elapsedS = round((now() - t0) / 1000);
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runSecurity().then(
    (result) => {
      console.log(`\nsecurity bench (${result.mode}), ${result.date}, ${result.machine.cores}x ${result.machine.cpuModel}\n`);
      printSecurity(result);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`\nwrote ${relative(process.cwd(), out)} (${result.elapsedS} s)`);
      process.exit(0);
    },
    (e) => {
      console.error(e instanceof Error ? e.stack : e);
      process.exit(1);
    },
  );
}
