import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** RFC 9457 problem details, with extension members where a refusal has more to say. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** Extension members (RFC 9457 3.2), e.g. `errors` for a request that failed validation. */
  [extension: string]: unknown;
}

/** A problem type of this API: `urn:edge-mqtt:problem:<name>`. */
export function problemType(name: string): string {
  return `urn:edge-mqtt:problem:${name}`;
}

/** Throws a problem+json refusal (400 bad input, 403 out of scope, 413 too large, ...). */
export function refuse(status: number, name: string, detail: string, extra: Record<string, unknown> = {}, headers?: HeadersInit): never {
  throw new ProblemException({ type: problemType(name), title: statusTitle(status), status, detail, ...extra }, headers);
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

export function statusTitle(status: number): string {
  const titles: Record<number, string> = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    413: "Content Too Large",
    426: "Upgrade Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
  };
  return titles[status] ?? "Error";
}
