import { Hono } from "hono";
import { countInWorker } from "../../durable-objects/metrics";
import { RELAYED_HEADER } from "../../durable-objects/socket";
import { LINK_HEADER } from "../../durable-objects/link";
import { sameSecret } from "../auth";
import type { AppEnv, Env } from "../env";
import { ProblemException, refuse } from "../problem";
import { ADMISSION_HEADER, addressLimited, admit, releaseAdmission, type Admission } from "../security/admission";
import { CERT_USER_HEADER, certificateUser, type CertificateCf } from "../security/certificates";
import { relayMode, relayToSession } from "../relay";

/** WebSocket subprotocols an MQTT client may offer (MQTT 3.1.1/5: "mqtt"; MQTT 3.1: "mqttv3.1"). */
export const MQTT_SUBPROTOCOLS = ["mqtt", "mqttv3.1"] as const;

/**
 * MQTT over WebSocket. The Worker checks the handshake and the connection limits, and picks
 * the Durable Object that will hold the socket; it forwards the request with the admission
 * token and the client certificate's user (if any) in headers, and the object accepts it and
 * echoes the subprotocol.
 *
 * - `/mqtt/<clientId>` or `/mqtt?clientId=<id>`: fast path straight to the
 *   session object keyed by client identifier.
 * - `/mqtt`: the client identifier is only known after CONNECT. By default this Worker
 *   holds the socket, reads the CONNECT and relays to the session object through the fast
 *   path's upgrade (worker/relay.ts); with `MQTT_RELAY = "object"`, a fresh connection object
 *   holds it instead.
 */
export const mqtt = new Hono<AppEnv>().get("/:clientId?", (c) =>
  upgradeToMqtt(c.env, c.req.raw, c.executionCtx, c.req.param("clientId") || c.req.query("clientId") || ""),
);

/** What the upgrade needs of the request's execution context: to keep the metrics report alive. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * Seconds a client refused by the rate per address is told to wait. The binding does not say
 * when its window ends; 10 s is the shorter of the two periods it supports.
 */
export const CONNECT_RATE_RETRY_AFTER = 10;

/**
 * Checks an MQTT WebSocket handshake and the connection limits (docs/security.md, "Limits"),
 * then hands it to the object that will hold the socket (the session object named by
 * `clientIdHint`; when it is empty, the Worker relay or a fresh connection object). Also used
 * for upgrades on `/` (what MQTT.js's command line and Mosquitto users expect).
 *
 * Limits, cheapest first: the rate of upgrades per client address (429), the address's
 * failed-authentication penalty (429) and the bound on connections not yet authenticated
 * (503), both asked of the address's admission shard in one RPC.
 */
export async function upgradeToMqtt(env: Env, request: Request, ctx: WaitUntil, clientIdHint = ""): Promise<Response> {
  requireWebSocketUpgrade(request);
  requireMqttSubprotocol(request);
  // CF-Connecting-IP, or the device's address a trusted TCP bridge forwarded (docs/tcp-bridge.md).
  // Per-address limits skip "" (internal requests) and LIMITS_EXEMPT_ADDRESSES.
  const address = await clientAddress(env, request);
  try {
    if (addressLimited(env, address) && !(await withinRate(env, address))) {
      refuse(429, "connection-rate-limited", `Too many connection attempts from ${address}: try again later.`, { retryAfter: CONNECT_RATE_RETRY_AFTER }, retryAfter(CONNECT_RATE_RETRY_AFTER));
    }
    const admission = await admit(env, address);
    if (admission && "refused" in admission) refuseAdmission(address, admission);
    const token = admission?.token;
    if (clientIdHint === "" && relayMode(env) === "worker") {
      // Plain /mqtt: this Worker holds the socket and relays it to the session of the
      // CONNECT's client identifier, through the fast path's upgrade (worker/relay.ts).
      return relayToSession(
        env,
        request,
        ctx,
        (clientId) => forwardUpgrade(env, request, clientId, token, address, sessionUpgradeUrl(request, clientId)),
        () => {
          if (token !== undefined) releaseAdmission(env, token);
        },
      );
    }
    return await forwardUpgrade(env, request, clientIdHint, token, address);
  } catch (err) {
    if (err instanceof ProblemException && (err.problem.status === 429 || err.problem.status === 503)) countInWorker(env, ctx, "upgradesRefused");
    throw err;
  }
}

/** Whether `address` is within CONNECT_RATE_LIMITER; true when the binding is absent or fails (logged). */
async function withinRate(env: Env, address: string): Promise<boolean> {
  if (!env.CONNECT_RATE_LIMITER) return true;
  try {
    return (await env.CONNECT_RATE_LIMITER.limit({ key: address })).success;
  } catch (e) {
    console.error("connection rate limiter did not answer; upgrade not limited:", e);
    return true;
  }
}

