// Connection limits at the Worker, against a real broker (issue 12, "Limits"; docs/security.md):
// (a) idle sockets that never send CONNECT fill the bound on pending connections (503) but
//     cannot touch connected clients, and are closed at the CONNECT timeout, which frees it;
// (b) an address over the rate of upgrades gets 429 while connected clients carry on;
// (c) after a failed authentication from an address, its next upgrade is refused with 429
//     and Retry-After until the penalty is over; the counters show in GET /metrics.
//
// Locally Miniflare keeps a CF-Connecting-IP header the client sends (Cloudflare's edge sets
// it itself), so each test speaks from its own documentation address (RFC 5737), and the
// production rate limit in wrangler.toml is used as it is.
import type { IncomingMessage } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ConnectPacket } from "../../core/mqtt/packets";
import { ADMIN_AUTH, useBroker } from "./broker";
import { closeAll, connect, RawClient, sleep, topicBase, uid, utf8, type Conn } from "./clients";

/** Small bounds so the tests hit them: one admission shard holding MAX_PENDING slots. */
const MAX_PENDING = 6;
const CONNECT_TIMEOUT_S = 3;
const AUTH_FAIL_DELAY_S = 4;
/** How late a close or a report may come on a loaded machine. */
const SLACK_MS = 4_000;
/** wrangler.toml [[ratelimits]] CONNECT_RATE_LIMITER: simple.limit per 10 s. */
const RATE_LIMIT = 60;

const broker = useBroker({
  vars: {
    MAX_PENDING_CONNECTIONS: String(MAX_PENDING),
    ADMISSION_SHARDS: "1",
    CONNECT_TIMEOUT: String(CONNECT_TIMEOUT_S),
    AUTH_FAIL_DELAY: String(AUTH_FAIL_DELAY_S),
    AUTH_FAIL_DELAY_MAX: "30",
    MAX_PUBLISH_RATE: "0",
  },
});

const USER = { username: uid("limits-user"), password: "correct horse battery staple" };
const opened = new Set<WebSocket>();
/** Upgrades refused here (429 / 503), for the metrics test. */
let refusedSeen = 0;

beforeAll(async () => {
  const res = await fetch(`${broker().httpUrl}/api/v1/credentials`, {
    method: "POST",
    headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
    body: JSON.stringify(USER),
  });
  expect(res.status, await res.clone().text()).toBe(201);
});
afterEach(async () => {
  for (const ws of opened) ws.terminate();
  opened.clear();
  await closeAll();
});
afterAll(() => {
  for (const ws of opened) ws.terminate();
});

type Upgrade =
  | { status: 101; ws: WebSocket }
  | { status: number; retryAfter: string | undefined; problem: { type: string; status: number; retryAfter?: number } };

/** Opens a WebSocket (subprotocol mqtt) from `address`: the open socket, or the refusal's status, Retry-After and problem JSON. */
function upgradeFrom(address: string, path = "/mqtt"): Promise<Upgrade> {
  const ws = new WebSocket(`${broker().httpUrl.replace(/^http/, "ws")}${path}`, "mqtt", { headers: { "CF-Connecting-IP": address } });
  return new Promise((resolve, reject) => {
    ws.on("error", (err) => reject(err));
    ws.once("open", () => {
      opened.add(ws);
      resolve({ status: 101, ws });
    });
    ws.once("unexpected-response", (req, res: IncomingMessage) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        req.destroy();
        const retryAfter = res.headers["retry-after"];
        if (res.statusCode === 429 || res.statusCode === 503) refusedSeen++;
        try {
          resolve({ status: res.statusCode ?? 0, retryAfter, problem: JSON.parse(body) });
        } catch {
          reject(new Error(`upgrade refused with HTTP ${res.statusCode} and a body that is not JSON: ${body}`));
        }
      });
    });
  });
}

function expectRefused(u: Upgrade, status: number, type: string): { retryAfter: number } {
  expect(u.status, JSON.stringify("problem" in u ? u.problem : "upgraded")).toBe(status);
  if (!("problem" in u)) throw new Error("unreachable");
  expect(u.problem).toMatchObject({ type: `urn:edge-mqtt:problem:${type}`, status });
  expect(u.retryAfter).toBe(String(u.problem.retryAfter));
  expect(u.problem.retryAfter).toBeGreaterThanOrEqual(1);
  return { retryAfter: u.problem.retryAfter! };
}

/** An authenticated MQTT.js client (v5, user name and password) speaking from `address`. */
function authenticated(address: string, route: "relay" | "fast" = "relay"): Promise<Conn> {
  return connect(broker().url, { version: 5, route, ...USER, wsOptions: { headers: { "CF-Connecting-IP": address } } });
}

