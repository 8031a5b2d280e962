// Admission control at the Worker (docs/security.md, "Limits"): the AdmissionDO's bound on
// pending connections, its expiry and release, failed-authentication penalties per address,
// and the upgrade's answers (429 / 503 problem JSON with Retry-After) and headers.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMISSION_MARGIN_MS, type AdmissionDO } from "../../durable-objects/admission";
import { connectTimeoutMsFromEnv } from "../../durable-objects/config";
import { CERT_USER_HEADER } from "../../worker/security/certificates";
import {
  ADMISSION_HEADER,
  addressLimited,
  admissionObjectName,
  admissionShardOf,
  admissionShardsFromEnv,
  recordAuthFailure,
  releaseAdmission,
} from "../../worker/security/admission";
import { CONNECT_RATE_RETRY_AFTER, upgradeHeaders } from "../../worker/routes/mqtt";

const BASE = "http://broker.test";
const T0 = 1_700_000_000_000;
const TTL = connectTimeoutMsFromEnv(env) + ADMISSION_MARGIN_MS;
/** Per shard: MAX_PENDING_CONNECTIONS / ADMISSION_SHARDS of the test configuration (wrangler.toml). */
const CAPACITY = Math.ceil(Number(env.MAX_PENDING_CONNECTIONS) / admissionShardsFromEnv(env));

let unique = 0;
/** A fresh admission object (not one of the Worker's shards). */
function freshObject(): DurableObjectStub<AdmissionDO> {
  return env.ADMISSION.get(env.ADMISSION.idFromName(`admission-test-${unique++}-${crypto.randomUUID()}`));
}

/** The Worker's shard for an address. */
function shardOf(address: string): DurableObjectStub<AdmissionDO> {
  return env.ADMISSION.get(env.ADMISSION.idFromName(admissionObjectName(admissionShardOf(address, admissionShardsFromEnv(env)))));
}

/** A documentation address (RFC 5737) not used by any other test. */
function address(): string {
  return `203.0.113.${(unique++ % 250) + 1}`;
}

function upgrade(headers: Record<string, string> = {}, path = "/mqtt"): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", ...headers } }));
}

async function expectRefusal(res: Response, status: number, type: string): Promise<{ retryAfter: number }> {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  const body = (await res.json()) as { type: string; status: number; retryAfter: number };
  expect(body).toMatchObject({ type: `urn:edge-mqtt:problem:${type}`, status });
  expect(res.headers.get("Retry-After")).toBe(String(body.retryAfter));
  expect(body.retryAfter).toBeGreaterThanOrEqual(1);
  return body;
}

function closeUpgraded(res: Response): void {
  expect(res.status).toBe(101);
  res.webSocket!.accept();
  res.webSocket!.close(1000, "test done");
}

describe("AdmissionDO: pending connections", () => {
  it("admits up to its share of MAX_PENDING_CONNECTIONS, then refuses with the time until the oldest slot expires", async () => {
    await runInDurableObject(freshObject(), (admission: AdmissionDO) => {
      expect(admission.status(T0)).toMatchObject({ pending: 0, capacity: CAPACITY });
      const tokens = new Set<string>();
      for (let i = 0; i < CAPACITY; i++) {
        const r = admission.admit(`198.51.100.${i % 200}`, T0 + i);
        expect(r).toHaveProperty("token");
        tokens.add((r as { token: string }).token);
      }
      expect(tokens.size).toBe(CAPACITY); // every token distinct
      const refused = admission.admit("198.51.100.250", T0 + CAPACITY);
      expect(refused).toEqual({ refused: "pending", retryAfter: Math.ceil((TTL - CAPACITY) / 1000) });
      expect(admission.status(T0 + CAPACITY).pending).toBe(CAPACITY);
    });
  });

  it("a released slot is free again at once; releasing twice or an unknown token changes nothing", async () => {
    await runInDurableObject(freshObject(), (admission: AdmissionDO) => {
      const tokens: string[] = [];
      for (let i = 0; i < CAPACITY; i++) tokens.push((admission.admit("198.51.100.1", T0) as { token: string }).token);
      expect(admission.admit("198.51.100.1", T0 + 1)).toHaveProperty("refused", "pending");
      admission.release(tokens[7]!);
      admission.release(tokens[7]!);
      admission.release("not-a-token");
      expect(admission.status(T0 + 1).pending).toBe(CAPACITY - 1);
      expect(admission.admit("198.51.100.1", T0 + 2)).toHaveProperty("token");
      expect(admission.admit("198.51.100.1", T0 + 3)).toHaveProperty("refused", "pending");
    });
  });

  it("slots nobody releases expire at the CONNECT timeout plus the margin", async () => {
    await runInDurableObject(freshObject(), (admission: AdmissionDO) => {
      for (let i = 0; i < CAPACITY; i++) admission.admit("198.51.100.2", T0);
      expect(admission.admit("198.51.100.2", T0 + TTL - 1)).toEqual({ refused: "pending", retryAfter: 1 });
      expect(admission.status(T0 + TTL - 1).pending).toBe(CAPACITY);
      expect(admission.admit("198.51.100.2", T0 + TTL)).toHaveProperty("token");
      expect(admission.status(T0 + TTL).pending).toBe(1);
    });
  });
});

