import { createRoute, z, type RouteConfig } from "@hono/zod-openapi";
import { validateTopicFilter, validateTopicName } from "../../../core/mqtt/codec/topic-syntax";
import { isSharedFilter } from "../../../core/topics";
import { numberVar } from "../../../durable-objects/config";
import {
  InvalidCursorError,
  clearRetained,
  deleteRetained,
  getRetained,
  listRetained,
  sweepRetained,
  type RetainedInfo,
} from "../../../durable-objects/retained-admin";
import { requireAdmin } from "../../auth";
import { refuse } from "../../problem";
import { adminProblems, problemResponse } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/retained: the retained messages of every shard (list, get, delete one, delete
 * matching, stale sweep). Admin only. See docs/retained.md.
 */
export const retained = apiRouter();
retained.use("*", requireAdmin);

const MAX_LIMIT = 1000;

// ------------------------------------------------------------------------------ schemas

const UserProperty = z.object({ name: z.string(), value: z.string() }).openapi("UserProperty");

const RetainedMessage = z
  .object({
    topic: z.string().openapi({ example: "devices/sensor-1/state" }),
    payload: z.string().openapi({ description: "The payload, base64 (RFC 4648, padded).", example: "eyJ0IjoyMS41fQ==" }),
    payload_text: z.string().optional().openapi({ description: "The payload as text, when it is valid UTF-8.", example: '{"t":21.5}' }),
    size: z.number().int().openapi({ description: "Payload bytes.", example: 10 }),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]),
    stored_at: z.string().openapi({ description: "When the broker stored it (RFC 3339).", example: "2026-12-03T21:30:00.000Z" }),
    expires_at: z.string().nullable().openapi({ description: "When it expires (Message Expiry Interval), or null." }),
    publisher: z.string().nullable().openapi({ description: "Client identifier of the publisher; null for HTTP ingest.", example: "sensor-1" }),
    properties: z
      .object({
        payload_format_indicator: z.union([z.literal(0), z.literal(1)]).optional(),
        message_expiry_interval: z.number().int().optional().openapi({ description: "Seconds left before it expires." }),
        content_type: z.string().optional(),
        response_topic: z.string().optional(),
        correlation_data: z.string().optional().openapi({ description: "Base64." }),
        user_properties: z.array(UserProperty).optional().openapi({ description: "In order; a name may repeat (MQTT 5)." }),
      })
      .openapi("RetainedProperties"),
  })
  .openapi("RetainedMessage");

const RetainedPage = z
  .object({
    items: z.array(RetainedMessage),
    next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null at the end." }),
  })
  .openapi("RetainedPage");

const ClearAnswer = z
  .object({
    matched: z.number().int().openapi({ description: "Retained messages selected." }),
    cleared: z.number().int().openapi({ description: "Retained messages deleted (0 in a dry run)." }),
    dry_run: z.boolean(),
  })
  .openapi("RetainedClearResult");

const SweepAnswer = ClearAnswer.extend({
  older_than: z.number().int().openapi({ description: "The age used, seconds (older_than, or RETAINED_MAX_AGE)." }),
}).openapi("RetainedSweepResult");

const olderThan = z.coerce
  .number()
  .int()
  .min(0)
  .optional()
  .openapi({ param: { name: "older_than", in: "query" }, description: "Only messages stored at least this many seconds ago.", example: 86400 });

const dryRun = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1")
  .openapi({ param: { name: "dry_run", in: "query" }, description: "Only count what would be cleared.", example: "true" });

const filterDescription =
  "An MQTT topic filter (`+` one level, `#` any levels, last): `#` matches every topic except `$` ones [MQTT-4.7.2-1]. URL-encode `#` as %23 and `+` as %2B.";

const TopicParam = z.object({
  topic: z.string().openapi({
    param: { name: "topic", in: "path" },
    description: "The topic name, its `/` as they are (URL-encode other reserved characters).",
    example: "devices/sensor-1/state",
  }),
});

// ------------------------------------------------------------------------------ helpers