/** Waits until `address` can upgrade again (slots freed by releases or expiry); closes that socket. */
async function untilAdmitted(address: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const u = await upgradeFrom(address);
    if (u.status === 101) {
      (u as { ws: WebSocket }).ws.terminate();
      return;
    }
    if (Date.now() > deadline) throw new Error(`${address} still refused after ${timeoutMs} ms: ${JSON.stringify(u)}`);
    await sleep(250);
  }
}

/** `attempt` until it resolves (every 250 ms); its last error after timeoutMs. */
async function eventually<T>(attempt: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

let exchanges = 0;
/** Publishes n QoS 1 messages from `pub` and waits for `sub` to receive them all, in order. */
async function exchange(pub: Conn, sub: Conn, topic: string, n: number): Promise<void> {
  const tag = `x${exchanges++}`;
  const sent = Array.from({ length: n }, (_, i) => `${tag}-m${i}`);
  for (const payload of sent) await pub.publish(topic, payload, { qos: 1 });
  const got = await sub.inbox.waitFor(n, 5_000, (m) => m.topic === topic && m.payload.toString().startsWith(`${tag}-`));
  expect(got.map((m) => m.payload.toString())).toEqual(sent);
}

describe("(a) connections not yet authenticated", () => {
  it("idle sockets fill the pending bound (503) without touching connected clients, are closed at the CONNECT timeout, and the capacity comes back", async () => {
    // First in the file: no slot is held by an earlier test's sockets.
    const topic = `${topicBase("pending")}/x`;
    const sub = await authenticated("192.0.2.32");
    const pub = await authenticated("192.0.2.33", "fast");
    await sub.subscribe(topic, { qos: 1 });

    // Sockets that never send CONNECT, until the bound refuses one.
    const idle: WebSocket[] = [];
    let refusal: Upgrade | undefined;
    for (let i = 0; i <= MAX_PENDING; i++) {
      const u = await upgradeFrom("192.0.2.66");
      if (u.status !== 101) {
        refusal = u;
        break;
      }
      idle.push((u as { ws: WebSocket }).ws);
    }
    const filledAt = Date.now();
    expect(idle.length).toBe(MAX_PENDING);
    const { retryAfter } = expectRefused(refusal!, 503, "too-many-pending-connections");
    expect(retryAfter).toBeLessThanOrEqual(CONNECT_TIMEOUT_S + 5);

    // Connected clients carry on while the bound is full.
    await exchange(pub, sub, topic, 5);
    // The trade-off: while the bound is full, a new connection is refused whoever it is,
    // authenticated or not (its credentials are only seen after the upgrade), until the idle
    // sockets time out. The rate per address keeps one address from holding many slots for long.
    expectRefused(await upgradeFrom("192.0.2.34"), 503, "too-many-pending-connections");
    await expect(authenticated("192.0.2.34")).rejects.toThrow();

    // The broker closes the idle sockets at the CONNECT timeout...
    const closes = await Promise.all(idle.map((ws) => new Promise<number>((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve(Date.now()) : ws.once("close", () => resolve(Date.now()))))));
    for (const at of closes) expect(at - filledAt).toBeLessThan(CONNECT_TIMEOUT_S * 1000 + SLACK_MS);
    // ...and the capacity comes back: a new authenticated client connects and exchanges messages.
    const late = await eventually(() => authenticated("192.0.2.34"), SLACK_MS);
    await late.subscribe(`${topic}/late`, { qos: 1 });
    await exchange(pub, late, `${topic}/late`, 2);
    await exchange(pub, sub, topic, 2);
  });
});

describe("(b) connection attempts per client address", () => {
  it("an address over the rate gets 429 with Retry-After; a client of that address already connected keeps publishing and receiving", async () => {
    const address = "192.0.2.20";
    const topic = `${topicBase("rate")}/x`;
    const sub = await authenticated(address);
    const pub = await authenticated(address, "fast");
    await sub.subscribe(topic, { qos: 1 });
    await exchange(pub, sub, topic, 3);

    // A fixed window: within two windows at most twice the limit passes, however the attempts fall.
    let refusal: Upgrade | undefined;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 2 * RATE_LIMIT + 1; i++) {
      const u = await upgradeFrom(address);
      statuses.set(u.status, (statuses.get(u.status) ?? 0) + 1);
      if (u.status === 101) (u as { ws: WebSocket }).ws.terminate();
      if (u.status === 429) {
        refusal = u;
        break;
      }
    }
    expect(refusal, `statuses: ${JSON.stringify([...statuses])}`).toBeDefined();
    // Before it: upgrades, or the pending bound (the flood's own sockets, released as they close).
    expect([...statuses.keys()].every((s) => [101, 503, 429].includes(s))).toBe(true);
    expect(expectRefused(refusal!, 429, "connection-rate-limited").retryAfter).toBe(10);

    // The connections already open are not counted: they carry on.
    await exchange(pub, sub, topic, 5);
    expect(sub.closed || pub.closed).toBe(false);
    // Another address is not limited by this one's rate.
    await untilAdmitted("192.0.2.21", (CONNECT_TIMEOUT_S + 5) * 1000 + SLACK_MS);
  });
});

