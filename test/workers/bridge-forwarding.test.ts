// The TCP bridge's forwarded client address (docs/tcp-bridge.md): trusted only with BRIDGE_SECRET,
// then used for the per-address limits and handed to the objects as CF-Connecting-IP; the bridge
// headers never reach the objects. The e2e side (presence shows the TCP peer) is test/e2e/tcp-bridge.test.ts.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../worker/env";
import { ProblemException } from "../../worker/problem";
import { BRIDGE_ADDRESS_HEADER, BRIDGE_SECRET_HEADER, clientAddress, upgradeHeaders, upgradeToMqtt } from "../../worker/routes/mqtt";

const BASE = "http://broker.test";
const SECRET = "bridge-secret-0123456789abcdef";
const withSecret: Env = { ...env, BRIDGE_SECRET: SECRET };
const ctx = { waitUntil: (_: Promise<unknown>) => undefined };

let unique = 0;
/** A documentation address (RFC 5737) of its own per call. */
function address(): string {
  return `198.51.100.${(unique++ % 250) + 1}`;
}

function upgradeRequest(headers: Record<string, string>): Request {
  return new Request(`${BASE}/mqtt`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt", ...headers } });
}

function bridged(edge: string, device: string, secret = SECRET): Request {
  return upgradeRequest({ "CF-Connecting-IP": edge, [BRIDGE_SECRET_HEADER]: secret, [BRIDGE_ADDRESS_HEADER]: device });
}

/** Uses up CONNECT_RATE_LIMITER's allowance of `key`. */
async function exhaustRate(key: string): Promise<void> {
  while ((await env.CONNECT_RATE_LIMITER!.limit({ key })).success);
}

async function statusOf(promise: Promise<Response>): Promise<number> {
  try {
    const res = await promise;
    if (res.status === 101) {
      res.webSocket!.accept();
      res.webSocket!.close(1000, "test done");
    }
    return res.status;
  } catch (err) {
    if (err instanceof ProblemException) return err.problem.status;
    throw err;
  }
}

describe("clientAddress", () => {
  it("takes the forwarded address when the upgrade presents BRIDGE_SECRET", async () => {
    expect(await clientAddress(withSecret, bridged("192.0.2.1", "203.0.113.7"))).toBe("203.0.113.7");
    expect(await clientAddress(withSecret, bridged("192.0.2.1", "2001:DB8::7"))).toBe("2001:db8::7");
  });

  it("keeps CF-Connecting-IP when the secret is wrong, missing, or not configured", async () => {
    expect(await clientAddress(withSecret, bridged("192.0.2.1", "203.0.113.7", "wrong"))).toBe("192.0.2.1");
    expect(await clientAddress(withSecret, bridged("192.0.2.1", "203.0.113.7", SECRET.slice(0, -1)))).toBe("192.0.2.1");
    expect(await clientAddress(withSecret, upgradeRequest({ "CF-Connecting-IP": "192.0.2.1", [BRIDGE_ADDRESS_HEADER]: "203.0.113.7" }))).toBe("192.0.2.1");
    expect(await clientAddress({ ...env, BRIDGE_SECRET: "" }, bridged("192.0.2.1", "203.0.113.7", ""))).toBe("192.0.2.1");
    expect(await clientAddress({ ...env, BRIDGE_SECRET: undefined }, bridged("192.0.2.1", "203.0.113.7"))).toBe("192.0.2.1");
    expect(await clientAddress(withSecret, upgradeRequest({}))).toBe("");
  });

  it("ignores a forwarded value that is not an IP address", async () => {
    for (const bad of ["", "evil.example", "1.2.3.4, 5.6.7.8", "<script>", "1".repeat(46)]) {
      expect(await clientAddress(withSecret, bridged("192.0.2.1", bad))).toBe("192.0.2.1");
    }
  });
});

describe("upgradeHeaders", () => {
  it("strips the bridge headers and hands the objects the chosen address as CF-Connecting-IP", () => {
    const headers = upgradeHeaders(withSecret, bridged("192.0.2.1", "203.0.113.7"), undefined, "203.0.113.7");
    expect(headers.get(BRIDGE_SECRET_HEADER)).toBeNull();
    expect(headers.get(BRIDGE_ADDRESS_HEADER)).toBeNull();
    expect(headers.get("CF-Connecting-IP")).toBe("203.0.113.7");
    // An untrusted forward: the secret is still never passed on.
    const untrusted = upgradeHeaders(withSecret, bridged("192.0.2.1", "203.0.113.7", "wrong"), undefined, "192.0.2.1");
    expect(untrusted.get(BRIDGE_SECRET_HEADER)).toBeNull();
    expect(untrusted.get("CF-Connecting-IP")).toBe("192.0.2.1");
  });
});

describe("per-address limits behind a bridge", () => {
  it("the rate of upgrades is counted per forwarded device, not per bridge", async () => {
    const bridge = address();
    const busyDevice = address();
    await exhaustRate(busyDevice);
    expect(await statusOf(upgradeToMqtt(withSecret, bridged(bridge, busyDevice), ctx))).toBe(429);
    // Another device behind the same bridge is not held back by its neighbour.
    expect(await statusOf(upgradeToMqtt(withSecret, bridged(bridge, address()), ctx))).toBe(101);
  });

  it("a wrong secret cannot claim another address to dodge the bridge's own limit", async () => {
    const bridge = address();
    await exhaustRate(bridge);
    expect(await statusOf(upgradeToMqtt(withSecret, bridged(bridge, address(), "wrong"), ctx))).toBe(429);
    expect(await statusOf(upgradeToMqtt(env, bridged(bridge, address()), ctx))).toBe(429);
  });
});
