import { countInWorker } from "../../../durable-objects/metrics";
import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import {
  RAW_HEADERS,
  checkBatch,
  draftMessage,
  jsonItemDraft,
  rawDraft,
  type Draft,
  type IngestPolicy,
  type IngestRefusal,
  type ItemRefusal,
  type JsonItem,
} from "../../../core/ingest";
import { limitsFromEnv, numberVar } from "../../../durable-objects/config";
import type { BeginResult } from "../../../durable-objects/idempotency";
import { presenceStub } from "../../../durable-objects/presence";
import { Router } from "../../../durable-objects/router";
import { takePublishToken, verifyApiKey, type Publisher } from "../../api-keys";
import { BEARER_CHALLENGE, bearerToken, isAdmin } from "../../auth";
import type { AppEnv, Env } from "../../env";
import { refuse } from "../../problem";
import { aclCache } from "../../security/acl-cache";
import { problemResponse } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/publish: HTTP ingest for gateways that cannot hold an MQTT connection. Every
 * message takes the path of an MQTT PUBLISH (the topic's TopicShard, then each subscriber's
 * session) and the answer is 2xx only once it has been accepted as a PUBACK would mean it.
 * Design, bounds and choices: docs/ingest.md.
 */
export const publish = apiRouter();

declare module "hono" {
  interface ContextVariableMap {
    publisher: Publisher;
    ingestBody: Uint8Array;
  }
}

const NO_MATCHING_SUBSCRIBERS = 0x10; // 5.0 PUBACK reason code 16, as EMQX answers
const IMPLEMENTATION_SPECIFIC_ERROR = 0x83;

// ------------------------------------------------------------------ schemas

const PublishProperties = z
  .strictObject({
    payload_format_indicator: z.union([z.literal(0), z.literal(1)]).optional().openapi({ description: "1: the payload is UTF-8 text (checked)." }),
    message_expiry_interval: z.number().int().min(0).max(0xffffffff).optional().openapi({ description: "Seconds; the message is dropped for subscribers that have not received it by then." }),
    content_type: z.string().optional().openapi({ example: "application/json" }),
    response_topic: z.string().optional().openapi({ example: "replies/gw-1" }),
    correlation_data: z.string().optional().openapi({ description: "Plain text: its UTF-8 bytes are the Correlation Data (as EMQX)." }),
    user_properties: z.record(z.string(), z.string()).optional().openapi({ example: { site: "berlin" } }),
  })
  .openapi("PublishProperties", { description: "MQTT 5 PUBLISH properties." });

const PublishMessage = z
  .strictObject({
    topic: z.string().min(1).openapi({ example: "devices/gw-1/temperature" }),
    payload: z.string().openapi({ example: "21.5" }),
    payload_encoding: z.enum(["plain", "base64"]).optional().openapi({ description: "plain (default): the string's UTF-8 bytes; base64: the decoded bytes." }),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional().openapi({ description: "0 (default), 1 or 2." }),
    retain: z.boolean().optional(),
    clientid: z.string().min(1).optional().openapi({ description: "The device the message comes from (EMQX's name); it shows in presence with transport http." }),
    device: z.string().min(1).optional().openapi({ description: "Same as clientid." }),
    properties: PublishProperties.optional(),
  })
  .openapi("PublishMessage");

const PublishOk = z.object({ id: z.string().openapi({ example: "3f2a9c0e1b4d5a6f7e8d9c0b00000000" }) }).openapi("PublishOk");
const PublishNoMatch = z
  .object({
    id: z.string(),
    reason_code: z.literal(NO_MATCHING_SUBSCRIBERS),
    message: z.literal("no_matching_subscribers"),
  })
  .openapi("PublishNoMatch", { description: "Accepted (and retained if asked), but no session subscribes to the topic." });
const PublishResult = z.union([PublishOk, PublishNoMatch]).openapi("PublishResult");

const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({ description: `Retries with the same key within IDEMPOTENCY_TTL get the first answer again and publish nothing.`, example: "batch-2026-12-03T21:50:00Z" }),
});

const publishProblems = {
  400: problemResponse("Bad topic, wildcard in the topic, bad encoding, bad QoS, bad JSON, unknown field."),
  401: problemResponse("No API key or admin token, or an unknown or revoked one."),
  403: problemResponse("Out of the key's scopes, a $ topic, a device the key does not belong to, or denied by the ACL rules (acl-denied: a key is user name `key:<key id>`)."),
  413: problemResponse("Body over MAX_HTTP_BODY_BYTES, more than MAX_BULK_ITEMS items, or a message over MAX_PACKET_SIZE."),
  415: problemResponse("Content-Type is not application/json (JSON endpoints)."),
  422: problemResponse("The Idempotency-Key was used with another request."),
  429: problemResponse("Over HTTP_PUBLISH_RATE requests per second for this key; see Retry-After."),
  503: problemResponse("A subscriber's session did not accept a QoS 1/2 message (`results` says which)."),
} as const;

