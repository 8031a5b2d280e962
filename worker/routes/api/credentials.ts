import { createRoute, z } from "@hono/zod-openapi";
import { decodeCursor, encodeCursor } from "./cursor";
import { and, asc, eq, gt, type SQL } from "drizzle-orm";
import { isMqttString } from "../../../core/ingest";
import { createDb, schema } from "../../../db";
import type { Credential } from "../../../db/schema";
import { requireAdmin } from "../../auth";
import { refuse } from "../../problem";
import { forgetCredential } from "../../security/credentials";
import { hashPassword, iterationsFrom } from "../../security/passwords";
import { adminProblems, problemResponse } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/credentials: MQTT CONNECT user names and passwords (admin only). Only a PBKDF2 hash
 * is stored (worker/security/passwords.ts); a password is never echoed, logged or listed.
 * Changes reach new connections within AUTH_CACHE_SECONDS (each isolate caches what it read;
 * the isolate that made the change forgets at once); connections already accepted stay until
 * they reconnect.
 */
export const credentials = apiRouter();
credentials.use("*", requireAdmin);

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
export const USERNAME_MAX_CHARS = 256;
/**
 * 8 characters: the floor NIST SP 800-63B sets for secrets a person chooses; shorter ones fall
 * to an offline guess at PBKDF2's cost in hours. 1,024: far above any real password, and a
 * bound on what one request makes the Worker hash.
 */
export const PASSWORD_MIN_CHARS = 8;
export const PASSWORD_MAX_CHARS = 1024;

/**
 * Why `name` cannot be a user name, or undefined. Besides being an MQTT UTF-8 string
 * [MQTT-1.5.4-1] [MQTT-1.5.4-2]: no control characters (U+0000..U+001F, U+007F..U+009F, which
 * the specification says SHOULD NOT appear [MQTT-1.5.4-3] and which hide in logs), and none
 * of `+ # /`: a user name is put into topic filters for `%u` in ACL rules, where these would
 * change what the filter matches (a user `+` would get every user's `users/%u/#`; Mosquitto
 * refuses `+` and `#` there for the same reason).
 */
export function usernameProblem(name: string): string | undefined {
  if (name.length < 1 || name.length > USERNAME_MAX_CHARS) return `must be 1 to ${USERNAME_MAX_CHARS} characters.`;
  if (!isMqttString(name)) return "is not a valid MQTT UTF-8 string (a lone surrogate or U+0000).";
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return "must not contain control characters.";
  if (/[+#/]/.test(name)) return "must not contain +, # or / (it stands for %u in ACL topic filters).";
  return undefined;
}

const Username = z
  .string()
  .superRefine((v, ctx) => {
    const problem = usernameProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: `username ${problem}` });
  })
  .openapi({ example: "sensor-17", description: `1 to ${USERNAME_MAX_CHARS} characters; no control characters, no + # /.` });

const Time = z.string().openapi({ format: "date-time", example: "2026-12-04T02:45:40.000Z" });

const CredentialSchema = z
  .object({
    username: z.string(),
    admin: z.boolean().openapi({ description: "May subscribe to and read $SYS/# (whatever the ACL rules say)." }),
    algorithm: z.string().openapi({ example: "pbkdf2-sha256:100000", description: "How the password is hashed (with its iteration count)." }),
    created_at: Time,
  })
  .openapi("Credential");

const NewCredential = z
  .strictObject({
    username: Username,
    password: z
      .string()
      .min(PASSWORD_MIN_CHARS)
      .max(PASSWORD_MAX_CHARS)
      .openapi({
        format: "password",
        description: `${PASSWORD_MIN_CHARS} to ${PASSWORD_MAX_CHARS} characters (the CONNECT's password field as UTF-8). Never echoed or logged.`,
      }),
    admin: z.boolean().optional().openapi({ description: "Default false for a new user; when replacing a password and absent, the user's flag is kept." }),
  })
  .openapi("NewCredential");

const CredentialList = z
  .object({
    items: z.array(CredentialSchema),
    next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  })
  .openapi("CredentialList");

