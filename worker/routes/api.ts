import { Hono } from "hono";
import type { AppEnv } from "../env";

/**
 * HTTP API, mounted at /api/v1. Endpoints (ingest, devices, ...) are added here;
 * until then every path under it answers 404 problem+json.
 */
export const api = new Hono<AppEnv>();
