import { app } from "./app";
import type { Env } from "./env";

export { ConnectionDO } from "../durable-objects/connection";
export { MetricsDO } from "../durable-objects/metrics";
export { SessionDO } from "../durable-objects/session";
export { TopicShardDO } from "../durable-objects/topic-shard";
export type { Env } from "./env";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