function view(row: Pick<Credential, "username" | "admin" | "algorithm" | "createdAt">): z.infer<typeof CredentialSchema> {
  return { username: row.username, admin: row.admin, algorithm: row.algorithm, created_at: new Date(row.createdAt).toISOString() };
}

credentials.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Credentials"],
    summary: "Create a user, or replace a user's password",
    description:
      "Stores a salted PBKDF2-SHA-256 hash (PBKDF2_ITERATIONS) of the password for MQTT CONNECTs with this user name. " +
      "201 for a new user; 200 when it replaced an existing user's password (the old password stops working within AUTH_CACHE_SECONDS; live connections stay).",
    request: { body: { required: true, content: { "application/json": { schema: NewCredential } } } },
    responses: {
      201: { description: "A new user.", content: { "application/json": { schema: CredentialSchema } } },
      200: { description: "The existing user's password (and admin flag, when given) replaced.", content: { "application/json": { schema: CredentialSchema } } },
      400: problemResponse("A bad user name or password (length, characters), or an unknown field."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const stored = await hashPassword(body.password, iterationsFrom(c.env.PBKDF2_ITERATIONS));
    const db = createDb(c.env.DB);
    const t = schema.credentials;
    const fields = { username: t.username, admin: t.admin, algorithm: t.algorithm, createdAt: t.createdAt };
    // Insert, else replace: two statements that need no transaction (a concurrent delete
    // between them makes the update miss, and the loop inserts again).
    for (let attempt = 0; attempt < 3; attempt++) {
      const [created] = await db
        .insert(t)
        .values({ username: body.username, ...stored, admin: body.admin ?? false, createdAt: Date.now() })
        .onConflictDoNothing()
        .returning(fields);
      if (created) {
        forgetCredential(body.username);
        return c.json(view(created), 201);
      }
      const [replaced] = await db
        .update(t)
        .set({ ...stored, ...(body.admin !== undefined && { admin: body.admin }) })
        .where(eq(t.username, body.username))
        .returning(fields);
      if (replaced) {
        forgetCredential(body.username);
        return c.json(view(replaced), 200);
      }
    }
    throw new Error("credentials: the user was created and deleted concurrently three times");
  },
);

credentials.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Credentials"],
    summary: "List users (never their passwords or hashes)",
    description: "In user name order (byte order of UTF-8), a page at a time.",
    request: {
      query: z.object({
        cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page." }),
        limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(DEFAULT_LIMIT),
      }),
    },
    responses: {
      200: { description: "A page of users.", content: { "application/json": { schema: CredentialList } } },
      400: problemResponse("A bad limit or cursor."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const { cursor, limit } = c.req.valid("query");
    const t = schema.credentials;
    const where: SQL[] = [];
    if (cursor !== undefined) where.push(gt(t.username, decodeCursor(cursor)));
    const rows = await createDb(c.env.DB)
      .select({ username: t.username, admin: t.admin, algorithm: t.algorithm, createdAt: t.createdAt })
      .from(t)
      .where(and(...where))
      .orderBy(asc(t.username))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const next = rows.length > limit ? encodeCursor(page[page.length - 1]!.username) : null;
    return c.json({ items: page.map(view), next_cursor: next }, 200);
  },
);

credentials.openapi(
  createRoute({
    method: "delete",
    path: "/{username}",
    tags: ["Credentials"],
    summary: "Delete a user",
    description:
      "New CONNECTs with this user name are refused (bad user name or password) within AUTH_CACHE_SECONDS, once every isolate's cache has expired. " +
      "Connections already accepted stay until they reconnect; to end one now, `POST /api/v1/devices/<id>/disconnect`. ACL rules naming the user are kept (delete them with `DELETE /api/v1/acl/<id>`).",
    request: { params: z.object({ username: z.string().openapi({ example: "sensor-17" }) }) },
    responses: {
      204: { description: "Deleted." },
      404: problemResponse("No such user (credential-not-found)."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const { username } = c.req.valid("param");
    const t = schema.credentials;
    const deleted = await createDb(c.env.DB).delete(t).where(eq(t.username, username)).returning({ username: t.username });
    forgetCredential(username);
    if (deleted.length === 0) refuse(404, "credential-not-found", `No user ${JSON.stringify(username)}.`);
    return c.body(null, 204);
  },
);

