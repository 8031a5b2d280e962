import { DurableObject } from "cloudflare:workers";
import type { Env } from "../worker/env";

/** One HTTP Idempotency-Key (being built: issue 11). */
export class IdempotencyDO extends DurableObject<Env> {}
