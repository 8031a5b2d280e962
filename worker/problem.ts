import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** RFC 9457 problem details. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** Builds a problem+json response. `type` defaults to "about:blank" (title = status phrase). */
export function problemResponse(problem: Problem, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("Content-Type", PROBLEM_CONTENT_TYPE);
  return new Response(JSON.stringify(problem), { status: problem.status, headers: h });
}

/** A refusal with a status and problem details, thrown from any handler. */
export class ProblemException extends HTTPException {
  readonly problem: Problem;
  readonly headers: HeadersInit | undefined;

  constructor(problem: Problem, headers?: HeadersInit) {
    super(problem.status as ContentfulStatusCode, { message: problem.detail });
    this.problem = problem;
    this.headers = headers;
  }

  override getResponse(): Response {
    return problemResponse(this.problem, this.headers);
  }
}

/** Hono `onError`: every error leaves as problem+json; unexpected ones as a bare 500. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof ProblemException) return err.getResponse();
  if (err instanceof HTTPException) {
    return problemResponse({
      type: "about:blank",
      title: statusTitle(err.status),
      status: err.status,
      detail: err.message || statusTitle(err.status),
    });
  }
  console.error(`unhandled error on ${c.req.method} ${c.req.path}:`, err);
  return problemResponse({
    type: "about:blank",
    title: "Internal Server Error",
    status: 500,
    detail: "An unexpected error occurred.",
  });
}

/** Hono `notFound`. */
export function notFound(c: Context): Response {
  return problemResponse({
    type: "about:blank",
    title: "Not Found",
    status: 404,
    detail: `No route for ${c.req.method} ${c.req.path}.`,
  });
}

function statusTitle(status: number): string {
  const titles: Record<number, string> = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    426: "Upgrade Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
  };
  return titles[status] ?? "Error";
}
