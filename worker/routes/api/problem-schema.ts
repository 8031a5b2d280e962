import { z } from "@hono/zod-openapi";
import { PROBLEM_CONTENT_TYPE } from "../../problem";

/** RFC 9457 problem details, as every refusal of the API is answered (worker/problem.ts). */
export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: "urn:edge-mqtt:problem:invalid-request" }),
    title: z.string().openapi({ example: "Bad Request" }),
    status: z.number().int().openapi({ example: 400 }),
    detail: z.string(),
  })
  .catchall(z.unknown())
  .openapi("Problem", { description: "RFC 9457 problem details; extension members where a refusal has more to say." });

/** An OpenAPI response entry for a problem+json refusal. */
export function problemResponse(description: string) {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } } };
}

/** The refusals of every admin endpoint: 401 (no or a wrong admin token) and 503 (no ADMIN_TOKEN set). */
export const adminProblems = {
  401: problemResponse("No admin token, or a wrong one (`Authorization: Bearer <ADMIN_TOKEN>`)."),
  503: problemResponse("The admin API is off: ADMIN_TOKEN is not set."),
} as const;
