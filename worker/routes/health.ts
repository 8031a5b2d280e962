import { Hono } from "hono";
import type { AppEnv } from "../env";

/** Liveness: answers without touching any binding. */
export const health = new Hono<AppEnv>().get("/", (c) => c.json({ status: "ok" }));
