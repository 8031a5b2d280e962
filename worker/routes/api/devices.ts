import { createRoute, z } from "@hono/zod-openapi";
import { decodeCursor, encodeCursor } from "./cursor";
import { forgetCredential } from "../../security/credentials";
import { and, asc, eq, gt, gte, isNull, lt, sql, type SQL } from "drizzle-orm";
import { clientIdRange, decommissionFilters, presenceOf, type SkippedTemplate } from "../../../core/devices/view";
import { validateTopicFilter } from "../../../core/mqtt/codec";
import type { SessionView } from "../../../core/session/admin";
import { createDb, schema, type Db } from "../../../db";
import type { Device } from "../../../db/schema";
import { presenceStub } from "../../../durable-objects/presence";
import { clearRetained } from "../../../durable-objects/retained-admin";
import { requireAdmin } from "../../auth";
import type { Env } from "../../env";
import { refuse } from "../../problem";
import { adminProblems, problemResponse } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/devices: the device registry (D1) with the presence semantics of docs/presence.md,
 * each device's live session (its SessionDO), disconnect and decommission. Admin only.
 * Times are ISO 8601 strings (UTC), null when unknown. See docs/devices.md.
 */
export const devices = apiRouter();
devices.use("*", requireAdmin);

const DEFAULT_DECOMMISSION_RETAINED = "devices/%c/#";
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

// ------------------------------------------------------------------ schemas

const Time = z.string().nullable().openapi({ format: "date-time", example: "2026-12-03T21:45:40.000Z" });
const ClientId = z.string().min(1).max(65535).openapi({ description: "The MQTT client identifier (percent-encode `/` and other reserved characters).", example: "sensor-17" });

const DeviceSchema = z
  .object({
    client_id: z.string(),
    online: z.boolean().openapi({ description: "Online iff its connection's lease runs (online = 1 AND lease_expires_at > now)." }),
    transport: z.enum(["mqtt", "http"]),
    connected_at: Time,
    disconnected_at: Time,
    last_seen_at: Time,
    disconnect_reason: z.string().nullable().openapi({
      description: "normal, client-error, keepalive-timeout, taken-over, protocol-error, rate-limited, server-error, admin-disconnect, connection-lost, lease-expired, decommissioned",
      example: "keepalive-timeout",
    }),
    disconnect_code: z.number().int().nullable().openapi({ description: "The MQTT reason code of the disconnect, when there was one.", example: 141 }),
    will_fired: z.boolean(),
    protocol_version: z.number().int().openapi({ description: "3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0" }),
    username: z.string().nullable(),
    remote_address: z.string().nullable(),
    connection_count: z.number().int(),
    session_expires_at: Time,
    lease_expires_at: Time,
    decommissioned_at: Time,
  })
  .openapi("Device");

const SubscriptionSchema = z
  .object({
    filter: z.string(),
    qos: z.number().int().min(0).max(2),
    no_local: z.boolean(),
    retain_as_published: z.boolean(),
    retain_handling: z.number().int().min(0).max(2),
    subscription_id: z.number().int().nullable(),
  })
  .openapi("Subscription");

const SessionSchema = z
  .object({
    connected: z.boolean(),
    route: z.enum(["fast", "relay"]).nullable().openapi({ description: "How the connection came: `/mqtt/<id>` (fast) or `/mqtt` (relay); null when not connected." }),
    protocol_version: z.number().int(),
    session_expiry_interval: z.number().int().openapi({ description: "Seconds; 4294967295 never expires." }),
    expires_at: Time.openapi({ description: "When the session ends while disconnected; null while connected or when it never expires." }),
    connected_at: Time,
    keep_alive: z.number().int().nullable(),
    username: z.string().nullable(),
    will_pending: z.boolean(),
    will_at: Time.openapi({ description: "When a delayed Will is due (5.0 Will Delay Interval)." }),
    subscriptions: z.array(SubscriptionSchema),
    queued: z.object({ messages: z.number().int(), bytes: z.number().int() }).openapi({ description: "QoS 1/2 messages waiting for the client." }),
    in_flight: z.object({
      outbound: z.number().int().openapi({ description: "QoS 1/2 messages sent to the client, not yet acknowledged." }),
      outbound_bytes: z.number().int(),
      inbound_awaiting_release: z.number().int().openapi({ description: "QoS 2 messages from the client whose PUBREL has not come." }),
    }),
  })
  .openapi("Session");

