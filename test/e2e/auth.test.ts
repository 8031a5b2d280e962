// Authentication on CONNECT against a real local broker with ALLOW_ANONYMOUS off (issue 12,
// "Authentication"; docs/security.md): credentials made through the admin API, JSON Web Tokens
// signed here with jose (HS256, JWT_SECRET), refusals with the right codes on both routes and
// protocol versions, an existing session untouched by a refused CONNECT, the refusals counted
// in GET /metrics, and the penalty per client identifier delaying the next attempt.
//
// Each connection speaks from its own documentation address (Miniflare keeps the
// CF-Connecting-IP a client sends), so the failed-authentication penalty per address (helper
// D's admission objects, connection-limits.test.ts) does not refuse this file's upgrades.
import { SignJWT, type JWTPayload } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ConnectPacket, ProtocolVersion } from "../../core/mqtt/packets";
import { ADMIN_AUTH, useBroker } from "./broker";
import { closeAll, connect, mqttUrl, RawClient, topicBase, uid, utf8, type ConnectOptions, type Route } from "./clients";

const JWT_SECRET = "e2e-secret-0123456789-0123456789-abcdef";
const AUTH_FAIL_DELAY_S = 2;

const broker = useBroker({
  vars: {
    ALLOW_ANONYMOUS: "false",
    JWT_SECRET,
    JWT_AUDIENCE: "edge-mqtt-e2e",
    AUTH_FAIL_DELAY: String(AUTH_FAIL_DELAY_S),
    AUTH_FAIL_DELAY_MAX: "8",
    MAX_PUBLISH_RATE: "0",
  },
});

const USER = { username: uid("alice"), password: "correct horse battery staple" };
const ROUTES: Route[] = ["relay", "fast"];
const VERSIONS: Array<4 | 5> = [4, 5];

let addressCounter = 0;
/** A fresh client address (RFC 5737 documentation ranges) for each connection. */
function nextAddress(): string {
  const n = addressCounter++;
  return `198.51.${100 + Math.floor(n / 250)}.${(n % 250) + 1}`;
}

/** Refusals this file caused, for the metrics test. */
const refusals = { credentials: 0, all: 0 };

beforeAll(async () => {
  const res = await fetch(`${broker().httpUrl}/api/v1/credentials`, {
    method: "POST",
    headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
    body: JSON.stringify(USER),
  });
  expect(res.status, await res.clone().text()).toBe(201);
  // With ALLOW_ANONYMOUS off, what no rule allows is denied: the user may use every topic.
  const rule = await fetch(`${broker().httpUrl}/api/v1/acl`, {
    method: "POST",
    headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
    body: JSON.stringify({ username: USER.username, topic: "#", action: "all", allow: true }),
  });
  expect(rule.status, await rule.clone().text()).toBe(201);
});
afterEach(() => closeAll());

function client(opts: ConnectOptions) {
  return connect(broker().url, { ...opts, wsOptions: { headers: { "CF-Connecting-IP": nextAddress() } } });
}

/** A raw CONNECT from a fresh address; resolves with the client once the CONNACK is in. */
async function rawAttempt(route: Route, packet: ConnectPacket): Promise<{ raw: RawClient; code: number; at: number }> {
  const ws = new WebSocket(mqttUrl(broker().url, route, packet.clientId), "mqtt", { headers: { "CF-Connecting-IP": nextAddress() } });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
  });
  const raw = new RawClient(ws, packet.protocolVersion);
  raw.send(packet);
  const connack = await raw.waitForType("connack", 20_000);
  return { raw, code: connack.reasonCode, at: Date.now() };
}

/** A refused attempt: the CONNACK code, then the broker closes the socket [MQTT-3.2.2-7]. */
async function refused(route: Route, packet: ConnectPacket, credentials: boolean): Promise<number> {
  const { raw, code } = await rawAttempt(route, packet);
  await raw.waitClosed();
  refusals.all++;
  if (credentials) refusals.credentials++;
  return code;
}

function connectPacket(version: ProtocolVersion, o: Partial<ConnectPacket> = {}): ConnectPacket {
  return { type: "connect", protocolName: "MQTT", protocolVersion: version, clean: true, keepAlive: 0, clientId: uid(`auth${version}`), ...o };
}

function token(payload: JWTPayload, secret = JWT_SECRET): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));
}
const nowS = () => Math.floor(Date.now() / 1000);

