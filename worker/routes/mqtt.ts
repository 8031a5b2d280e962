import { Hono } from "hono";
import type { AppEnv, Env } from "../env";
import { ProblemException } from "../problem";

/** WebSocket subprotocols an MQTT client may offer (MQTT 3.1.1/5: "mqtt"; MQTT 3.1: "mqttv3.1"). */
export const MQTT_SUBPROTOCOLS = ["mqtt", "mqttv3.1"] as const;

/**
 * MQTT over WebSocket. The Worker only checks the handshake and picks the
 * Durable Object that will hold the socket; it forwards the request unchanged
 * and the object accepts it and echoes the subprotocol.
 *
 * - `/mqtt/<clientId>` or `/mqtt?clientId=<id>`: fast path straight to the
 *   session object keyed by client identifier.
 * - `/mqtt`: a fresh connection object; the client identifier is only known
 *   after CONNECT.
 */
export const mqtt = new Hono<AppEnv>().get("/:clientId?", (c) =>
  upgradeToMqtt(c.env, c.req.raw, c.req.param("clientId") || c.req.query("clientId") || ""),
);

/**
 * Checks an MQTT WebSocket handshake and hands it to the object that will hold the socket
 * (the session object named by `clientIdHint`, or a fresh connection object when it is empty).
 * Also used for upgrades on `/` (what MQTT.js's command line and Mosquitto users expect).
 */
export function upgradeToMqtt(env: Env, request: Request, clientIdHint = ""): Promise<Response> {
  requireWebSocketUpgrade(request);
  requireMqttSubprotocol(request);
  return routeUpgrade(env, clientIdHint).fetch(request);
}

/** Whether a request asks for a WebSocket upgrade. */
export function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("Upgrade")?.toLowerCase() === "websocket";
}

function requireWebSocketUpgrade(request: Request): void {
  if (isWebSocketUpgrade(request)) return;
  throw new ProblemException(
    {
      type: "urn:edge-mqtt:problem:websocket-upgrade-required",
      title: "Upgrade Required",
      status: 426,
      detail: "MQTT is served over WebSocket: send `Upgrade: websocket`.",
    },
    { Upgrade: "websocket", Connection: "Upgrade" },
  );
}

function requireMqttSubprotocol(request: Request): void {
  const offered = (request.headers.get("Sec-WebSocket-Protocol") ?? "")
    .split(",")
    .map((p) => p.trim().toLowerCase());
  if (offered.some((p) => (MQTT_SUBPROTOCOLS as readonly string[]).includes(p))) return;
  throw new ProblemException({
    type: "urn:edge-mqtt:problem:mqtt-subprotocol-required",
    title: "MQTT Subprotocol Required",
    status: 400,
    detail: `Offer the WebSocket subprotocol ${MQTT_SUBPROTOCOLS.map((p) => `"${p}"`).join(" or ")} in Sec-WebSocket-Protocol.`,
  });
}

function routeUpgrade(env: Env, clientIdHint: string): DurableObjectStub {
  if (clientIdHint !== "") return env.SESSIONS.get(env.SESSIONS.idFromName(clientIdHint));
  return env.CONNECTIONS.get(env.CONNECTIONS.newUniqueId());
}