const DeviceDetailSchema = z
  .object({
    client_id: z.string(),
    device: DeviceSchema.nullable().openapi({ description: "The registry record (D1); null when the device never reached the registry." }),
    session: SessionSchema.nullable().openapi({ description: "The live session (its Durable Object); null when there is none." }),
  })
  .openapi("DeviceDetail");

const DeviceListSchema = z
  .object({
    items: z.array(DeviceSchema),
    next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("DeviceList");

const DisconnectResultSchema = z
  .object({
    client_id: z.string(),
    disconnected: z.literal(true),
    will_published: z.boolean().openapi({ description: "The Will went out now (a Will Delay schedules it instead)." }),
    session_kept: z.boolean().openapi({ description: "The session stays (false for a session with expiry 0, which ends with its connection)." }),
  })
  .openapi("DisconnectResult");

const DecommissionResultSchema = z
  .object({
    client_id: z.string(),
    dry_run: z.boolean(),
    session_ended: z.boolean().openapi({ description: "A session existed and was ended (would be, on a dry run)." }),
    was_online: z.boolean(),
    subscriptions_removed: z.number().int(),
    messages_dropped: z.number().int().openapi({ description: "Queued and in-flight QoS 1/2 messages dropped." }),
    will_discarded: z.boolean(),
    retained_cleared: z.record(z.string(), z.number().int()).openapi({
      description: "Retained messages cleared per filter (matching, on a dry run).",
      example: { "devices/sensor-17/#": 2 },
    }),
    retained_skipped: z.array(z.object({ template: z.string(), reason: z.string() })).openapi({
      description: "DECOMMISSION_RETAINED templates that gave no safe filter for this client identifier (one with + or #).",
    }),
    credentials_revoked: z.number().int(),
    keys_revoked: z.number().int(),
    decommissioned_at: Time.openapi({ description: "Null on a dry run." }),
  })
  .openapi("DecommissionResult");

const IdParams = z.object({ id: ClientId.openapi({ param: { name: "id", in: "path" } }) });

/** A query parameter given once or repeated (Hono hands a repeated one over as an array). */
const repeated = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .optional();

// ------------------------------------------------------------------ GET /devices

const listRoute = createRoute({
  method: "get",
  path: "/",
  summary: "List devices",
  description:
    "The device registry in client identifier order, with presence: online iff the connection's lease runs. Filters combine; `prefix` is a range on the primary key (no wildcards).",
  request: {
    query: z.object({
      status: z.enum(["online", "offline"]).optional(),
      transport: z.enum(["mqtt", "http"]).optional(),
      prefix: z.string().min(1).max(65535).optional().openapi({ description: "Client identifiers starting with this (plain characters, no wildcards)." }),
      cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page." }),
      limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(DEFAULT_LIMIT),
    }),
  },
  responses: {
    200: { description: "A page of devices.", content: { "application/json": { schema: DeviceListSchema } } },
    400: problemResponse("A bad filter, limit or cursor."),
    ...adminProblems,
  },
});

devices.openapi(listRoute, async (c) => {
  const { status, transport, prefix, cursor, limit } = c.req.valid("query");
  const now = Date.now();
  const after = cursor === undefined ? undefined : decodeCursor(cursor);
  const rows = await listQuery(createDb(c.env.DB), { status, transport, prefix, after, limit: limit + 1 }, now);
  const page = rows.slice(0, limit);
  const next = rows.length > limit ? encodeCursor(page[page.length - 1]!.clientId) : null;
  return c.json({ items: page.map((r) => deviceJson(r, now)), next_cursor: next }, 200);
});

export interface ListFilters {
  status?: "online" | "offline" | undefined;
  transport?: "mqtt" | "http" | undefined;
  prefix?: string | undefined;
  /** Client identifiers after this one (the cursor). */
  after?: string | undefined;
  limit: number;
}

/**
 * The registry query of GET /devices, in client identifier order: the primary key serves the
 * order, the prefix range and the cursor (test/workers/devices.test.ts checks the plan).
 */
export function listQuery(db: Db, f: ListFilters, now: number) {
  const d = schema.devices;
  const where: (SQL | undefined)[] = [];
  // The shared presence semantics, in SQL: online iff online = 1 AND lease_expires_at > now.
  // With a prefix, the range on the primary key bounds the work: `+column` keeps the planner
  // off devices_lease_idx, which would read every online device and sort them. Without one,
  // the planner may take that index (a page then costs the online devices, not the table).
  const online = f.prefix !== undefined ? sql`+${d.online}` : sql`${d.online}`;
  const lease = f.prefix !== undefined ? sql`+${d.leaseExpiresAt}` : sql`${d.leaseExpiresAt}`;
  if (f.status === "online") where.push(sql`(${online} = 1 AND ${lease} > ${now})`);
  if (f.status === "offline") where.push(sql`(${online} = 0 OR ${lease} IS NULL OR ${lease} <= ${now})`);
  if (f.transport) where.push(eq(d.transport, f.transport));
  if (f.prefix !== undefined) {
    const { low, high } = clientIdRange(f.prefix);
    where.push(gte(d.clientId, low));
    if (high !== undefined) where.push(lt(d.clientId, high));
  }
  if (f.after !== undefined) where.push(gt(d.clientId, f.after));
  return db.select().from(d).where(and(...where)).orderBy(asc(d.clientId)).limit(f.limit);
}

// ------------------------------------------------------------------ GET /devices/{id}

const getRoute = createRoute({
  method: "get",
  path: "/{id}",
  summary: "One device: its registry record and its live session",
  request: { params: IdParams },
  responses: {
    200: { description: "The device.", content: { "application/json": { schema: DeviceDetailSchema } } },
    404: problemResponse("No registry record and no session for this client identifier."),
    ...adminProblems,
  },
});

devices.openapi(getRoute, async (c) => {
  const { id } = c.req.valid("param");
  const now = Date.now();
  const [row, session] = await Promise.all([deviceRow(createDb(c.env.DB), id), sessionStub(c.env, id).describe()]);
  if (!row && !session) refuse(404, "device-not-found", `No device and no session with client identifier "${id}".`, { client_id: id });
  return c.json({ client_id: id, device: row ? deviceJson(row, now) : null, session: session ? sessionJson(session) : null }, 200);
});

// ------------------------------------------------------------------ POST /devices/{id}/disconnect

const disconnectRoute = createRoute({
  method: "post",
  path: "/{id}/disconnect",
  summary: "Disconnect a device, keeping its session",
  description:
    "Closes the live connection: MQTT 5.0 clients get DISCONNECT 0x98 (Administrative action) first, 3.1.1 clients a close. The session stays (a persistent session keeps its subscriptions and queue); the Will is published, as for any connection the server closes [MQTT-3.1.2-8]; presence: `admin-disconnect`.",
  request: { params: IdParams },
  responses: {
    200: { description: "Disconnected.", content: { "application/json": { schema: DisconnectResultSchema } } },
    404: problemResponse("No registry record and no session for this client identifier."),
    409: problemResponse("The device is known but no MQTT connection is attached (`not-connected`)."),
    ...adminProblems,
  },
});

devices.openapi(disconnectRoute, async (c) => {
  const { id } = c.req.valid("param");
  const result = await sessionStub(c.env, id).adminDisconnect();
  if (!result.wasConnected) {
    const known = result.sessionKept || (await deviceRow(createDb(c.env.DB), id)) !== undefined;
    if (!known) refuse(404, "device-not-found", `No device and no session with client identifier "${id}".`, { client_id: id });
    refuse(409, "not-connected", `"${id}" has no MQTT connection attached: nothing to disconnect.`, { client_id: id });
  }
  return c.json({ client_id: id, disconnected: true as const, will_published: result.willPublished, session_kept: result.sessionKept }, 200);
});

// ------------------------------------------------------------------ DELETE /devices/{id}

const decommissionRoute = createRoute({
  method: "delete",
  path: "/{id}",
  summary: "Decommission a device",
  description:
    "In this order: ends its session completely (disconnects it if online, DISCONNECT 0x98 to 5.0 clients; the Will is discarded; queue, in-flight state and subscriptions dropped), clears its retained topics (the DECOMMISSION_RETAINED templates with %c replaced by the client identifier, or the filters given as `retained`), marks the registry record decommissioned, deletes its credentials (username = client identifier) and revokes the API keys issued to it. Repeating the call is harmless. `dry_run=true` answers what would be done and does nothing.",
  request: {
    params: IdParams,
    query: z.object({
      retained: repeated.openapi({
        description: "A topic filter of retained messages to clear, instead of DECOMMISSION_RETAINED; repeatable.",
        param: { style: "form", explode: true },
        type: "array",
        items: { type: "string" },
      }),
      dry_run: z.enum(["true", "false"]).optional(),
    }),
  },
  responses: {
    200: { description: "What was done (would be, on a dry run).", content: { "application/json": { schema: DecommissionResultSchema } } },
    400: problemResponse("A `retained` value that is not a valid topic filter."),
    404: problemResponse("Nothing is known of this client identifier: no record, session, credentials or keys."),
    500: problemResponse("A step failed (`decommission-incomplete`); `done` lists the steps completed. Repeat the call."),
    ...adminProblems,
  },
});

devices.openapi(decommissionRoute, async (c) => {
  const { id } = c.req.valid("param");
  const query = c.req.valid("query");
  const dryRun = query.dry_run === "true";
  for (const filter of query.retained ?? []) {
    if (validateTopicFilter(filter) !== undefined) refuse(400, "invalid-topic-filter", `retained: "${filter}" is not a valid topic filter.`, { filter });
  }
  const { filters, skipped } =
    query.retained !== undefined
      ? { filters: [...new Set(query.retained)], skipped: [] as SkippedTemplate[] }
      : decommissionFilters(c.env.DECOMMISSION_RETAINED ?? DEFAULT_DECOMMISSION_RETAINED, id);

  const db = createDb(c.env.DB);
  const session = sessionStub(c.env, id);
  const now = Date.now();
  const [row, view, credentials, keys] = await Promise.all([deviceRow(db, id), session.describe(), credentialCount(db, id), activeKeyCount(db, id)]);
  if (!row && !view && credentials === 0 && keys === 0) {
    refuse(404, "device-not-found", `Nothing is known of client identifier "${id}": no record, session, credentials or keys.`, { client_id: id });
  }
  const onlineInRegistry = row ? presenceOf(row, now).online : false;

  if (dryRun) {
    const retained: Record<string, number> = {};
    for (const filter of filters) retained[filter] = (await clearRetained(c.env, filter, { dryRun: true })).matched;
    return c.json(
      {
        client_id: id,
        dry_run: true,
        session_ended: view !== null,
        was_online: (view?.connected ?? false) || onlineInRegistry,
        subscriptions_removed: view?.subscriptions.length ?? 0,
        messages_dropped: view ? view.queued + view.outboundInFlight : 0,
        will_discarded: view?.willPending ?? false,
        retained_cleared: retained,
        retained_skipped: skipped,
        credentials_revoked: credentials,
        keys_revoked: keys,
        decommissioned_at: null,
      },
      200,
    );
  }

  // Each step in turn; a failure answers what was done, and repeating the call finishes the job.
  const done: Record<string, unknown> = {};
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    try {
      const value = await run();
      done[name] = value;
      return value;
    } catch (e) {
      console.error(`decommission of ${id}: ${name} failed`, e);
      refuse(500, "decommission-incomplete", `Decommissioning "${id}" failed at "${name}": ${e instanceof Error ? e.message : String(e)}. The steps in \`done\` were completed; repeat the call.`, {
        client_id: id,
        failed_step: name,
        done,
      });
    }
  };
  const ended = await step("session", () => session.adminEnd());
  const retained: Record<string, number> = {};
  for (const filter of filters) retained[filter] = (await step(`retained ${filter}`, () => clearRetained(c.env, filter, {}))).cleared;
  const at = Date.now();
  await step("registry", () => presenceStub(c.env, id).decommission(id, at));
  const [deleted, revoked] = await step("credentials and keys", () => revokeAccess(db, id, at));
  forgetCredential(id); // this isolate's cache: the old password stops working now here, elsewhere within AUTH_CACHE_SECONDS
  return c.json(
    {
      client_id: id,
      dry_run: false,
      session_ended: ended.existed,
      was_online: ended.wasConnected || onlineInRegistry,
      subscriptions_removed: ended.subscriptions,
      messages_dropped: ended.messagesDropped,
      will_discarded: ended.willDiscarded,
      retained_cleared: retained,
      retained_skipped: skipped,
      credentials_revoked: deleted,
      keys_revoked: revoked,
      decommissioned_at: iso(at),
    },
    200,
  );
});

// ------------------------------------------------------------------ helpers

function sessionStub(env: Env, clientId: string) {
  return env.SESSIONS.get(env.SESSIONS.idFromName(clientId));
}

async function deviceRow(db: Db, clientId: string): Promise<Device | undefined> {
  return (await db.select().from(schema.devices).where(eq(schema.devices.clientId, clientId)).limit(1))[0];
}

async function credentialCount(db: Db, clientId: string): Promise<number> {
  return db.$count(schema.credentials, eq(schema.credentials.username, clientId));
}

async function activeKeyCount(db: Db, clientId: string): Promise<number> {
  return db.$count(schema.apiKeys, and(eq(schema.apiKeys.deviceId, clientId), isNull(schema.apiKeys.revokedAt)));
}

/** Deletes the device's credentials and revokes its keys in one D1 request; the counts of each. */
async function revokeAccess(db: Db, clientId: string, at: number): Promise<[number, number]> {
  const k = schema.apiKeys;
  const [deleted, revoked] = await db.batch([
    db.delete(schema.credentials).where(eq(schema.credentials.username, clientId)).returning({ username: schema.credentials.username }),
    db.update(k).set({ revokedAt: at }).where(and(eq(k.deviceId, clientId), isNull(k.revokedAt))).returning({ id: k.id }),
  ]);
  return [deleted.length, revoked.length];
}

function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

function deviceJson(r: Device, now: number): z.infer<typeof DeviceSchema> {
  const p = presenceOf(r, now);
  return {
    client_id: r.clientId,
    online: p.online,
    transport: r.transport,
    connected_at: iso(r.connectedAt),
    disconnected_at: iso(p.disconnectedAt),
    last_seen_at: iso(r.lastSeenAt),
    disconnect_reason: p.disconnectReason,
    disconnect_code: p.disconnectCode,
    will_fired: r.willFired,
    protocol_version: r.protocolVersion,
    username: r.username,
    remote_address: r.remoteAddress,
    connection_count: r.connectionCount,
    session_expires_at: iso(r.sessionExpiresAt),
    lease_expires_at: iso(r.leaseExpiresAt),
    decommissioned_at: iso(r.decommissionedAt),
  };
}

function sessionJson(s: SessionView & { route: "fast" | "relay" | null }): z.infer<typeof SessionSchema> {
  return {
    connected: s.connected,
    route: s.route,
    protocol_version: s.protocolVersion,
    session_expiry_interval: s.expiryInterval,
    expires_at: iso(s.expiresAt),
    connected_at: iso(s.connectedAt),
    keep_alive: s.keepAlive ?? null,
    username: s.username ?? null,
    will_pending: s.willPending,
    will_at: iso(s.willAt),
    subscriptions: s.subscriptions.map((sub) => ({
      filter: sub.filter,
      qos: sub.qos,
      no_local: sub.noLocal,
      retain_as_published: sub.retainAsPublished,
      retain_handling: sub.retainHandling,
      subscription_id: sub.subscriptionId ?? null,
    })),
    queued: { messages: s.queued, bytes: s.queuedBytes },
    in_flight: { outbound: s.outboundInFlight, outbound_bytes: s.outboundInFlightBytes, inbound_awaiting_release: s.inboundAwaitingRelease },
  };
}