describe("user name and password (credentials in D1)", () => {
  for (const route of ROUTES) {
    it(`${route}: the right password connects, publishes and receives (3.1.1 and 5.0)`, async () => {
      const topic = `${topicBase("pw")}/x`;
      const sub = await client({ version: 5, route, ...USER });
      await sub.subscribe(topic, { qos: 1 });
      const pub = await client({ version: 4, route, ...USER });
      await pub.publish(topic, "hello", { qos: 1 });
      const [m] = await sub.inbox.waitFor(1);
      expect(m!.payload.toString()).toBe("hello");
    });

    it(`${route}: a wrong password and an unknown user are refused: 3.1.1 return code 4, 5.0 0x86`, async () => {
      for (const [version, code] of [[4, 4], [5, 0x86]] as const) {
        expect(await refused(route, connectPacket(version, { username: USER.username, password: utf8("wrong") }), true)).toBe(code);
        expect(await refused(route, connectPacket(version, { username: uid("nobody"), password: utf8(USER.password) }), true)).toBe(code);
      }
    });

    it(`${route}: without a user name (ALLOW_ANONYMOUS off): 3.1.1 return code 5, 5.0 0x87`, async () => {
      expect(await refused(route, connectPacket(4), false)).toBe(5);
      expect(await refused(route, connectPacket(5), false)).toBe(0x87);
    });
  }
});

describe("JSON Web Tokens as the password (HS256)", () => {
  it("a valid token connects, on both routes and versions; its `acl` claim restricts publishing (5.0: PUBACK 0x87)", async () => {
    for (const route of ROUTES) {
      for (const version of VERSIONS) {
        const clientId = uid(`jwt${version}`);
        const base = topicBase("jwt");
        const password = await token({ sub: `device-${clientId}`, aud: "edge-mqtt-e2e", client_id: clientId, exp: nowS() + 300, acl: { pub: [`${base}/mine/#`], sub: [`${base}/#`] } });
        const c = await client({ version, route, clientId, username: "ignored", password });
        expect(c.connack?.returnCode ?? c.connack?.reasonCode).toBe(0);
        await c.subscribe(`${base}/#`, { qos: 1 });
        await c.publish(`${base}/mine/a`, "ok", { qos: 1 });
        const [m] = await c.inbox.waitFor(1);
        expect(m!.topic).toBe(`${base}/mine/a`);
        if (version === 5) {
          // MQTT.js rejects a publish whose PUBACK carries an error reason code.
          const error = await c.publish(`${base}/theirs/a`, "no", { qos: 1 }).then(() => undefined, (e: { code?: number }) => e);
          expect(error?.code).toBe(0x87);
        } else {
          await c.publish(`${base}/theirs/a`, "no", { qos: 1 }); // 3.1.1: acknowledged, dropped
        }
        await c.inbox.settle(300);
        expect(c.inbox.messages.map((x) => x.topic)).toEqual([`${base}/mine/a`]);
      }
    }
  });

  it("expired, tampered, wrong-audience and wrongly signed tokens are refused as bad credentials (0x86 / 4)", async () => {
    const valid = await token({ sub: "d1", aud: "edge-mqtt-e2e", exp: nowS() + 300 });
    const [h, , s] = valid.split(".");
    const body = Buffer.from(JSON.stringify({ sub: "root", aud: "edge-mqtt-e2e", exp: nowS() + 300, admin: true })).toString("base64url");
    const bad = {
      expired: await token({ sub: "d1", aud: "edge-mqtt-e2e", exp: nowS() - 3600 }),
      notYet: await token({ sub: "d1", aud: "edge-mqtt-e2e", nbf: nowS() + 3600 }),
      tampered: `${h}.${body}.${s}`,
      audience: await token({ sub: "d1", aud: "someone-else", exp: nowS() + 300 }),
      otherSecret: await token({ sub: "d1", aud: "edge-mqtt-e2e" }, "not-the-secret-not-the-secret-0000"),
    };
    for (const [name, password] of Object.entries(bad)) {
      for (const [version, code] of [[5, 0x86], [4, 4]] as const) {
        const route = version === 5 ? "fast" : "relay";
        expect(await refused(route, connectPacket(version, { username: "x", password: utf8(password) }), true), name).toBe(code);
      }
    }
  });

  it("a token bound to another client identifier is not authorized (0x87 / 5)", async () => {
    const password = await token({ sub: "d2", aud: "edge-mqtt-e2e", client_id: "the-real-device", exp: nowS() + 300 });
    expect(await refused("relay", connectPacket(5, { username: "x", password: utf8(password) }), true)).toBe(0x87);
    expect(await refused("fast", connectPacket(4, { username: "x", password: utf8(password) }), true)).toBe(5);
  });

  it("a Will its client may not publish refuses the CONNECT (0x87)", async () => {
    const base = topicBase("will");
    const password = await token({ sub: "d3", aud: "edge-mqtt-e2e", exp: nowS() + 300, acl: { pub: [`${base}/ok`] } });
    const will = { topic: `${base}/elsewhere`, payload: utf8("bye"), qos: 0 as const, retain: false };
    expect(await refused("relay", connectPacket(5, { username: "x", password: utf8(password), will }), false)).toBe(0x87);
    const ok = await rawAttempt("relay", connectPacket(5, { username: "x", password: utf8(password), will: { ...will, topic: `${base}/ok` } }));
    expect(ok.code).toBe(0);
    ok.raw.close();
  });
});

