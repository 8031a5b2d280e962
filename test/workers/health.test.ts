import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const BASE = "http://broker.test";

function get(path: string, headers?: HeadersInit): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, { headers }));
}

async function expectProblem(res: Response, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, title: expect.any(String), type: expect.any(String), detail: expect.any(String) });
  return body;
}

describe("GET /health", () => {
  it("answers ok", async () => {
    const res = await get("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });
});

describe("GET /mqtt handshake checks", () => {
  it("426 problem JSON without Upgrade: websocket", async () => {
    const res = await get("/mqtt", { "Sec-WebSocket-Protocol": "mqtt" });
    const body = await expectProblem(res, 426);
    expect(body.title).toBe("Upgrade Required");
    expect(res.headers.get("Upgrade")).toBe("websocket");
  });

  it("426 also on the client-id fast path", async () => {
    await expectProblem(await get("/mqtt/sensor-1"), 426);
  });

  it("400 problem JSON without an MQTT subprotocol", async () => {
    await expectProblem(await get("/mqtt", { Upgrade: "websocket" }), 400);
    await expectProblem(await get("/mqtt", { Upgrade: "websocket", "Sec-WebSocket-Protocol": "chat, superchat" }), 400);
  });

  it.each([
    ["/mqtt", "mqtt"],
    ["/mqtt", "mqttv3.1"],
    ["/mqtt/", "mqtt"],
    ["/mqtt/sensor-1", "mqtt"],
    ["/mqtt?clientId=sensor-1", "chat, mqtt"],
  ])("upgrades %s offering %s and echoes the subprotocol", async (path, offered) => {
    const res = await get(path, { Upgrade: "websocket", "Sec-WebSocket-Protocol": offered });
    expect(res.status).toBe(101);
    expect(res.webSocket).toBeTruthy();
    const chosen = res.headers.get("Sec-WebSocket-Protocol");
    expect(offered.split(",").map((p) => p.trim())).toContain(chosen);
    res.webSocket!.accept();
    res.webSocket!.close(1000, "test done");
  });
});

describe("errors", () => {
  it("404 problem JSON for unknown paths", async () => {
    await expectProblem(await get("/nope"), 404);
  });

  it("404 problem JSON under the /api/v1 mount point", async () => {
    await expectProblem(await get("/api/v1/no-such-resource"), 404);
  });
});
