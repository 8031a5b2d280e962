import { createRoute, z } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import { scopeProblem } from "../../../core/ingest";
import { createDb, schema } from "../../../db";
import type { ApiKey } from "../../../db/schema";
import { forgetApiKey, newApiKey, parseScopes } from "../../api-keys";
import { requireAdmin } from "../../auth";
import { refuse } from "../../problem";
import { adminProblems, problemResponse } from "./problem-schema";
import { apiRouter } from "./router";

/**
 * /api/v1/keys: API keys for HTTP ingest (admin only). A key is shown once, at creation;
 * only the SHA-256 of its secret is stored. Revoking takes effect within
 * API_KEY_CACHE_SECONDS on every Worker isolate (at once on the isolate that revoked it).
 */
export const keys = apiRouter();
keys.use("*", requireAdmin);

const Time = z.string().nullable().openapi({ format: "date-time", example: "2026-12-03T21:45:40.000Z" });
const Scopes = z
  .array(z.string())
  .min(1)
  .max(100)
  .openapi({ description: "Topic filters (+ and # allowed) the key may publish to.", example: ["devices/gw-1/#", "sites/berlin/+/readings"] });

const ApiKeySchema = z
  .object({
    id: z.string().openapi({ example: "3f2a9c0e1b4d5a6f" }),
    name: z.string(),
    scopes: z.array(z.string()),
    device: z.string().nullable().openapi({ description: "The device the key was issued to: its messages come from that device." }),
    created_at: Time,
    last_used_at: Time.openapi({ description: "Updated at most once per API_KEY_CACHE_SECONDS per isolate." }),
    revoked_at: Time,
  })
  .openapi("ApiKey");

const NewApiKey = z
  .strictObject({
    name: z.string().min(1).max(200).openapi({ example: "gateway berlin-1" }),
    scopes: Scopes,
    device: z.string().min(1).max(65535).optional().openapi({ description: "Issue the key to one device (revoked when it is decommissioned)." }),
  })
  .openapi("NewApiKey");

const CreatedApiKey = ApiKeySchema.extend({
  key: z.string().openapi({ description: "The key, shown this once: `Authorization: Bearer <key>`.", example: "emk_3f2a9c0e1b4d5a6f_Vq0..." }),
}).openapi("CreatedApiKey");

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function view(row: ApiKey): z.infer<typeof ApiKeySchema> {
  return {
    id: row.id,
    name: row.name,
    scopes: parseScopes(row.scopes),
    device: row.deviceId,
    created_at: iso(row.createdAt),
    last_used_at: iso(row.lastUsedAt),
    revoked_at: iso(row.revokedAt),
  };
}

keys.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["API keys"],
    summary: "Create an API key (shown once)",
    request: { body: { required: true, content: { "application/json": { schema: NewApiKey } } } },
    responses: {
      201: { description: "The key, with its secret (never shown again).", content: { "application/json": { schema: CreatedApiKey } } },
      400: problemResponse("A scope is not a valid topic filter, or a field is missing."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const problems = body.scopes.map((s, index) => ({ index, problem: scopeProblem(s) })).filter((p) => p.problem !== undefined);
    if (problems.length > 0) {
      refuse(400, "invalid-scope", problems.map((p) => `scopes.${p.index}: ${p.problem}`).join("; "), {
        errors: problems.map((p) => ({ path: `scopes.${p.index}`, message: p.problem })),
      });
    }
    const { id, key, hash } = await newApiKey();
    const scopes = [...new Set(body.scopes)];
    const row: ApiKey = {
      id,
      name: body.name,
      hash,
      scopes: JSON.stringify(scopes),
      deviceId: body.device ?? null,
      createdAt: Date.now(),
      lastUsedAt: null,
      revokedAt: null,
    };
    await createDb(c.env.DB).insert(schema.apiKeys).values(row);
    return c.json({ ...view(row), key }, 201);
  },
);

keys.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["API keys"],
    summary: "List API keys (never their secrets or hashes)",
    responses: {
      200: { description: "Every key, oldest first, revoked ones included.", content: { "application/json": { schema: z.object({ keys: z.array(ApiKeySchema) }).openapi("ApiKeyList") } } },
      ...adminProblems,
    },
  }),
  async (c) => {
    const rows = await createDb(c.env.DB).select().from(schema.apiKeys).orderBy(asc(schema.apiKeys.createdAt), asc(schema.apiKeys.id));
    return c.json({ keys: rows.map(view) }, 200);
  },
);

keys.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags: ["API keys"],
    summary: "Revoke an API key",
    request: { params: z.object({ id: z.string().openapi({ example: "3f2a9c0e1b4d5a6f" }) }) },
    responses: {
      200: { description: "Revoked (or already revoked: its first revocation time).", content: { "application/json": { schema: ApiKeySchema } } },
      404: problemResponse("No such key."),
      ...adminProblems,
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const db = createDb(c.env.DB);
    const [row] = await db.select().from(schema.apiKeys).where(eq(schema.apiKeys.id, id));
    if (!row) refuse(404, "key-not-found", `No API key ${JSON.stringify(id)}.`);
    if (row.revokedAt === null) {
      row.revokedAt = Date.now();
      await db.update(schema.apiKeys).set({ revokedAt: row.revokedAt }).where(eq(schema.apiKeys.id, id));
    }
    forgetApiKey(id);
    return c.json(view(row), 200);
  },
);