describe("a refused CONNECT touches nothing of the existing session", () => {
  for (const route of ROUTES) {
    it(`${route}: the live connection carries on, queued messages stay queued, the session is resumed by its owner`, async () => {
      const clientId = uid("owner");
      const topic = `${topicBase("own")}/x`;
      const owner = await client({ version: 5, route, clientId, ...USER, clean: false, properties: { sessionExpiryInterval: 600 } });
      await owner.subscribe(topic, { qos: 1 });
      const pub = await client({ version: 5, route: "relay", ...USER });

      // Same client identifier, wrong password, a Will: refused; nothing taken over.
      const will = { topic, payload: utf8("intruder's will"), qos: 1 as const, retain: false };
      expect(await refused(route, connectPacket(5, { clientId, username: USER.username, password: utf8("guess"), will }), true)).toBe(0x86);
      await pub.publish(topic, "live", { qos: 1 });
      const [live] = await owner.inbox.waitFor(1);
      expect(live!.payload.toString()).toBe("live");
      expect(owner.closed).toBe(false);

      // Offline, one message queued; another refused attempt (3.1.1, clean session) must not end the session.
      await owner.end();
      await pub.publish(topic, "queued", { qos: 1 });
      expect(await refused(route, connectPacket(4, { clientId, clean: true, username: uid("nobody"), password: utf8("x") }), true)).toBe(4);
      const back = await client({ version: 5, route, clientId, ...USER, clean: false, properties: { sessionExpiryInterval: 600 }, connectTimeout: 30_000 });
      expect(back.connack?.sessionPresent).toBe(true);
      const [queued] = await back.inbox.waitFor(1);
      expect(queued!.payload.toString()).toBe("queued");
      await back.inbox.settle(300);
      expect(back.inbox.messages.map((m) => m.payload.toString())).toEqual(["queued"]); // the Will never fired
    });
  }
});

describe("failed attempts slow the next ones of that client identifier", () => {
  it("after a failure, the next CONNECT is not answered before AUTH_FAIL_DELAY has passed", async () => {
    const clientId = uid("penalty");
    const first = await rawAttempt("relay", connectPacket(5, { clientId, username: USER.username, password: utf8("wrong") }));
    expect(first.code).toBe(0x86);
    refusals.all++;
    refusals.credentials++;
    const second = await rawAttempt("relay", connectPacket(5, { clientId, username: USER.username, password: utf8(USER.password) }));
    expect(second.code).toBe(0);
    // Ordering with slack, not a timing target: the second CONNACK comes after the penalty.
    expect(second.at - first.at).toBeGreaterThanOrEqual(AUTH_FAIL_DELAY_S * 1000 - 1000);
    second.raw.close();
    // Success forgot the failures: the next attempt is answered at once (well within the penalty).
    const third = await rawAttempt("fast", connectPacket(5, { clientId, username: USER.username, password: utf8(USER.password) }));
    expect(third.code).toBe(0);
    third.raw.close();
  });
});

describe("GET /metrics", () => {
  it("counts the refusals: authentication failures and refused CONNECTs (JSON and Prometheus)", async () => {
    expect(refusals.credentials).toBeGreaterThan(10);
    let total: Record<string, number> = {};
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      total = ((await (await fetch(`${broker().httpUrl}/metrics`)).json()) as { total: Record<string, number> }).total;
      if ((total.authFailures ?? 0) >= refusals.credentials && (total.connectRefused ?? 0) >= refusals.all) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(total.authFailures).toBe(refusals.credentials);
    expect(total.connectRefused).toBe(refusals.all);
    const text = await (await fetch(`${broker().httpUrl}/metrics?format=prometheus`)).text();
    expect(text).toMatch(new RegExp(`^edge_mqtt_auth_failures_total ${refusals.credentials}$`, "m"));
    expect(text).toMatch(new RegExp(`^edge_mqtt_connects_refused_total ${refusals.all}$`, "m"));
  });
});