describe("AdmissionDO: failed-authentication penalties per address", () => {
  it("refuses an address for AUTH_FAIL_DELAY after a failure, doubling per failure up to AUTH_FAIL_DELAY_MAX; other addresses go on", async () => {
    const base = Number(env.AUTH_FAIL_DELAY) * 1000;
    const max = Number(env.AUTH_FAIL_DELAY_MAX) * 1000;
    await runInDurableObject(freshObject(), (admission: AdmissionDO) => {
      const a = "198.51.100.3";
      admission.failed(a, T0);
      expect(admission.admit(a, T0 + 1)).toEqual({ refused: "penalty", retryAfter: Math.ceil((base - 1) / 1000) });
      expect(admission.admit("198.51.100.4", T0 + 1)).toHaveProperty("token");
      expect(admission.admit(a, T0 + base)).toHaveProperty("token");

      admission.failed(a, T0 + base);
      expect(admission.admit(a, T0 + base + 1)).toEqual({ refused: "penalty", retryAfter: Math.ceil((2 * base - 1) / 1000) });
      expect(admission.admit(a, T0 + 3 * base)).toHaveProperty("token");

      let at = T0 + 3 * base;
      for (let i = 0; i < 20; i++) admission.failed(a, (at += 1));
      expect(admission.admit(a, at + 1)).toEqual({ refused: "penalty", retryAfter: Math.ceil((max - 1) / 1000) });
      expect(admission.admit(a, at + max)).toHaveProperty("token");
      expect(admission.status(at + max).penalties).toBe(1);
    });
  });

  it("a penalised address is refused before its slot is counted; a request without an address has no penalty", async () => {
    await runInDurableObject(freshObject(), (admission: AdmissionDO) => {
      admission.failed("198.51.100.5", T0);
      admission.failed("", T0);
      expect(admission.admit("198.51.100.5", T0 + 1)).toHaveProperty("refused", "penalty");
      expect(admission.admit("", T0 + 1)).toHaveProperty("token");
      expect(admission.status(T0 + 1)).toMatchObject({ pending: 1, penalties: 1 });
    });
  });
});

