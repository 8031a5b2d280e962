import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, eq, gt, sql, type SQL } from "drizzle-orm";
import { isMqttString } from "../../../core/ingest";
import { validateTopicFilter, validateTopicName } from "../../../core/mqtt/codec";
import { aclRuleProblem } from "../../../core/policy/acl";
import type { Principal } from "../../../core/policy/types";
import { createDb, schema } from "../../../db";
import type { AclRule } from "../../../db/schema";
import { requireAdmin } from "../../auth";
import { refuse } from "../../problem";
import { aclCache } from "../../security/acl-cache";
import { USERNAME_MAX_CHARS } from "./credentials";
import { adminProblems, problemResponse } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/acl: ACL rules over publish and subscribe (admin only), Mosquitto-like; the
 * decisions are core/policy/acl.ts's, the semantics are in docs/security.md. A change is
 * seen at once by the isolate that made it and by every other within ACL_CACHE_SECONDS
 * (each keeps a snapshot of the rules), live sessions included.
 */
export const acl = apiRouter();
acl.use("*", requireAdmin);

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const CLIENT_ID_MAX_CHARS = 65535;

const SEMANTICS =
  "A rule applies to a client when its `username` is null or equals the client's user name and its `clientid` is null or equals the client identifier " +
  "(no username and no clientid: everyone, anonymous clients included). `%c` / `%u` in `topic` stand for the client identifier / user name " +
  "(a rule with `%u` never applies to a client without one). `publish` governs PUBLISH, Wills and HTTP ingest; `subscribe` governs SUBSCRIBE and " +
  "delivery (live and retained); `all` both. Among the applicable rules matching a topic, any deny wins, then any allow; where none matches: allowed " +
  "while ALLOW_ANONYMOUS is true, denied when it is false. Nobody publishes to `$` topics, and only admin users read `$SYS/#`, whatever the rules say. " +
  "HTTP API keys are checked as user name `key:<key id>` with client identifier the item's device (else the key's device, else `api-key:<key id>`).";

/** A rule's user name: an exact user name (not validated as a new credential's: JWT and certificate users are named here too). */
const RuleUsername = z
  .string()
  .min(1)
  .max(USERNAME_MAX_CHARS)
  .refine((v) => isMqttString(v) && !/[\u0000-\u001f\u007f-\u009f]/.test(v), "username must be an MQTT UTF-8 string without control characters")
  .openapi({ example: "sensor-17" });

const RuleClientId = z
  .string()
  .min(1)
  .max(CLIENT_ID_MAX_CHARS)
  .refine((v) => isMqttString(v), "clientid must be an MQTT UTF-8 string (no U+0000, no lone surrogate, at most 65,535 bytes)")
  .openapi({ example: "sensor-17" });

const Action = z.enum(["publish", "subscribe", "all"]).openapi({ description: "publish: PUBLISH, Will, HTTP ingest; subscribe: SUBSCRIBE and delivery; all: both." });

const AclRuleSchema = z
  .object({
    id: z.number().int().openapi({ example: 7 }),
    username: z.string().nullable().openapi({ description: "Null: every user name, and anonymous clients." }),
    clientid: z.string().nullable().openapi({ description: "Null: every client identifier." }),
    topic: z.string().openapi({ example: "devices/%c/#" }),
    action: Action,
    allow: z.boolean(),
    created_at: z.string().nullable().openapi({ format: "date-time", description: "Null for a rule written before the API existed." }),
  })
  .openapi("AclRule");

const NewAclRule = z
  .strictObject({
    username: RuleUsername.nullable().optional(),
    clientid: RuleClientId.nullable().optional(),
    topic: z.string().min(1).max(65535).openapi({ example: "devices/%c/#", description: "A topic filter; `%c` / `%u` stand for the client identifier / user name." }),
    action: Action,
    allow: z.boolean().openapi({ description: "true: allow; false: deny (a matching deny always wins)." }),
  })
  .openapi("NewAclRule");