/** A filter for the retained store: the codec's topic filter rules, and no shared subscription. */
function checkFilter(filter: string): string {
  if (validateTopicFilter(filter) !== undefined) {
    refuse(400, "invalid-topic-filter", `${JSON.stringify(filter)} is not a valid topic filter: "+" and "#" must each take a whole level, "#" only last, and no empty filter or U+0000 [MQTT-4.7.1].`);
  }
  if (isSharedFilter(filter)) {
    refuse(400, "invalid-topic-filter", "A shared subscription filter ($share/...) selects no retained messages (MQTT 5.0 section 4.8.2): give the topic filter alone.");
  }
  return filter;
}

function checkTopic(topic: string): string {
  if (validateTopicName(topic) !== undefined) {
    refuse(400, "invalid-topic", `${JSON.stringify(topic)} is not a valid topic name: no "+" or "#" [MQTT-3.3.2-2], no U+0000, not empty.`);
  }
  return topic;
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function utf8Text(bytes: Uint8Array): string | undefined {
  try {
    return fatalUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function view(info: RetainedInfo, now: number): z.infer<typeof RetainedMessage> {
  const { message } = info;
  const p = message.properties ?? {};
  const text = utf8Text(message.payload);
  return {
    topic: info.topic,
    payload: base64(message.payload),
    ...(text !== undefined && { payload_text: text }),
    size: info.size,
    qos: message.qos,
    stored_at: new Date(info.storedAt).toISOString(),
    expires_at: info.expiresAt === null ? null : new Date(info.expiresAt).toISOString(),
    publisher: info.publisher,
    properties: {
      ...(p.payloadFormatIndicator !== undefined && { payload_format_indicator: p.payloadFormatIndicator }),
      ...(info.expiresAt !== null && { message_expiry_interval: Math.max(0, Math.ceil((info.expiresAt - now) / 1000)) }),
      ...(p.contentType !== undefined && { content_type: p.contentType }),
      ...(p.responseTopic !== undefined && { response_topic: p.responseTopic }),
      ...(p.correlationData !== undefined && { correlation_data: base64(p.correlationData) }),
      ...(p.userProperties !== undefined && { user_properties: p.userProperties.map(([name, value]) => ({ name, value })) }),
    },
  };
}

/**
 * A route whose `{topic}` takes the rest of the path, slashes included. @hono/zod-openapi
 * turns `/{x}` into Hono's `/:x`, which stops at a `/`; the handler is routed on
 * `/:topic{.+}` instead, and the OpenAPI document shows `/{topic}`.
 */
function topicRoute<R extends RouteConfig>(route: R): R {
  retained.openAPIRegistry.registerPath(route);
  return { ...route, path: route.path.replace("{topic}", "{topic{.+}}"), hide: true };
}

// ------------------------------------------------------------------------------ routes

retained.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["retained"],
    summary: "List retained messages",
    description:
      "The retained messages matching a topic filter, across every shard, in pages: shard by shard, each in topic order. A page may hold fewer than `limit` messages and still have a `next_cursor` (each shard walks a bounded number of rows per call).",
    request: {
      query: z.object({
        filter: z.string().default("#").openapi({ description: filterDescription, example: "devices/+/state" }),
        older_than: olderThan,
        cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page (same filter)." }),
        limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(100).openapi({ description: `Messages per page, 1 to ${MAX_LIMIT}.`, example: 100 }),
      }),
    },
    responses: {
      200: { description: "A page of retained messages.", content: { "application/json": { schema: RetainedPage } } },
      400: problemResponse("A bad filter (invalid-topic-filter), cursor (invalid-cursor), limit or older_than (invalid-request)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const filter = checkFilter(q.filter);
    try {
      const page = await listRetained(c.env, { filter, olderThanSeconds: q.older_than, cursor: q.cursor, limit: q.limit });
      const now = Date.now();
      return c.json({ items: page.items.map((i) => view(i, now)), next_cursor: page.nextCursor ?? null }, 200);
    } catch (e) {
      if (e instanceof InvalidCursorError) refuse(400, "invalid-cursor", e.message);
      throw e;
    }
  },
);

retained.openapi(
  createRoute({
    method: "delete",
    path: "/",
    tags: ["retained"],
    summary: "Delete the retained messages matching a filter",
    description:
      "Clears every retained message matching `filter` (required: `#` clears all but `$` topics) and, with `older_than`, stored at least that many seconds ago. `dry_run=true` only counts.",
    request: {
      query: z.object({
        filter: z.string().optional().openapi({ description: `Required. ${filterDescription}`, example: "devices/sensor-1/#" }),
        older_than: olderThan,
        dry_run: dryRun,
      }),
    },
    responses: {
      200: { description: "What was matched and cleared.", content: { "application/json": { schema: ClearAnswer } } },
      400: problemResponse("No filter (filter-required), a bad one (invalid-topic-filter), or a bad older_than (invalid-request)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    if (q.filter === undefined) {
      refuse(400, "filter-required", "Give the topic filter to clear as ?filter=... (`#`, URL-encoded %23, for everything): a bulk delete never defaults to all.");
    }
    const filter = checkFilter(q.filter);
    const r = await clearRetained(c.env, filter, { olderThanSeconds: q.older_than, dryRun: q.dry_run });
    return c.json({ matched: r.matched, cleared: r.cleared, dry_run: q.dry_run }, 200);
  },
);

retained.openapi(
  createRoute({
    method: "post",
    path: "/sweep",
    tags: ["retained"],
    summary: "Run the stale sweep now",
    description:
      "Clears the retained messages stored more than RETAINED_MAX_AGE seconds ago (or `older_than` seconds when given) on every topic but the `$` ones, which the broker keeps up itself (as the filter `#`). `dry_run=true` only counts. The scheduled sweep does the same every RETAINED_SWEEP_INTERVAL seconds when RETAINED_MAX_AGE is set.",
    request: { query: z.object({ older_than: olderThan, dry_run: dryRun }) },
    responses: {
      200: { description: "What was matched and cleared.", content: { "application/json": { schema: SweepAnswer } } },
      400: problemResponse("No age: RETAINED_MAX_AGE is 0 and no older_than was given (max-age-required)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const age = q.older_than ?? numberVar(c.env, "RETAINED_MAX_AGE", 0);
    if (age <= 0) {
      refuse(400, "max-age-required", "The stale sweep is off (RETAINED_MAX_AGE = 0): give ?older_than=<seconds>, or set RETAINED_MAX_AGE.");
    }
    const r = await sweepRetained(c.env, age, q.dry_run);
    return c.json({ matched: r.matched, cleared: r.cleared, dry_run: q.dry_run, older_than: age }, 200);
  },
);

retained.openapi(
  topicRoute(
    createRoute({
      method: "get",
      path: "/{topic}",
      tags: ["retained"],
      summary: "Get one retained message",
      request: { params: TopicParam },
      responses: {
        200: { description: "The topic's retained message.", content: { "application/json": { schema: RetainedMessage } } },
        400: problemResponse("Not a valid topic name (invalid-topic)."),
        404: problemResponse("The topic has no retained message (not-found)."),
        ...adminProblems,
      },
    }),
  ),
  async (c) => {
    const topic = checkTopic(c.req.valid("param").topic);
    const found = await getRetained(c.env, topic);
    if (!found) refuse(404, "not-found", `No retained message on ${JSON.stringify(topic)}.`);
    return c.json(view(found, Date.now()), 200);
  },
);

retained.openapi(
  topicRoute(
    createRoute({
      method: "delete",
      path: "/{topic}",
      tags: ["retained"],
      summary: "Delete one retained message",
      request: { params: TopicParam },
      responses: {
        204: { description: "Deleted." },
        400: problemResponse("Not a valid topic name (invalid-topic)."),
        404: problemResponse("The topic has no retained message (not-found)."),
        ...adminProblems,
      },
    }),
  ),
  async (c) => {
    const topic = checkTopic(c.req.valid("param").topic);
    if (!(await deleteRetained(c.env, topic))) refuse(404, "not-found", `No retained message on ${JSON.stringify(topic)}.`);
    return c.body(null, 204);
  },
);