// ------------------------------------------------------------------ middleware

/** `Authorization: Bearer <API key | admin token>`. */
const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearerToken(c.req.raw);
  if (!token) refuse(401, "unauthorized", "Send an API key (or the admin token) as `Authorization: Bearer <key>`.", {}, BEARER_CHALLENGE);
  let publisher: Publisher | undefined;
  if (await isAdmin(c.req.raw, c.env)) publisher = { id: "admin", origin: "http:admin" };
  else publisher = await verifyApiKey(c.env, token, (p) => c.executionCtx.waitUntil(p));
  if (!publisher) refuse(401, "unauthorized", "Unknown or revoked API key.", {}, BEARER_CHALLENGE);
  // Per key, before the body is read: a flood costs as little as possible.
  const retryAfter = takePublishToken(c.env, publisher.id);
  if (retryAfter !== undefined) {
    refuse(429, "rate-limited", `More than ${numberVar(c.env, "HTTP_PUBLISH_RATE", 100)} publish requests per second with this key (HTTP_PUBLISH_RATE).`, { retry_after: retryAfter }, { "Retry-After": String(retryAfter) });
  }
  c.set("publisher", publisher);
  await next();
};

/** Reads the body, refusing it past MAX_HTTP_BODY_BYTES: Content-Length first, then counting while reading. */
async function readBody(c: Context<AppEnv>): Promise<Uint8Array> {
  const max = numberVar(c.env, "MAX_HTTP_BODY_BYTES", 4 * 1024 * 1024);
  const tooLarge = (): never => refuse(413, "body-too-large", `The request body is over ${max} bytes (MAX_HTTP_BODY_BYTES).`, { limit: max });
  const declared = c.req.header("Content-Length");
  if (declared !== undefined && Number(declared) > max) tooLarge();
  const body = c.req.raw.body;
  if (!body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let o = 0;
  for (const ch of chunks) {
    out.set(ch, o);
    o += ch.byteLength;
  }
  return out;
}

/** JSON endpoints: Content-Type, body size, well-formed JSON (then the route's zod schema). */
function jsonBody(kind: "single" | "bulk"): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const type = (c.req.header("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") {
      refuse(415, "unsupported-media-type", `Send JSON with Content-Type: application/json${type ? `, not ${type}` : ""}. For a raw payload, POST it to /api/v1/publish/<topic>.`);
    }
    const bytes = await readBody(c);
    let text: string;
    let value: unknown;
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
      value = JSON.parse(text);
    } catch (e) {
      refuse(400, "invalid-json", `The body is not JSON: ${e instanceof Error ? e.message : String(e)}.`);
    }
    if (kind === "bulk" && Array.isArray(value)) {
      const max = numberVar(c.env, "MAX_BULK_ITEMS", 1000);
      if (value.length > max) refuse(413, "too-many-items", `${value.length} items; at most ${max} per request (MAX_BULK_ITEMS).`, { limit: max });
      if (value.length === 0) refuse(400, "empty-batch", "The batch has no items.");
    }
    c.set("ingestBody", bytes);
    // Hand the text to the zod validator that runs next, so the body is not read twice.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    await next();
  };
}

// ------------------------------------------------------------------ publishing

interface Answer {
  status: number;
  body: unknown;
  contentType: string;
}

type ItemResult = z.infer<typeof PublishResult> | { id: string; reason_code: number; message: string };

/**
 * What a caller may publish: the broker's limits; for an API key its scopes, its device, and
 * the ACL rules as for an MQTT client (user name `key:<key id>`; its scopes act as a token's
 * `acl` claim: core/ingest/acl.ts), from the isolate's snapshot (fresh within
 * ACL_CACHE_SECONDS). The admin token is the operator, who writes the rules: not held to them
 * (`$` topics stay refused for everyone).
 */
async function policyOf(env: Env, publisher: Publisher): Promise<IngestPolicy> {
  const limits = limitsFromEnv(env);
  const scopes = publisher.scopes;
  return {
    limits: { maxPacketSize: limits.maximumPacketSize, maxTopicLength: limits.maxTopicLength, maxTopicLevels: limits.maxTopicLevels },
    ...(publisher.device !== undefined && { keyDevice: publisher.device }),
    // Only a key has scopes; the admin token has none.
    ...(scopes && { scopes, acl: { authorizer: await aclCache(env).load(), keyId: publisher.id, scopes } }),
  };
}