function refuseAdmission(address: string, refused: Extract<Admission, { refused: unknown }>): never {
  const { retryAfter: seconds } = refused;
  if (refused.refused === "penalty") {
    refuse(429, "authentication-penalty", `Authentication failed from ${address} recently: try again in ${seconds} s.`, { retryAfter: seconds }, retryAfter(seconds));
  }
  refuse(503, "too-many-pending-connections", "Too many connections are waiting to authenticate: try again later.", { retryAfter: seconds }, retryAfter(seconds));
}

function retryAfter(seconds: number): HeadersInit {
  return { "Retry-After": String(seconds) };
}

/**
 * Forwards the upgrade to its object with the admission token and the certificate's user,
 * after removing any such header the client sent (only the Worker sets them). The slot is
 * freed here if the object does not take the socket; once it does, the object frees it.
 */
async function forwardUpgrade(env: Env, request: Request, clientIdHint: string, token: string | undefined, address: string, url?: string): Promise<Response> {
  let response: Response;
  try {
    const headers = upgradeHeaders(env, request, token, address);
    // The Worker relay's own upgrade (a URL of its making): the session reports the route as "relay".
    if (url !== undefined) headers.set(RELAYED_HEADER, "worker");
    response = await routeUpgrade(env, clientIdHint).fetch(url === undefined ? new Request(request, { headers }) : new Request(url, { headers }));
  } catch (err) {
    if (token !== undefined) releaseAdmission(env, token);
    throw err;
  }
  if (response.status !== 101 && token !== undefined) releaseAdmission(env, token);
  return response;
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

/** Header: the TCP bridge's shared secret (BRIDGE_SECRET), sent on its upgrades (bridge/). */
export const BRIDGE_SECRET_HEADER = "X-Edge-Mqtt-Bridge-Secret";

/** Header: the address of the TCP client a bridge carries, trusted only with BRIDGE_SECRET_HEADER. */
export const BRIDGE_ADDRESS_HEADER = "X-Edge-Mqtt-Forwarded-For";

/** An IPv4 or IPv6 address as text (what a bridge may forward); anything else is ignored. */
const IP_ADDRESS = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/i;

/**
 * The client's address for the per-address limits and the device's presence: the address a
 * TCP bridge forwarded, when the upgrade carries BRIDGE_SECRET (compared in constant time) and
 * a well-formed address; otherwise CF-Connecting-IP (set by Cloudflare's edge, and locally by
 * Miniflare; absent only on internal requests, e.g. tests through SELF), or "".
 * Behind a bridge every device would otherwise share the bridge's one address, its rate of
 * connections and its failure penalties.
 */
export async function clientAddress(env: Pick<Env, "BRIDGE_SECRET">, request: Request): Promise<string> {
  const edge = request.headers.get("CF-Connecting-IP") ?? "";
  const forwarded = request.headers.get(BRIDGE_ADDRESS_HEADER)?.trim();
  const presented = request.headers.get(BRIDGE_SECRET_HEADER);
  if (!forwarded || presented === null || !env.BRIDGE_SECRET) return edge;
  if (forwarded.length > 45 || !IP_ADDRESS.test(forwarded)) return edge;
  return (await sameSecret(presented, env.BRIDGE_SECRET)) ? forwarded.toLowerCase() : edge;
}

/**
 * The headers an upgrade reaches its object with: the client's, less any ADMISSION_HEADER,
 * CERT_USER_HEADER, bridge, relay or link header it sent, plus the admission token and the user name
 * CLIENT_CERT_USERS maps the verified client certificate (request.cf.tlsClientAuth) to, when
 * there are. CF-Connecting-IP becomes `address` (clientAddress), which the objects record as
 * the device's remote address and charge authentication failures to.
 */
export function upgradeHeaders(env: Env, request: Request, token: string | undefined, address?: string): Headers {
  const headers = new Headers(request.headers);
  headers.delete(ADMISSION_HEADER);
  headers.delete(CERT_USER_HEADER);
  headers.delete(BRIDGE_SECRET_HEADER);
  headers.delete(BRIDGE_ADDRESS_HEADER);
  headers.delete(RELAYED_HEADER);
  headers.delete(LINK_HEADER);
  if (address !== undefined && address !== "") headers.set("CF-Connecting-IP", address);
  if (token !== undefined) headers.set(ADMISSION_HEADER, token);
  const user = certificateUser(request.cf as CertificateCf | undefined, env);
  if (user !== undefined) headers.set(CERT_USER_HEADER, user);
  return headers;
}

/** The fast path's URL for a client identifier (`/mqtt/<clientId>`): the session object reads its hint from it. */
function sessionUpgradeUrl(request: Request, clientId: string): string {
  return new URL(`/mqtt/${encodeURIComponent(clientId)}`, request.url).toString();
}

function routeUpgrade(env: Env, clientIdHint: string): DurableObjectStub {
  if (clientIdHint !== "") return env.SESSIONS.get(env.SESSIONS.idFromName(clientIdHint));
  return env.CONNECTIONS.get(env.CONNECTIONS.newUniqueId());
}