const AclRuleList = z
  .object({
    items: z.array(AclRuleSchema),
    next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("AclRuleList");

const AclCheck = z
  .strictObject({
    username: RuleUsername.optional().openapi({ description: "The client's user name; absent: an anonymous client." }),
    clientid: RuleClientId,
    topic: z.string().min(1).max(65535).openapi({ example: "devices/sensor-17/temp", description: "A topic name (publish, read) or a topic filter (subscribe)." }),
    action: z.enum(["publish", "subscribe", "read"]).openapi({ description: "publish: a PUBLISH to the topic; subscribe: a SUBSCRIBE to the filter; read: delivery of a message on the topic." }),
    admin: z.boolean().optional().openapi({ description: "Check as an admin principal ($SYS). Absent: the user's stored admin flag (false without a user)." }),
  })
  .openapi("AclCheck");

const AclCheckRule = z
  .object({
    id: z.number().int(),
    username: z.string().nullable(),
    clientid: z.string().nullable(),
    topic: z.string(),
    action: Action,
    allow: z.boolean(),
  })
  .openapi("AclCheckRule");

const AclCheckResult = z
  .object({
    allowed: z.boolean(),
    reason: z.enum(["rule", "default", "dollar-topic", "sys-admin-only", "sys-admin", "claims"]).openapi({
      description:
        "rule: the rule in `rule` decided; default: no rule matched (ALLOW_ANONYMOUS decides); dollar-topic: nobody publishes to `$` topics; " +
        "sys-admin-only / sys-admin: `$SYS` is denied to a non-admin / allowed to an admin; claims: a token's `acl` claim decided.",
    }),
    rule: AclCheckRule.nullable().openapi({ description: "The deciding rule (as written, `%c` / `%u` unsubstituted), or null." }),
    allow_anonymous: z.boolean().openapi({ description: "ALLOW_ANONYMOUS: the default where no rule decides." }),
    admin: z.boolean().openapi({ description: "Whether the check was made as an admin principal." }),
  })
  .openapi("AclCheckResult");

function view(row: AclRule): z.infer<typeof AclRuleSchema> {
  return {
    id: row.id,
    username: row.username,
    clientid: row.clientId,
    topic: row.topic,
    action: row.action,
    allow: row.allow,
    created_at: row.createdAt === null ? null : new Date(row.createdAt).toISOString(),
  };
}

acl.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["ACL"],
    summary: "Add an ACL rule",
    description: `${SEMANTICS} An identical rule already there is answered with 200 and nothing is added. Live sessions see the change within ACL_CACHE_SECONDS.`,
    request: { body: { required: true, content: { "application/json": { schema: NewAclRule } } } },
    responses: {
      201: { description: "The rule, with its id.", content: { "application/json": { schema: AclRuleSchema } } },
      200: { description: "An identical rule already existed: that one.", content: { "application/json": { schema: AclRuleSchema } } },
      400: problemResponse("Not a valid topic filter (with %c / %u), an unknown action, a bad user name or client identifier (invalid-acl-rule, invalid-request)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const rule = { username: body.username ?? null, clientId: body.clientid ?? null, topic: body.topic, action: body.action, allow: body.allow };
    const problem = aclRuleProblem(rule);
    if (problem !== undefined) refuse(400, "invalid-acl-rule", problem);
    const db = createDb(c.env.DB);
    const t = schema.aclRules;
    // `IS`: null-safe equality, so a rule for everyone finds its twin too.
    const [existing] = await db
      .select()
      .from(t)
      .where(and(sql`${t.username} IS ${rule.username}`, sql`${t.clientId} IS ${rule.clientId}`, eq(t.topic, rule.topic), eq(t.action, rule.action), eq(t.allow, rule.allow)))
      .orderBy(asc(t.id))
      .limit(1);
    if (existing) return c.json(view(existing), 200);
    const [row] = await db.insert(t).values({ ...rule, createdAt: Date.now() }).returning();
    aclCache(c.env).invalidate();
    return c.json(view(row!), 201);
  },
);

acl.openapi(
  createRoute({
    method: "post",
    path: "/check",
    tags: ["ACL"],
    summary: "Test a topic against the rules",
    description:
      `Whether a client (user name, client identifier) may publish to, subscribe to or read a topic, decided by the broker's own ACL policy over the current rules (read afresh), and why. ${SEMANTICS} ` +
      "Checked as a password (or anonymous) client: a token's `acl` claim is not part of the check.",
    request: { body: { required: true, content: { "application/json": { schema: AclCheck } } } },
    responses: {
      200: { description: "The decision.", content: { "application/json": { schema: AclCheckResult } } },
      400: problemResponse("Not a valid topic name (publish, read) or topic filter (subscribe), or a bad field (invalid-topic, invalid-request)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const bad = body.action === "subscribe" ? validateTopicFilter(body.topic) : validateTopicName(body.topic);
    if (bad !== undefined) {
      refuse(
        400,
        "invalid-topic",
        body.action === "subscribe"
          ? `topic "${body.topic}" is not a valid topic filter ("+" and "#" occupy a whole level, "#" only the last; no U+0000)`
          : `topic "${body.topic}" is not a valid topic name (no "+" or "#", no U+0000) for ${body.action}`,
      );
    }
    let admin = body.admin;
    if (admin === undefined && body.username !== undefined) {
      const t = schema.credentials;
      const [row] = await createDb(c.env.DB).select({ admin: t.admin }).from(t).where(eq(t.username, body.username));
      admin = row?.admin ?? false;
    }
    const principal: Principal = {
      clientId: body.clientid,
      ...(body.username !== undefined && { username: body.username }),
      method: body.username === undefined ? "anonymous" : "password",
      admin: admin === true,
    };
    const cache = aclCache(c.env);
    cache.invalidate(); // the rules as they are now, not this isolate's snapshot
    const policy = await cache.load();
    const decision =
      body.action === "publish"
        ? policy.explainPublish(principal, body.topic)
        : body.action === "subscribe"
          ? policy.explainSubscribe(principal, body.topic)
          : policy.explainRead(principal, body.topic);
    const r = decision.rule;
    return c.json(
      {
        allowed: decision.allowed,
        reason: decision.reason,
        rule: r === null ? null : { id: r.id, username: r.username, clientid: r.clientId, topic: r.topic, action: r.action, allow: r.allow },
        allow_anonymous: c.env.ALLOW_ANONYMOUS === "true",
        admin: admin === true,
      },
      200,
    );
  },
);

acl.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["ACL"],
    summary: "List ACL rules",
    description: `In id order (oldest first), a page at a time. \`username\` / \`clientid\` list the rules naming exactly that user name / client identifier (not the rules for everyone that also apply). ${SEMANTICS}`,
    request: {
      query: z.object({
        username: z.string().min(1).optional().openapi({ description: "Only rules naming this user name." }),
        clientid: z.string().min(1).optional().openapi({ description: "Only rules naming this client identifier." }),
        cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page." }),
        limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(DEFAULT_LIMIT),
      }),
    },
    responses: {
      200: { description: "A page of rules.", content: { "application/json": { schema: AclRuleList } } },
      400: problemResponse("A bad limit or cursor."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const { username, clientid, cursor, limit } = c.req.valid("query");
    const t = schema.aclRules;
    const where: SQL[] = [];
    if (username !== undefined) where.push(eq(t.username, username));
    if (clientid !== undefined) where.push(eq(t.clientId, clientid));
    if (cursor !== undefined) {
      if (!/^[1-9][0-9]{0,15}$/.test(cursor)) refuse(400, "invalid-cursor", "cursor: not a cursor this API gave (pass `next_cursor` of the previous page unchanged).");
      where.push(gt(t.id, Number(cursor)));
    }
    const rows = await createDb(c.env.DB).select().from(t).where(and(...where)).orderBy(asc(t.id)).limit(limit + 1);
    const page = rows.slice(0, limit);
    const next = rows.length > limit ? String(page[page.length - 1]!.id) : null;
    return c.json({ items: page.map(view), next_cursor: next }, 200);
  },
);

acl.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags: ["ACL"],
    summary: "Delete an ACL rule",
    description: "Live sessions see the change within ACL_CACHE_SECONDS (at once on this isolate).",
    request: { params: z.object({ id: z.coerce.number().int().min(1).openapi({ param: { name: "id", in: "path" }, example: 7 }) }) },
    responses: {
      204: { description: "Deleted." },
      400: problemResponse("The id is not a positive integer."),
      404: problemResponse("No such rule (acl-rule-not-found)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const t = schema.aclRules;
    const deleted = await createDb(c.env.DB).delete(t).where(eq(t.id, id)).returning({ id: t.id });
    if (deleted.length === 0) refuse(404, "acl-rule-not-found", `No ACL rule ${id}.`);
    aclCache(c.env).invalidate();
    return c.body(null, 204);
  },
);
