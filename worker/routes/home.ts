import { Hono } from "hono";
import type { AppEnv } from "../env";
import { DOCS_PATH, OPENAPI_PATH } from "./docs";
import { isWebSocketUpgrade, upgradeToMqtt } from "./mqtt";

/** What `GET /` lists: where everything is. */
export const LINKS = {
  dashboard: "/dashboard/",
  mqtt: "/mqtt",
  health: "/health",
  metrics: "/metrics",
  api_docs: DOCS_PATH,
  openapi: OPENAPI_PATH,
} as const;

const DESCRIPTIONS: Record<keyof typeof LINKS, string> = {
  dashboard: "the dashboard (log in with the admin token)",
  mqtt: "MQTT over WebSocket (subprotocol mqtt); / accepts the same upgrade",
  health: "liveness",
  metrics: "broker counters (JSON or Prometheus text)",
  api_docs: "HTTP API reference (Swagger UI)",
  openapi: "OpenAPI 3.1 document of the HTTP API",
};

function page(): string {
  const items = (Object.keys(LINKS) as (keyof typeof LINKS)[])
    .map((k) => `<li><a href="${LINKS[k]}">${LINKS[k]}</a>: ${DESCRIPTIONS[k]}</li>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Edge MQTT broker</title></head>
<body><h1>Edge MQTT broker</h1>
<p>MQTT 3.1.1 / 5.0 over WebSocket at <code>/mqtt</code> (or <code>/</code>), subprotocol <code>mqtt</code>.</p>
<ul>
${items}
</ul></body></html>
`;
}

/**
 * `/`: an MQTT WebSocket upgrade (subprotocol mqtt / mqttv3.1) is handled exactly as on plain
 * `/mqtt` (MQTT.js's command line and many clients use the path `/` by default; Mosquitto's
 * WebSocket listener accepts any path). A plain GET answers an index: HTML for browsers,
 * JSON otherwise.
 */
export const home = new Hono<AppEnv>().get("/", (c) => {
  if (isWebSocketUpgrade(c.req.raw)) return upgradeToMqtt(c.env, c.req.raw, c.executionCtx);
  if (prefersHtml(c.req.header("Accept"))) return c.html(page());
  return c.json({ name: "edge-mqtt", links: LINKS });
});

/**
 * Whether the client names text/html (browsers do; curl and fetch send only a wildcard) and
 * prefers it at least as much as application/json.
 */
function prefersHtml(accept: string | undefined): boolean {
  if (!accept || !/\btext\/html\b/i.test(accept)) return false;
  const q = (type: string) => {
    let best = -1;
    for (const part of accept.split(",")) {
      const [range = "", ...params] = part.trim().split(";").map((s) => s.trim());
      const matches = range === type || range === `${type.split("/")[0]}/*` || range === "*/*";
      if (!matches) continue;
      const qParam = params.find((p) => p.startsWith("q="));
      const value = qParam ? Number(qParam.slice(2)) : 1;
      // A specific range beats a wildcard; weight it slightly above.
      best = Math.max(best, range === type ? value + 0.001 : value);
    }
    return best;
  };
  const html = q("text/html");
  return html > 0 && html >= q("application/json");
}
