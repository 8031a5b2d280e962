import { app } from "./app";
import type { Env } from "./env";

export { AdmissionDO } from "../durable-objects/admission";
export { ConnectionDO } from "../durable-objects/connection";
export { IdempotencyDO } from "../durable-objects/idempotency";
export { MetricsDO } from "../durable-objects/metrics";
export { PresenceDO } from "../durable-objects/presence";
export { SessionDO } from "../durable-objects/session";
export { TopicShardDO } from "../durable-objects/topic-shard";
export type { Env } from "./env";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
