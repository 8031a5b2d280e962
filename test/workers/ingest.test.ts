/**
 * HTTP ingest in workerd: raw and JSON publishes reach MQTT 5.0 subscribers with their
 * properties, through the same shards and sessions as an MQTT PUBLISH; refusals publish
 * nothing; Idempotency-Key replays the first answer and never publishes twice.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { takePublishToken } from "../../worker/api-keys";
import { ADMIN, api, createKey, postJson, Subscriber, unique } from "./ingest-helpers";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const open: Subscriber[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function subscriber(filter: string, o: { clientId?: string; clean?: boolean; sessionExpiry?: number } = {}): Promise<Subscriber> {
  const s = await Subscriber.connect(o.clientId ?? unique("sub"), o);
  open.push(s);
  await s.subscribe(filter, 2);
  return s;
}

describe("raw body: POST /api/v1/publish/<topic>", () => {
  it("arrives with QoS, properties from query and headers, and the request's Content-Type", async () => {
    const base = unique("raw");
    const sub = await subscriber(`${base}/#`);
    const { auth } = await createKey([`${base}/#`]);
    const res = await api(`/publish/${base}/a%2Fb/c%20d?qos=1&user_property=site:berlin&correlation_data=AAEC&message_expiry_interval=60`, {
      method: "POST",
      headers: {
        ...auth,
        "Content-Type": "application/json",
        "MQTT-Response-Topic": "replies/1",
        "MQTT-User-Property": "unit=%C2%B0C",
        "MQTT-Payload-Format-Indicator": "1",
      },
      body: '{"t":21.5}',
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { id: string }).id).toMatch(/^[0-9a-f]{32}$/);
    const [m] = await sub.received(1);
    expect(m!.topic).toBe(`${base}/a/b/c d`);
    expect(text(m!.payload)).toBe('{"t":21.5}');
    expect(m!.qos).toBe(1);
    expect(m!.properties).toMatchObject({
      contentType: "application/json",
      responseTopic: "replies/1",
      correlationData: new Uint8Array([0, 1, 2]),
      payloadFormatIndicator: 1,
      userProperties: [
        ["site", "berlin"],
        ["unit", "°C"],
      ],
    });
    expect(m!.properties!.messageExpiryInterval).toBeGreaterThan(55);
  });

  it("answers 202 with reason code 16 when nobody subscribes", async () => {
    const res = await api(`/publish/${unique("nobody")}`, { method: "POST", headers: ADMIN, body: "x" });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ reason_code: 16, message: "no_matching_subscribers" });
  });
});

describe("JSON: POST /api/v1/publish and /publish/bulk (EMQX's shape)", () => {
  it("a single message with properties and base64 payload", async () => {
    const base = unique("json");
    const sub = await subscriber(`${base}/#`);
    const res = await postJson("/publish", ADMIN, {
      topic: `${base}/x`,
      payload: Buffer.from([0, 255, 1]).toString("base64"),
      payload_encoding: "base64",
      qos: 2,
      properties: { content_type: "application/octet-stream", correlation_data: "req-7", user_properties: { a: "1" }, response_topic: "r/7" },
    });
    expect(res.status).toBe(200);
    const [m] = await sub.received(1);
    expect([...m!.payload]).toEqual([0, 255, 1]);
    expect(m!.qos).toBe(2);
    expect(m!.properties).toMatchObject({ contentType: "application/octet-stream", correlationData: new TextEncoder().encode("req-7"), userProperties: [["a", "1"]], responseTopic: "r/7" });
  });

  it("bulk: per-item results in order, 202 when one matched nobody", async () => {
    const base = unique("bulk");
    const sub = await subscriber(`${base}/sub/#`);
    const items = [
      { topic: `${base}/sub/1`, payload: "a", qos: 1 },
      { topic: `${base}/other`, payload: "b" },
      { topic: `${base}/sub/2`, payload: "c" },
    ];
    const res = await postJson("/publish/bulk", ADMIN, items);
    expect(res.status).toBe(202);
    const results = (await res.json()) as Array<Record<string, unknown>>;
    expect(results).toHaveLength(3);
    expect(results[0]).toEqual({ id: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(results[1]).toMatchObject({ reason_code: 16, message: "no_matching_subscribers" });
    expect(results[2]).toEqual({ id: expect.any(String) });
    const got = await sub.received(2);
    // Different topics (shards) have no order between them; one topic's messages do (below).
    expect(got.map((m) => text(m.payload)).sort()).toEqual(["a", "c"]);
  });

  it("bulk keeps the order of one topic's messages", async () => {
    const topic = `${unique("order")}/t`;
    const sub = await subscriber(topic);
    const items = Array.from({ length: 50 }, (_, i) => ({ topic, payload: String(i), qos: (i % 3) as 0 | 1 | 2 }));
    expect((await postJson("/publish/bulk", ADMIN, items)).status).toBe(200);
    const got = await sub.received(50);
    expect(got.map((m) => text(m.payload))).toEqual(items.map((i) => i.payload));
  });

  it("a retained publish is seen by a later subscriber", async () => {
    const topic = `${unique("ret")}/state`;
    expect((await postJson("/publish", ADMIN, { topic, payload: "on", retain: true })).status).toBe(202);
    const sub = await subscriber(topic);
    const [m] = await sub.received(1);
    expect(text(m!.payload)).toBe("on");
    expect(m!.retain).toBe(true);
  });

  it("QoS 1 is answered once the offline persistent session stored it: delivered on reconnect", async () => {
    const topic = `${unique("persist")}/q1`;
    const clientId = unique("offline");
    const first = await subscriber(topic, { clientId, clean: true, sessionExpiry: 600 });
    first.close();
    await scheduler.wait(100);
    const res = await postJson("/publish", ADMIN, { topic, payload: "while-away", qos: 1 });
    expect(res.status).toBe(200); // matched the stored session: accepted as a PUBACK means
    const again = await Subscriber.connect(clientId, { clean: false, sessionExpiry: 600 });
    open.push(again);
    const [m] = await again.received(1);
    expect(text(m!.payload)).toBe("while-away");
  });
});

describe("refusals: problem JSON, and nothing published", () => {
  it("400, 401, 403, 413, 415 each with its problem type", async () => {
    const base = unique("refuse");
    const sub = await subscriber(`${base}/#`);
    const { auth } = await createKey([`${base}/ok/#`]);
    const cases: Array<[string, () => Promise<Response>, number, string]> = [
      ["wildcard", () => postJson("/publish", auth, { topic: `${base}/ok/+`, payload: "x" }), 400, "wildcard-in-topic"],
      ["raw wildcard", () => api(`/publish/${base}/ok/%23`, { method: "POST", headers: auth, body: "x" }), 400, "wildcard-in-topic"],
      ["bad qos", () => postJson("/publish", auth, { topic: `${base}/ok/a`, payload: "x", qos: 3 }), 400, "invalid-request"],
      ["raw bad qos", () => api(`/publish/${base}/ok/a?qos=5`, { method: "POST", headers: auth, body: "x" }), 400, "invalid-qos"],
      ["bad base64", () => postJson("/publish", auth, { topic: `${base}/ok/a`, payload: "***", payload_encoding: "base64" }), 400, "invalid-payload-encoding"],
      ["bad JSON", () => api("/publish", { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: "{" }), 400, "invalid-json"],
      ["unknown field", () => postJson("/publish", auth, { topic: `${base}/ok/a`, payload: "x", reatin: true }), 400, "invalid-request"],
      ["no key", () => postJson("/publish", {}, { topic: `${base}/ok/a`, payload: "x" }), 401, "unauthorized"],
      ["unknown key", () => postJson("/publish", { Authorization: "Bearer emk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }, { topic: `${base}/ok/a`, payload: "x" }), 401, "unauthorized"],
      ["out of scope", () => postJson("/publish", auth, { topic: `${base}/other`, payload: "x" }), 403, "out-of-scope"],
      ["$SYS", () => postJson("/publish", ADMIN, { topic: "$SYS/broker/uptime", payload: "x" }), 403, "reserved-topic"],
      ["packet too large", () => api(`/publish/${base}/ok/big`, { method: "POST", headers: auth, body: new Uint8Array(Number(env.MAX_PACKET_SIZE) + 1) }), 413, "payload-too-large"],
      ["body too large", () => api(`/publish/${base}/ok/huge`, { method: "POST", headers: auth, body: new Uint8Array(Number(env.MAX_HTTP_BODY_BYTES) + 1) }), 413, "body-too-large"],
      ["too many items", () => postJson("/publish/bulk", auth, Array.from({ length: Number(env.MAX_BULK_ITEMS) + 1 }, () => ({ topic: `${base}/ok/a`, payload: "x" }))), 413, "too-many-items"],
      ["not JSON", () => api("/publish", { method: "POST", headers: { ...auth, "Content-Type": "text/plain" }, body: "{}" }), 415, "unsupported-media-type"],
    ];
    for (const [label, send, status, problem] of cases) {
      const res = await send();
      expect(res.status, `${label}: ${await res.clone().text()}`).toBe(status);
      expect(res.headers.get("Content-Type"), label).toBe("application/problem+json");
      expect(((await res.json()) as { type: string }).type, label).toBe(`urn:edge-mqtt:problem:${problem}`);
    }
    await sub.quiet(0);
  });

  it("a bulk request with one bad item publishes none of them, and lists every bad item", async () => {
    const base = unique("allornone");
    const sub = await subscriber(`${base}/#`);
    const { auth } = await createKey([`${base}/in/#`]);
    const res = await postJson("/publish/bulk", auth, [
      { topic: `${base}/in/1`, payload: "a", qos: 1 },
      { topic: `${base}/out/2`, payload: "b" },
      { topic: `${base}/in/3`, payload: "c" },
      { topic: `${base}/in/#`, payload: "d" },
    ]);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({
      type: "urn:edge-mqtt:problem:out-of-scope",
      errors: [
        { index: 1, status: 403, problem: "out-of-scope" },
        { index: 3, status: 400, problem: "wildcard-in-topic" },
      ],
    });
    await sub.quiet(0);
  });
});

describe("Idempotency-Key", () => {
  it("a retried bulk batch is published once and gets the first answer again", async () => {
    const base = unique("idem");
    const sub = await subscriber(`${base}/#`);
    const { auth } = await createKey([`${base}/#`]);
    const batch = [1, 2, 3].map((i) => ({ topic: `${base}/${i}`, payload: `m${i}`, qos: 1 }));
    const key = { "Idempotency-Key": unique("k") };
    const first = await postJson("/publish/bulk", auth, batch, key);
    expect(first.status).toBe(200);
    const firstBody = await first.text();
    await sub.received(3);
    const again = await postJson("/publish/bulk", auth, batch, key);
    expect(again.status).toBe(200);
    expect(again.headers.get("Idempotent-Replayed")).toBe("true");
    expect(await again.text()).toBe(firstBody);
    await sub.quiet(3);

    // The same key with another body is refused; nothing published.
    const other = await postJson("/publish/bulk", auth, [{ topic: `${base}/9`, payload: "other" }], key);
    expect(other.status).toBe(422);
    expect(((await other.json()) as { type: string }).type).toBe("urn:edge-mqtt:problem:idempotency-key-reused");
    // Keys are per caller: another key may use the same Idempotency-Key.
    const second = await createKey([`${base}/#`]);
    expect((await postJson("/publish/bulk", second.auth, batch, key)).status).toBe(200);
    await sub.received(6);
  });

  it("concurrent duplicates publish once and all get the same answer", async () => {
    const base = unique("race");
    const sub = await subscriber(`${base}/#`);
    const { auth } = await createKey([`${base}/#`]);
    const key = { "Idempotency-Key": unique("k") };
    const item = { topic: `${base}/x`, payload: "once", qos: 1 };
    const answers = await Promise.all(Array.from({ length: 8 }, () => postJson("/publish", auth, item, key)));
    const bodies = await Promise.all(answers.map((r) => r.text()));
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(new Set(bodies).size).toBe(1);
    expect(answers.filter((r) => r.headers.get("Idempotent-Replayed") === "true")).toHaveLength(7);
    await sub.quiet(1, 500);
  });

  it("a refused request stores nothing: the key can be used once the request is fixed", async () => {
    const base = unique("fix");
    const sub = await subscriber(`${base}/#`);
    const key = { "Idempotency-Key": unique("k") };
    expect((await postJson("/publish", ADMIN, { topic: `${base}/+`, payload: "x" }, key)).status).toBe(400);
    expect((await postJson("/publish", ADMIN, { topic: `${base}/1`, payload: "x" }, key)).status).toBe(200);
    await sub.received(1);
  });
});

describe("rate limit", () => {
  // The real 429 over HTTP is in test/e2e/http-ingest.test.ts (a broker with a small rate);
  // here the per-key bucket itself, on a clock the test controls.
  it("HTTP_PUBLISH_RATE requests per second per key, one second of burst, then Retry-After", () => {
    const small = { ...env, HTTP_PUBLISH_RATE: "2" };
    const t0 = 1_000_000;
    const id = unique("bucket");
    expect(takePublishToken(small, id, t0)).toBeUndefined();
    expect(takePublishToken(small, id, t0)).toBeUndefined();
    expect(takePublishToken(small, id, t0)).toBe(1);
    expect(takePublishToken(small, unique("other"), t0)).toBeUndefined(); // per key
    expect(takePublishToken(small, id, t0 + 500)).toBeUndefined(); // 0.5 s at 2/s: one more
    expect(takePublishToken(small, id, t0 + 500)).toBe(1);
    expect(takePublishToken({ ...env, HTTP_PUBLISH_RATE: "0" }, id, t0)).toBeUndefined(); // 0: off
  });
});

describe("presence over HTTP", () => {
  it("an item naming a device shows it online with transport http", async () => {
    const device = unique("gw");
    expect((await postJson("/publish", ADMIN, { topic: `${unique("p")}/t`, payload: "1", clientid: device })).status).toBe(202);
    let row: { online: number; transport: string } | null = null;
    for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
      row = await env.DB.prepare("SELECT online, transport FROM devices WHERE client_id = ?").bind(device).first();
      if (row) break;
      await scheduler.wait(100);
    }
    expect(row).toMatchObject({ online: 1, transport: "http" });
  });
});

describe("IdempotencyDO", () => {
  const stubFor = () => env.IDEMPOTENCY.get(env.IDEMPOTENCY.idFromName(unique("idem-do")));

  it("a request that died mid-publish is taken over after the bound, under the same token", async () => {
    const stub = stubFor();
    const first = await stub.begin("fp", 60_000, 200);
    expect(first).toMatchObject({ kind: "run", attempt: 1 });
    // A duplicate waits for the first attempt's answer; none comes (it died): after the bound it runs itself.
    const t0 = Date.now();
    const second = await stub.begin("fp", 60_000, 200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(second).toMatchObject({ kind: "run", attempt: 2 });
    if (first.kind !== "run" || second.kind !== "run") throw new Error("unreachable");
    expect(second.token).toBe(first.token); // same message identifiers: QoS 2 copies are dropped
    await stub.finish(1, 200, "late", "application/json", 60_000); // the old attempt's answer is ignored
    await stub.finish(2, 200, '{"id":"x"}', "application/json", 60_000);
    expect(await stub.begin("fp", 60_000, 200)).toEqual({ kind: "replay", status: 200, body: '{"id":"x"}', contentType: "application/json" });
    expect(await stub.begin("other", 60_000, 200)).toEqual({ kind: "mismatch" });
  });

  it("a failed attempt frees the key for a retry (same token); the alarm deletes the record after the TTL", async () => {
    const stub = stubFor();
    const first = await stub.begin("fp", 60_000);
    await stub.release(1);
    const retry = await stub.begin("fp", 60_000);
    expect(retry).toMatchObject({ kind: "run", attempt: 2 });
    if (first.kind !== "run" || retry.kind !== "run") throw new Error("unreachable");
    expect(retry.token).toBe(first.token);
    await stub.finish(2, 202, "{}", "application/json", 1);
    // The alarm is due at once (TTL 1 ms): it may have run already; run it if not.
    await scheduler.wait(50);
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (_o, state) => expect(state.storage.kv.get("record")).toBeUndefined());
    // Past the TTL the key is new again.
    expect(await stub.begin("fp", 60_000)).toMatchObject({ kind: "run", attempt: 1 });
  });
});
