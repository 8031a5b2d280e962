/**
 * The dashboard's only door to the broker: the HTTP API under /api/v1 (and /metrics), with the
 * admin token from session storage. The token lives only in this tab's sessionStorage: never in
 * a URL, never in a cookie (so no other origin's script can make the browser send it).
 */

const TOKEN_KEY = "edge-mqtt-admin-token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string): void {
  sessionStorage.setItem(TOKEN_KEY, value);
}

/** Why the shell last went back to the login page (shown there), null after a plain logout. */
export interface LogoutDetail {
  reason: string | null;
}

/** Forgets the token and returns to the login page; `reason` is shown there (e.g. a 401). */
export function logout(reason: string | null = null): void {
  sessionStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new CustomEvent<LogoutDetail>("edge-mqtt:logout", { detail: { reason } }));
}

/** An RFC 9457 problem the API answered with (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly problem: Record<string, unknown> = {},
  ) {
    super(detail ? `${title}: ${detail}` : title);
  }
}

export type Method = "GET" | "POST" | "PUT" | "DELETE";

/**
 * Calls the API with the admin token. JSON in, JSON out (undefined for 204). A 401 logs out
 * (the token is wrong or was changed) and throws.
 */
export async function api<T = unknown>(method: Method, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const t = token();
  let res: Response;
  try {
    res = await fetch(path.startsWith("/") ? path : `/api/v1/${path}`, {
      method,
      headers: {
        Accept: "application/json",
        ...(t !== null && { Authorization: `Bearer ${t}` }),
        ...(body !== undefined && { "Content-Type": "application/json" }),
        ...headers,
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (e) {
    throw new ApiError(0, "Network error", e instanceof Error ? e.message : String(e));
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const p = (json ?? {}) as Record<string, unknown>;
    const error = new ApiError(res.status, String(p.title ?? res.statusText), String(p.detail ?? text.slice(0, 200)), p);
    if (res.status === 401) logout(`The broker refused the admin token (401: ${error.message}). Log in again.`);
    throw error;
  }
  return json as T;
}

/** Checks a token against an admin endpoint without storing it. */
export async function tokenWorks(candidate: string): Promise<boolean | ApiError> {
  const res = await fetch("/api/v1/stats", { headers: { Authorization: `Bearer ${candidate}`, Accept: "application/json" } }).catch(() => undefined);
  if (!res) return new ApiError(0, "Network error", "the broker did not answer");
  if (res.ok) return true;
  if (res.status === 401) return false;
  const p = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  return new ApiError(res.status, String(p.title ?? res.statusText), String(p.detail ?? ""), p);
}