describe("MQTT upgrade: connection limits at the Worker", () => {
  it("the rate limiting binding is there and limits per key (Miniflare enforces it)", async () => {
    expect(env.CONNECT_RATE_LIMITER).toBeDefined();
    const key = `rate-binding-${crypto.randomUUID()}`;
    let allowed = 0;
    // A fixed window: within two windows at most twice the limit passes, whatever the timing.
    for (let i = 0; i < 1000; i++) {
      if (!(await env.CONNECT_RATE_LIMITER!.limit({ key })).success) break;
      allowed++;
    }
    expect(allowed).toBeGreaterThan(0);
    expect(allowed).toBeLessThan(1000);
    // Another key has its own budget.
    expect((await env.CONNECT_RATE_LIMITER!.limit({ key: `${key}-other` })).success).toBe(true);
  });

  it("429 with Retry-After once an address is over the rate; other addresses still upgrade; counted in the metrics", async () => {
    const metrics = env.METRICS.get(env.METRICS.idFromName("metrics"));
    const before = (await metrics.snapshot()).total.upgradesRefused;
    const limited = address();
    let res: Response | undefined;
    // Spend the address's budget through the binding, then upgrade (again if a window began in between).
    for (let attempt = 0; attempt < 3 && res?.status !== 429; attempt++) {
      while ((await env.CONNECT_RATE_LIMITER!.limit({ key: limited })).success);
      res = await upgrade({ "CF-Connecting-IP": limited });
      if (res.status === 101) closeUpgraded(res);
    }
    const body = await expectRefusal(res!, 429, "connection-rate-limited");
    expect(body.retryAfter).toBe(CONNECT_RATE_RETRY_AFTER);
    closeUpgraded(await upgrade({ "CF-Connecting-IP": address() }));
    await expect.poll(async () => (await metrics.snapshot()).total.upgradesRefused - before, { timeout: 5000 }).toBeGreaterThanOrEqual(1);
  });

  it("429 with Retry-After while an address is in a failure penalty (recordAuthFailure), on /mqtt, the fast path and /", async () => {
    const penalised = address();
    await shardOf(penalised).failed(penalised);
    for (const path of ["/mqtt", "/mqtt/penalised-client", "/"]) {
      const body = await expectRefusal(await upgrade({ "CF-Connecting-IP": penalised }, path), 429, "authentication-penalty");
      expect(body.retryAfter).toBeLessThanOrEqual(Number(env.AUTH_FAIL_DELAY));
    }
    closeUpgraded(await upgrade({ "CF-Connecting-IP": address() }));

    // The fire-and-forget export reaches the same shard.
    const other = address();
    recordAuthFailure(env, other);
    await expect.poll(async () => (await upgrade({ "CF-Connecting-IP": other })).status, { timeout: 5000 }).toBe(429);
  });

  it("503 with Retry-After when the address's shard holds its share of pending connections; a release frees a slot", async () => {
    const addr = address();
    const shard = shardOf(addr);
    const taken: string[] = [];
    try {
      for (;;) {
        const r = await shard.admit(`filler-${taken.length}`);
        if (!("token" in r)) break;
        taken.push(r.token);
      }
      expect(taken.length).toBeLessThanOrEqual(CAPACITY);
      const body = await expectRefusal(await upgrade({ "CF-Connecting-IP": addr }), 503, "too-many-pending-connections");
      expect(body.retryAfter).toBeLessThanOrEqual(Math.ceil(TTL / 1000));
      // releaseAdmission takes the Worker's token form: `<shard>.<token>`.
      releaseAdmission(env, `${admissionShardOf(addr, admissionShardsFromEnv(env))}.${taken.pop()!}`);
      await expect.poll(async () => (await shard.status()).pending, { timeout: 5000 }).toBeLessThan(CAPACITY);
      const res = await upgrade({ "CF-Connecting-IP": addr });
      closeUpgraded(res);
    } finally {
      for (const t of taken) await shard.release(t);
    }
  });

  it("per-address limits skip LIMITS_EXEMPT_ADDRESSES (default loopback) and requests without an address", async () => {
    expect(addressLimited(env, "127.0.0.1")).toBe(false);
    expect(addressLimited(env, "::1")).toBe(false);
    expect(addressLimited(env, "")).toBe(false);
    expect(addressLimited(env, "203.0.113.9")).toBe(true);
    expect(addressLimited({ LIMITS_EXEMPT_ADDRESSES: "" }, "127.0.0.1")).toBe(true);
    expect(addressLimited({ LIMITS_EXEMPT_ADDRESSES: " 198.51.100.7 , 2001:DB8::1" }, "2001:db8::1")).toBe(false);
    expect(addressLimited({}, "::1")).toBe(false);

    // Over the rate and after a failure, loopback still upgrades (locally every client is 127.0.0.1).
    while ((await env.CONNECT_RATE_LIMITER!.limit({ key: "127.0.0.1" })).success);
    recordAuthFailure(env, "127.0.0.1");
    await shardOf("127.0.0.1").failed("127.0.0.1");
    closeUpgraded(await upgrade({ "CF-Connecting-IP": "127.0.0.1" }));
  });

  it("releaseAdmission ignores tokens that are empty, malformed or of a shard that does not exist", () => {
    for (const token of ["", ".", "abc", "x.y", "-1.y", `${admissionShardsFromEnv(env)}.y`, "0."]) expect(() => releaseAdmission(env, token)).not.toThrow();
  });
});

describe("MQTT upgrade: headers for the object", () => {
  const cf = (fingerprint: string) => ({ tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certFingerprintSHA256: fingerprint } });

  it("drops the admission and certificate headers a client sent, and sets the Worker's own", () => {
    const forged = new Request(`${BASE}/mqtt`, { headers: { [ADMISSION_HEADER]: "0.forged", [CERT_USER_HEADER]: "admin", "Sec-WebSocket-Protocol": "mqtt" } });
    const none = upgradeHeaders(env, forged, undefined);
    expect(none.get(ADMISSION_HEADER)).toBeNull();
    expect(none.get(CERT_USER_HEADER)).toBeNull();
    expect(none.get("Sec-WebSocket-Protocol")).toBe("mqtt");
    expect(upgradeHeaders(env, forged, "1.token").get(ADMISSION_HEADER)).toBe("1.token");
  });

  it("puts the user CLIENT_CERT_USERS maps a verified client certificate to in the certificate header", () => {
    const fingerprint = "ab".repeat(32);
    const mapped = { ...env, CLIENT_CERT_USERS: JSON.stringify({ [fingerprint]: "sensor-17" }) };
    const request = new Request(`${BASE}/mqtt`, { headers: { [CERT_USER_HEADER]: "admin" }, cf: cf(fingerprint) });
    expect(upgradeHeaders(mapped, request, undefined).get(CERT_USER_HEADER)).toBe("sensor-17");
    const unmapped = new Request(`${BASE}/mqtt`, { headers: { [CERT_USER_HEADER]: "admin" }, cf: cf("cd".repeat(32)) });
    expect(upgradeHeaders(mapped, unmapped, undefined).get(CERT_USER_HEADER)).toBeNull();
  });
});