/** Parses and checks every item first: one refused item refuses the request, and nothing is published. */
async function checkedDrafts(c: Context<AppEnv>, parsed: Array<{ ok: true; value: Draft } | { ok: false; refusal: IngestRefusal }>): Promise<Draft[]> {
  const publisher = c.get("publisher");
  const refusals: ItemRefusal[] = [];
  const drafts: Draft[] = [];
  parsed.forEach((p, index) => {
    if (!p.ok) refusals.push({ index, ...p.refusal });
    else {
      // A key issued to a device speaks for that device when the item names none.
      if (p.value.device === undefined && publisher.device !== undefined) p.value.device = publisher.device;
      drafts.push(p.value);
    }
  });
  if (refusals.length === 0) refusals.push(...checkBatch(drafts, await policyOf(c.env, publisher)));
  if (refusals.length > 0) {
    const first = refusals[0]!;
    const many = parsed.length > 1;
    refuse(first.status, first.problem, many ? `Item ${first.index}: ${first.detail} Nothing was published.` : first.detail, {
      ...(many && { errors: refusals.map((r) => ({ index: r.index, status: r.status, problem: r.problem, detail: r.detail })) }),
    });
  }
  return drafts;
}

/** Routes the drafts as MQTT PUBLISHes and tells presence about the devices they name. */
async function route(c: Context<AppEnv>, drafts: Draft[], token: string): Promise<ItemResult[]> {
  const publisher = c.get("publisher");
  const router = new Router(c.env);
  const now = Date.now();
  const ids = drafts.map((_, i) => token + i.toString(16).padStart(8, "0"));
  // Pushed in order: one call per shard carries that shard's items, in order (per-topic order kept).
  const settled = await Promise.allSettled(drafts.map((d, i) => router.publish(draftMessage(d, { now, origin: publisher.origin, id: ids[i]! }))));
  const seen: Array<{ clientId: string; at: number; remoteAddress?: string }> = [];
  const remoteAddress = c.req.header("CF-Connecting-IP");
  const results = settled.map((s, i): ItemResult => {
    const id = ids[i]!;
    if (s.status === "rejected") {
      console.error("HTTP ingest: routing failed", s.reason);
      return { id, reason_code: IMPLEMENTATION_SPECIFIC_ERROR, message: "failed_to_dispatch" };
    }
    const device = drafts[i]!.device;
    if (device !== undefined && !seen.some((d) => d.clientId === device)) seen.push({ clientId: device, at: now, ...(remoteAddress && { remoteAddress }) });
    return s.value > 0 ? { id } : { id, reason_code: NO_MATCHING_SUBSCRIBERS, message: "no_matching_subscribers" };
  });
  if (seen.length > 0) c.executionCtx.waitUntil(reportSeen(c.env, seen));
  // Counted as MQTT publishes are: messages received by the broker (GET /metrics, $SYS).
  const routed = settled.filter((s) => s.status === "fulfilled").length;
  if (routed > 0) countInWorker(c.env, c.executionCtx, "published", routed);
  return results;
}

/**
 * Devices named by accepted items are seen over HTTP: one `httpSeen` call per presence shard
 * (the PresenceDO stores the events on receipt and batches its D1 writes), off the answer's path.
 */
async function reportSeen(env: Env, seen: Array<{ clientId: string; at: number; remoteAddress?: string }>): Promise<void> {
  const perShard = new Map<string, { stub: ReturnType<typeof presenceStub>; events: typeof seen }>();
  for (const event of seen) {
    const stub = presenceStub(env, event.clientId);
    const key = stub.id.toString();
    const group = perShard.get(key) ?? { stub, events: [] };
    group.events.push(event);
    perShard.set(key, group);
  }
  const results = await Promise.allSettled([...perShard.values()].map((g) => g.stub.httpSeen(g.events)));
  for (const r of results) if (r.status === "rejected") console.error("HTTP ingest: presence report failed", r.reason);
}

function failed(results: ItemResult[]): boolean {
  return results.some((r) => "reason_code" in r && r.reason_code === IMPLEMENTATION_SPECIFIC_ERROR);
}

/** EMQX's statuses: 200 all matched; 202 some matched no subscriber; 503 some not accepted. */
function singleAnswer(results: ItemResult[]): Answer {
  const r = results[0]!;
  if (failed(results)) return problemAnswer(503, "A subscriber's session did not accept the message; retry (with the same Idempotency-Key).", { results });
  return { status: "reason_code" in r ? 202 : 200, body: r, contentType: "application/json" };
}

