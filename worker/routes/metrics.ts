import { Hono } from "hono";
import type { AppEnv } from "../env";

/**
 * Broker counters in the units Cloudflare bills, totalled over every object since the
 * metrics object started: requests, incoming WebSocket messages, SQLite rows read and
 * written, MQTT messages published and delivered. Objects report at most once per second.
 */
export const metrics = new Hono<AppEnv>().get("/", async (c) => {
  const stub = c.env.METRICS.get(c.env.METRICS.idFromName("metrics"));
  return c.json(await stub.snapshot());
});
