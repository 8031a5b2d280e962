import { Hono } from "hono";
import type { AppEnv } from "./env";
import { notFound, onError } from "./problem";
import { api } from "./routes/api";
import { docs } from "./routes/docs";
import { health } from "./routes/health";
import { home } from "./routes/home";
import { metrics } from "./routes/metrics";
import { mqtt } from "./routes/mqtt";

/** The Worker's HTTP surface. Stateless: never holds a connection itself. */
export const app = new Hono<AppEnv>({ strict: false })
  .route("/", home)
  .route("/health", health)
  .route("/metrics", metrics)
  .route("/mqtt", mqtt)
  .route("/api/v1/docs", docs)
  .route("/api/v1", api)
  .notFound(notFound)
  .onError(onError);
