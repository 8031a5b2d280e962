import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env";
import { refuse } from "./problem";

/** The bearer token of a request, or undefined. */
export function bearerToken(request: Request): string | undefined {
  const header = request.headers.get("Authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Compares two secrets in time that does not depend on where they differ. */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  // Hash both first: equal lengths for timingSafeEqual, and the length of the secret is not leaked.
  const [ha, hb] = await Promise.all([a, b].map((s) => crypto.subtle.digest("SHA-256", new TextEncoder().encode(s))));
  return crypto.subtle.timingSafeEqual(ha!, hb!);
}

const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="edge-mqtt"' };

/** Whether the request carries the admin token (ADMIN_TOKEN). */
export async function isAdmin(request: Request, env: AppEnv["Bindings"]): Promise<boolean> {
  const token = bearerToken(request);
  return env.ADMIN_TOKEN !== undefined && env.ADMIN_TOKEN !== "" && token !== undefined && (await sameSecret(token, env.ADMIN_TOKEN));
}

/**
 * Admin endpoints: `Authorization: Bearer <ADMIN_TOKEN>`. Nothing is open by default: without
 * a configured token they answer 503, with a wrong or missing one 401.
 */
export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!c.env.ADMIN_TOKEN) {
    refuse(503, "admin-token-not-configured", "The admin API is off: set the ADMIN_TOKEN secret (`wrangler secret put ADMIN_TOKEN`, or .dev.vars locally).");
  }
  if (!bearerToken(c.req.raw)) refuse(401, "unauthorized", "Send the admin token as `Authorization: Bearer <token>`.", {}, CHALLENGE);
  if (!(await isAdmin(c.req.raw, c.env))) refuse(401, "unauthorized", "The bearer token is not valid.", {}, CHALLENGE);
  await next();
};

export { CHALLENGE as BEARER_CHALLENGE };
