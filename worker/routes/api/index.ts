import type { AppEnv } from "../../env";
import { apiRouter } from "./router";
import { acl } from "./acl";
import { credentials } from "./credentials";
import { devices } from "./devices";
import { keys } from "./keys";
import { publish } from "./publish";
import { retained } from "./retained";
import { stats } from "./stats";

/**
 * The HTTP API, mounted at /api/v1: one module per resource, each with the zod schemas that
 * validate its requests and describe them in the OpenAPI document (/api/v1/openapi.json).
 */
export const api = apiRouter()
  .route("/publish", publish)
  .route("/devices", devices)
  .route("/retained", retained)
  .route("/keys", keys)
  .route("/stats", stats)
  .route("/credentials", credentials)
  .route("/acl", acl);

api.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
  type: "http",
  scheme: "bearer",
  description: "The admin token (ADMIN_TOKEN), or an API key for the publish endpoints.",
});

api.doc31("/openapi.json", {
  openapi: "3.1.0",
  info: {
    title: "Edge MQTT broker HTTP API",
    version: "1",
    description: "HTTP ingest, device presence, retained messages, API keys, statistics, MQTT credentials and ACL rules.",
  },
  // Paths in this document are relative to the router's mount point, /api/v1.
  servers: [{ url: "/api/v1", description: "This broker" }],
  security: [{ bearer: [] }],
});

export type Api = typeof api;
export type { AppEnv };