function bulkAnswer(results: ItemResult[]): Answer {
  if (failed(results)) {
    return problemAnswer(503, "Some messages were not accepted by a subscriber's session (see results); retry (with the same Idempotency-Key).", { results });
  }
  return { status: results.some((r) => "reason_code" in r) ? 202 : 200, body: results, contentType: "application/json" };
}

function problemAnswer(status: number, detail: string, extra: Record<string, unknown>): Answer {
  return {
    status,
    body: { type: "urn:edge-mqtt:problem:publish-failed", title: "Service Unavailable", status, detail, ...extra },
    contentType: "application/problem+json",
  };
}

function respond(answer: { status: number; body: string; contentType: string }, replayed: boolean): Response {
  const headers = new Headers({ "Content-Type": answer.contentType });
  if (replayed) headers.set("Idempotent-Replayed", "true");
  return new Response(answer.body, { status: answer.status, headers });
}

/** SHA-256 of everything that makes a publish request what it is. */
async function fingerprint(c: Context<AppEnv>, body: Uint8Array): Promise<string> {
  const url = new URL(c.req.url);
  const headers = ["content-type", ...Object.values(RAW_HEADERS).map((h) => h.toLowerCase())].map((h) => `${h}:${c.req.header(h) ?? ""}`);
  const head = new TextEncoder().encode(`${c.req.method}\n${url.pathname}\n${url.search}\n${headers.join("\n")}\n`);
  const all = new Uint8Array(head.byteLength + body.byteLength);
  all.set(head);
  all.set(body, head.byteLength);
  const digest = await crypto.subtle.digest("SHA-256", all);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomToken(): string {
  return crypto.randomUUID().replace(/-/g, "").slice(0, 24);
}

/**
 * Runs `publishAll` at most once per (caller, Idempotency-Key) within IDEMPOTENCY_TTL: the
 * IdempotencyDO of the key decides, stores the 2xx answer and replays it. Without the header
 * the request simply runs.
 */
async function idempotent(c: Context<AppEnv>, publishAll: (token: string) => Promise<Answer>): Promise<Response> {
  const key = c.req.header("Idempotency-Key");
  const serialise = (a: Answer) => ({ status: a.status, body: JSON.stringify(a.body), contentType: a.contentType });
  if (key === undefined) return respond(serialise(await publishAll(randomToken())), false);
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) refuse(400, "invalid-idempotency-key", "Idempotency-Key must be 1 to 255 visible ASCII characters.");
  const ttl = numberVar(c.env, "IDEMPOTENCY_TTL", 86400) * 1000;
  const publisher = c.get("publisher");
  const stub = c.env.IDEMPOTENCY.get(c.env.IDEMPOTENCY.idFromName(`${publisher.id}:${key}`));
  const begun = (await stub.begin(await fingerprint(c, c.get("ingestBody")), ttl)) as BeginResult;
  if (begun.kind === "mismatch") {
    refuse(422, "idempotency-key-reused", "This Idempotency-Key was used with a different request (method, path, query, MQTT headers or body). Use a new key for a new request.");
  }
  if (begun.kind === "replay") return respond(begun, true);
  let answer: ReturnType<typeof serialise>;
  try {
    answer = serialise(await publishAll(begun.token));
  } catch (e) {
    await stub.release(begun.attempt).catch(() => undefined);
    throw e;
  }
  try {
    // Only an answer that means "accepted" is kept; a failed attempt frees the key for the retry.
    if (answer.status < 300) await stub.finish(begun.attempt, answer.status, answer.body, answer.contentType, ttl);
    else await stub.release(begun.attempt);
  } catch (e) {
    console.error("HTTP ingest: storing the idempotent answer failed", e);
  }
  return respond(answer, false);
}

// ------------------------------------------------------------------ routes

const single = createRoute({
  method: "post",
  path: "/",
  tags: ["Publish"],
  summary: "Publish one message (EMQX's shape)",
  middleware: [authenticate, jsonBody("single")] as const,
  request: {
    headers: IdempotencyHeader,
    body: { required: true, content: { "application/json": { schema: PublishMessage } } },
  },
  responses: {
    200: { description: "Accepted by every matching session (as a PUBACK would mean).", content: { "application/json": { schema: PublishOk } } },
    202: { description: "Accepted, but no session subscribes (reason code 16).", content: { "application/json": { schema: PublishNoMatch } } },
    ...publishProblems,
  },
});

