// HTTP ingest against a broker started as `npm start` starts it: curl-style requests
// (fetch) publish, MQTT.js 5.0 subscribers receive. One broker for the whole file.
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN_AUTH, useBroker } from "./broker";
import { closeAll, connect, topicBase, uid } from "./clients";

const RATE = 20;
const broker = useBroker({ vars: { HTTP_PUBLISH_RATE: String(RATE), MAX_BULK_ITEMS: "50", MAX_HTTP_BODY_BYTES: "65536", MAX_PACKET_SIZE: "4096" } });
afterEach(closeAll);

function api(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${broker().httpUrl}/api/v1${path}`, init);
}

async function newKey(scopes: string[], device?: string): Promise<Record<string, string>> {
  const res = await api("/keys", {
    method: "POST",
    headers: { ...ADMIN_AUTH, "Content-Type": "application/json" },
    body: JSON.stringify({ name: uid("key"), scopes, ...(device && { device }) }),
  });
  expect(res.status).toBe(201);
  return { Authorization: `Bearer ${((await res.json()) as { key: string }).key}` };
}

const json = (auth: Record<string, string>, body: unknown, extra: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  headers: { ...auth, "Content-Type": "application/json", ...extra },
  body: JSON.stringify(body),
});

async function subscriber(filter: string, opts: { clientId?: string; clean?: boolean; properties?: Record<string, unknown> } = {}) {
  const conn = await connect(broker().url, { version: 5, ...opts } as never);
  await conn.subscribe(filter, { qos: 2 });
  return conn;
}

describe("HTTP ingest end to end", () => {
  it("raw and JSON publishes arrive with their properties", async () => {
    const base = topicBase("e2e-props");
    const sub = await subscriber(`${base}/#`);
    const auth = await newKey([`${base}/#`]);

    const raw = await api(`/publish/${base}/raw%2Fone?qos=1&retain=false&user_property=site:berlin&message_expiry_interval=120`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "text/plain; charset=utf-8", "MQTT-Response-Topic": `${base}/replies`, "MQTT-Correlation-Data": Buffer.from("c-1").toString("base64"), "MQTT-User-Property": "unit=%C2%B0C" },
      body: "21.5",
    });
    expect(raw.status, await raw.clone().text()).toBe(200);

    const single = await api(
      "/publish",
      json(auth, {
        topic: `${base}/json`,
        payload: Buffer.from("bin\u0000ary").toString("base64"),
        payload_encoding: "base64",
        qos: 2,
        properties: { content_type: "application/x-thing", payload_format_indicator: 0, correlation_data: "c-2", response_topic: `${base}/r2`, user_properties: { k: "v" } },
      }),
    );
    expect(single.status).toBe(200);

    const [m1, m2] = await sub.inbox.waitFor(2);
    const byTopic = new Map([m1!, m2!].map((m) => [m.topic, m]));
    const r = byTopic.get(`${base}/raw/one`)!;
    expect(r.payload.toString()).toBe("21.5");
    expect(r.qos).toBe(1);
    expect(r.properties).toMatchObject({
      contentType: "text/plain; charset=utf-8",
      responseTopic: `${base}/replies`,
      userProperties: { site: "berlin", unit: "°C" },
    });
    expect(Buffer.from(r.properties.correlationData as Buffer).toString()).toBe("c-1");
    expect(r.properties.messageExpiryInterval).toBeGreaterThan(100);
    const j = byTopic.get(`${base}/json`)!;
    expect(j.payload.toString()).toBe("bin\u0000ary");
    expect(j.qos).toBe(2);
    expect(j.properties).toMatchObject({ contentType: "application/x-thing", payloadFormatIndicator: false, responseTopic: `${base}/r2`, userProperties: { k: "v" } });
    expect(Buffer.from(j.properties.correlationData as Buffer).toString()).toBe("c-2");
  });

  it("a bulk batch retried with the same Idempotency-Key reaches the subscriber once; another body is refused", async () => {
    const base = topicBase("e2e-idem");
    const sub = await subscriber(`${base}/#`);
    const auth = await newKey([`${base}/#`]);
    const batch = Array.from({ length: 10 }, (_, i) => ({ topic: `${base}/s${i % 3}`, payload: `m${i}`, qos: 1, clientid: "gw-e2e" }));
    const key = { "Idempotency-Key": uid("batch") };
    const first = await api("/publish/bulk", json(auth, batch, key));
    expect(first.status).toBe(200);
    const body = await first.text();
    expect(JSON.parse(body)).toHaveLength(10);
    await sub.inbox.waitFor(10);
    for (let retry = 0; retry < 3; retry++) {
      const again = await api("/publish/bulk", json(auth, batch, key));
      expect(again.status).toBe(200);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(await again.text()).toBe(body);
    }
    const other = await api("/publish/bulk", json(auth, batch.slice(1), key));
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toBe("application/problem+json");
    await sub.inbox.settle(500);
    expect(sub.inbox.payloads().sort()).toEqual(batch.map((b) => b.payload).sort());
  });

  it("concurrent duplicates publish once", async () => {
    const base = topicBase("e2e-race");
    const sub = await subscriber(`${base}/#`);
    const auth = await newKey([`${base}/#`]);
    const key = { "Idempotency-Key": uid("race") };
    const answers = await Promise.all(Array.from({ length: 6 }, () => api("/publish/bulk", json(auth, [{ topic: `${base}/a`, payload: "1", qos: 1 }, { topic: `${base}/b`, payload: "2", qos: 1 }], key))));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(200));
    expect(new Set(await Promise.all(answers.map((a) => a.text()))).size).toBe(1);
    await sub.inbox.waitFor(2);
    await sub.inbox.settle(600);
    expect(sub.inbox.length).toBe(2);
  });

  it("every refusal has its status, problem JSON, and publishes nothing", async () => {
    const base = topicBase("e2e-refuse");
    const sub = await subscriber(`${base}/#`);
    const auth = await newKey([`${base}/in/#`]);
    const cases: Array<[string, RequestInit & { path: string }, number]> = [
      ["wildcard", { path: "/publish", ...json(auth, { topic: `${base}/in/#`, payload: "x" }) }, 400],
      ["bad qos", { path: `/publish/${base}/in/a?qos=7`, method: "POST", headers: auth, body: "x" }, 400],
      ["bad encoding", { path: "/publish", ...json(auth, { topic: `${base}/in/a`, payload: "%%%", payload_encoding: "base64" }) }, 400],
      ["no key", { path: "/publish", ...json({}, { topic: `${base}/in/a`, payload: "x" }) }, 401],
      ["out of scope", { path: "/publish", ...json(auth, { topic: `${base}/out`, payload: "x" }) }, 403],
      ["bulk with one out of scope", { path: "/publish/bulk", ...json(auth, [{ topic: `${base}/in/a`, payload: "x" }, { topic: `${base}/out`, payload: "y" }]) }, 403],
      ["$SYS", { path: "/publish", ...json(ADMIN_AUTH, { topic: "$SYS/broker/clients/connected", payload: "0" }) }, 403],
      ["payload over MAX_PACKET_SIZE", { path: `/publish/${base}/in/big`, method: "POST", headers: auth, body: "x".repeat(5000) }, 413],
      ["body over MAX_HTTP_BODY_BYTES", { path: `/publish/${base}/in/huge`, method: "POST", headers: auth, body: "x".repeat(70_000) }, 413],
      ["items over MAX_BULK_ITEMS", { path: "/publish/bulk", ...json(auth, Array.from({ length: 51 }, () => ({ topic: `${base}/in/a`, payload: "x" }))) }, 413],
      ["text/plain to the JSON endpoint", { path: "/publish", method: "POST", headers: { ...auth, "Content-Type": "text/plain" }, body: "{}" }, 415],
    ];
    for (const [label, { path, ...init }, status] of cases) {
      const res = await api(path, init);
      expect(res.status, `${label}: ${await res.clone().text()}`).toBe(status);
      expect(res.headers.get("content-type"), label).toBe("application/problem+json");
      const problem = (await res.json()) as { type: string; status: number; detail: string };
      expect(problem.status, label).toBe(status);
      expect(problem.type, label).toMatch(/^urn:edge-mqtt:problem:/);
    }
    await sub.inbox.settle(500);
    expect(sub.inbox.length, sub.inbox.describe()).toBe(0);
  });

  it("429 with Retry-After past HTTP_PUBLISH_RATE", async () => {
    const base = topicBase("e2e-rate");
    const auth = await newKey([`${base}/#`]);
    const answers = await Promise.all(Array.from({ length: RATE * 3 }, () => api(`/publish/${base}/x`, { method: "POST", headers: auth, body: "x" })));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(Number(limited[0]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited[0]!.headers.get("content-type")).toBe("application/problem+json");
    // Another key is not affected.
    const other = await newKey([`${base}/#`]);
    expect((await api(`/publish/${base}/y`, { method: "POST", headers: other, body: "y" })).status).toBe(202);
  });

  it("QoS 1 is answered after the persistent session stored it: delivered on reconnect; 202 when nobody subscribes", async () => {
    const topic = `${topicBase("e2e-q1")}/t`;
    const clientId = uid("persist");
    const first = await subscriber(topic, { clientId, clean: true, properties: { sessionExpiryInterval: 600 } });
    await first.end();
    const auth = await newKey([`${topic}`]);
    const res = await api("/publish", json(auth, { topic, payload: "stored", qos: 1 }));
    expect(res.status).toBe(200);
    const again = await connect(broker().url, { version: 5, clientId, clean: false, properties: { sessionExpiryInterval: 600 } } as never);
    const [m] = await again.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("stored");

    await again.end();
    const nobody = await api(`/publish/${topicBase("nobody")}`, { method: "POST", headers: ADMIN_AUTH, body: "x" });
    expect(nobody.status).toBe(202);
    expect(await nobody.json()).toMatchObject({ reason_code: 16, message: "no_matching_subscribers" });
  });

  it("a retained HTTP publish is seen by a later subscriber", async () => {
    const topic = `${topicBase("e2e-ret")}/state`;
    expect((await api(`/publish/${topic}?retain=true&qos=1`, { method: "POST", headers: ADMIN_AUTH, body: "on" })).status).toBe(202);
    const sub = await subscriber(topic);
    const [m] = await sub.inbox.waitFor(1);
    expect(m!.payload.toString()).toBe("on");
    expect(m!.retain).toBe(true);
  });

  it("a device named by items shows online with transport http", async () => {
    const device = uid("gw");
    const auth = await newKey([`${topicBase("e2e-dev")}/#`, "devices/#"], device);
    expect((await api("/publish", json(auth, { topic: `devices/${device}/t`, payload: "1" }))).status).toBe(202);
    let found: Record<string, unknown> | undefined;
    for (const deadline = Date.now() + 8000; Date.now() < deadline && !found; ) {
      const res = await api(`/devices/${encodeURIComponent(device)}`, { headers: ADMIN_AUTH });
      if (res.status === 200) found = (await res.json()) as Record<string, unknown>;
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(found, "device listed").toBeDefined();
    expect(JSON.stringify(found)).toContain('"transport":"http"');
    expect(JSON.stringify(found)).toContain('"online":true');
  });
});