describe("(c) failed authentications per client address", () => {
  it("after a refused CONNECT, the next upgrade from that address gets 429 and Retry-After until the penalty is over; other addresses go on", async () => {
    await untilAdmitted("192.0.2.41", (CONNECT_TIMEOUT_S + 5) * 1000 + SLACK_MS);
    const address = "192.0.2.40";
    const u = await upgradeFrom(address);
    expect(u.status).toBe(101);
    const raw = new RawClient((u as { ws: WebSocket }).ws, 4);
    const guess: ConnectPacket = {
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: uid("guesser"),
      username: "intruder",
      password: utf8("guess"),
    };
    raw.send(guess);
    const connack = await raw.waitForType("connack");
    expect(connack.reasonCode).toBe(4); // 3.1.1: bad user name or password
    const failedAt = Date.now();
    await raw.waitClosed();

    // The failure reaches the address's admission shard asynchronously (fire and forget).
    let refusal: Upgrade | undefined;
    while (!refusal) {
      const next = await upgradeFrom(address);
      if (next.status === 429) refusal = next;
      else if (next.status === 101) (next as { ws: WebSocket }).ws.terminate();
      if (Date.now() - failedAt > AUTH_FAIL_DELAY_S * 1000) break;
      await sleep(50);
    }
    expect(refusal, "no 429 within the penalty").toBeDefined();
    const { retryAfter } = expectRefused(refusal!, 429, "authentication-penalty");
    expect(retryAfter).toBeLessThanOrEqual(AUTH_FAIL_DELAY_S);
    // The fast path is refused alike; another address is not.
    expectRefused(await upgradeFrom(address, `/mqtt/${uid("fast")}`), 429, "authentication-penalty");
    const other = await authenticated("192.0.2.42");
    expect(other.connack?.reasonCode).toBe(0);

    // Once the wait is over, the address connects again.
    await sleep(Math.max(0, failedAt + AUTH_FAIL_DELAY_S * 1000 - Date.now()));
    const back = await eventually(() => authenticated(address), SLACK_MS);
    expect(back.connack?.reasonCode).toBe(0);
  });
});

describe("GET /metrics", () => {
  it("shows the refusals: upgrades refused, authentication failures, CONNECTs refused (JSON and Prometheus)", async () => {
    expect(refusedSeen).toBeGreaterThanOrEqual(4);
    let json: { total: Record<string, number> } | undefined;
    const deadline = Date.now() + SLACK_MS;
    for (;;) {
      json = (await (await fetch(`${broker().httpUrl}/metrics`)).json()) as { total: Record<string, number> };
      if (json.total.upgradesRefused! >= refusedSeen || Date.now() > deadline) break;
      await sleep(250);
    }
    expect(json.total.upgradesRefused).toBeGreaterThanOrEqual(refusedSeen);
    expect(json.total.authFailures).toBeGreaterThanOrEqual(1);
    expect(json.total.connectRefused).toBeGreaterThanOrEqual(1);

    const text = await (await fetch(`${broker().httpUrl}/metrics?format=prometheus`)).text();
    const value = (line: string) => Number(new RegExp(`^${line.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1]);
    expect(value("edge_mqtt_upgrades_refused_total")).toBeGreaterThanOrEqual(json.total.upgradesRefused!);
    expect(value("edge_mqtt_auth_failures_total")).toBeGreaterThanOrEqual(1);
    expect(value("edge_mqtt_connects_refused_total")).toBeGreaterThanOrEqual(1);
    for (const action of ["publish", "subscribe", "read"]) expect(value(`edge_mqtt_acl_denied_total{action="${action}"}`)).toBeGreaterThanOrEqual(0);
    expect(text).toMatch(/^edge_mqtt_object_requests_total\{kind="admission"\} [1-9]/m);
  });
});