const bulk = createRoute({
  method: "post",
  path: "/bulk",
  tags: ["Publish"],
  summary: "Publish a batch of messages (EMQX's shape); all or none are accepted for publishing",
  middleware: [authenticate, jsonBody("bulk")] as const,
  request: {
    headers: IdempotencyHeader,
    body: { required: true, content: { "application/json": { schema: z.array(PublishMessage).openapi("PublishBatch") } } },
  },
  responses: {
    200: { description: "Every message accepted and matched; one result per item, in order.", content: { "application/json": { schema: z.array(PublishResult) } } },
    202: { description: "Every message accepted; some matched no subscriber (reason code 16).", content: { "application/json": { schema: z.array(PublishResult) } } },
    ...publishProblems,
  },
});

const RawQuery = z.object({
  qos: z.enum(["0", "1", "2"]).optional(),
  retain: z.enum(["true", "false", "1", "0"]).optional(),
  message_expiry_interval: z.string().optional().openapi({ description: "Seconds (or header MQTT-Message-Expiry-Interval)." }),
  content_type: z.string().optional().openapi({ description: "Overrides the request's Content-Type (or header MQTT-Content-Type)." }),
  response_topic: z.string().optional().openapi({ description: "Or header MQTT-Response-Topic." }),
  correlation_data: z.string().optional().openapi({ description: "Base64 (standard or URL-safe); or header MQTT-Correlation-Data." }),
  payload_format_indicator: z.enum(["0", "1"]).optional().openapi({ description: "Or header MQTT-Payload-Format-Indicator." }),
  user_property: z.array(z.string()).optional().openapi({ description: "name:value, repeatable; or headers MQTT-User-Property: name=value (percent-encoded)." }),
  device: z.string().optional().openapi({ description: "The device the message comes from (also: clientid)." }),
  clientid: z.string().optional(),
});

const rawRoute = {
  method: "post" as const,
  tags: ["Publish"],
  summary: "Publish the raw body to the topic in the path",
  description:
    "The body is the payload; the topic is the rest of the path, URL-decoded (`%2F` is `/`, `%23` is `#`: refused). QoS, retain and MQTT 5 properties from the query or `MQTT-*` headers. The request's Content-Type becomes the message's content type.",
  request: {
    params: z.object({ topic: z.string().openapi({ example: "devices/gw-1/temperature" }) }),
    query: RawQuery,
    headers: IdempotencyHeader,
    body: { required: false, content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } },
  },
  responses: {
    200: { description: "Accepted by every matching session (as a PUBACK would mean).", content: { "application/json": { schema: PublishOk } } },
    202: { description: "Accepted, but no session subscribes (reason code 16).", content: { "application/json": { schema: PublishNoMatch } } },
    ...publishProblems,
  },
};

publish.openapi(single, async (c) => {
  const item = c.req.valid("json") as JsonItem;
  const drafts = await checkedDrafts(c, [jsonItemDraft(item)]);
  return idempotent(c, async (token) => singleAnswer(await route(c, drafts, token))) as never;
});

publish.openapi(bulk, async (c) => {
  const items = c.req.valid("json") as JsonItem[];
  const drafts = await checkedDrafts(c, items.map(jsonItemDraft));
  return idempotent(c, async (token) => bulkAnswer(await route(c, drafts, token))) as never;
});

// The topic spans the rest of the path: Hono's `:topic{.+}`. Registered hidden and described
// in the document under the plain `/{topic}` template.
publish.openapi(
  createRoute({ ...rawRoute, path: "/{topic{.+}}", hide: true, request: {}, middleware: [authenticate] as const }),
  async (c) => {
    const url = new URL(c.req.url);
    const marker = "/publish/";
    let topic: string;
    try {
      topic = decodeURIComponent(url.pathname.slice(url.pathname.indexOf(marker) + marker.length));
    } catch {
      refuse(400, "invalid-topic", "The topic in the path is not valid percent-encoding.");
    }
    const body = await readBody(c);
    c.set("ingestBody", body);
    const params = url.searchParams;
    const parsed = rawDraft({
      topic,
      body,
      query: (name) => params.getAll(name),
      queryNames: () => [...new Set(params.keys())],
      header: (name) => c.req.raw.headers.get(name),
    });
    const drafts = await checkedDrafts(c, [parsed]);
    return idempotent(c, async (token) => singleAnswer(await route(c, drafts, token))) as never;
  },
);
publish.openAPIRegistry.registerPath({ ...rawRoute, path: "/{topic}" });
