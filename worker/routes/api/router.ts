import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../env";
import { problemType, ProblemException } from "../../problem";

/**
 * A router of the HTTP API. Requests are validated by the zod schemas of each route (which
 * also describe it in the OpenAPI document); a request that fails them gets a 400
 * problem+json listing every issue, and its handler never runs.
 */
export function apiRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (result.success) return;
      const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
      throw new ProblemException({
        type: problemType("invalid-request"),
        title: "Bad Request",
        status: 400,
        detail: issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; "),
        errors: issues,
      });
    },
  });
}
