// `/` (index, or an MQTT upgrade) and the reference page's Worker-served parts, inside workerd.
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const BASE = "http://broker.test";

function get(path: string, headers?: HeadersInit): Promise<Response> {
  return exports.default.fetch(new Request(`${BASE}${path}`, { headers }));
}

describe("GET /", () => {
  it("JSON index by default (curl, fetch: */*)", async () => {
    const res = await get("/", { Accept: "*/*" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      name: "edge-mqtt",
      links: { dashboard: "/dashboard/", mqtt: "/mqtt", health: "/health", metrics: "/metrics", api_docs: "/api/v1/docs", openapi: "/api/v1/openapi.json" },
    });
  });

  it("HTML for a browser's Accept", async () => {
    const res = await get("/", { Accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" });
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(await res.text()).toContain('<a href="/api/v1/docs">');
  });

  it("JSON when JSON is preferred over HTML", async () => {
    const res = await get("/", { Accept: "text/html;q=0.5, application/json" });
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  });

  it("an upgrade without the mqtt subprotocol: 400 problem, as on /mqtt", async () => {
    const res = await get("/", { Upgrade: "websocket" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { type: string }).type).toBe("urn:edge-mqtt:problem:mqtt-subprotocol-required");
  });

  it("an MQTT upgrade on / is accepted (101, subprotocol echoed)", async () => {
    const res = await get("/", { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt" });
    expect(res.status).toBe(101);
    expect(res.headers.get("Sec-WebSocket-Protocol")).toBe("mqtt");
    res.webSocket?.accept();
    res.webSocket?.close(1000);
  });
});

describe("GET /api/v1/docs", () => {
  it("the page: same-origin scripts and stylesheet, a CSP that allows nothing else", async () => {
    const res = await get("/api/v1/docs");
    expect(res.status).toBe(200);
    const csp = res.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).toContain('<script src="/api/v1/docs/swagger-ui-bundle.js"></script>');
    expect(html).toContain('<script src="/api/v1/docs/init.js"></script>');
    expect(html).not.toMatch(/<script>(?!<\/script>)/); // no inline script
  });

  it("the start-up script: this origin's document, validator off", async () => {
    const res = await get("/api/v1/docs/init.js");
    expect(res.headers.get("Content-Type")).toMatch(/^text\/javascript/);
    const js = await res.text();
    expect(js).toContain("validatorUrl: null");
    expect(js).not.toMatch(/https?:\/\//);
  });
});
