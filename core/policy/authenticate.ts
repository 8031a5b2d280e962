/**
 * Authentication decisions of a CONNECT, pure: which method applies, the CONNACK code of a
 * refusal, and the principal a verified token stands for. The I/O (credentials in D1, token
 * signatures with jose, client certificates from the request) is the objects' and the
 * Worker's; they call these with what they found.
 */
import { ConnectReturnCode311, ReasonCode, type ProtocolVersion } from "../mqtt/packets";
import { base64UrlDecode } from "../topics";
import { topicFilterProblem } from "./acl";
import type { AuthMethod, Principal } from "./types";

/**
 * Why a CONNECT is refused: `bad-credentials` (unknown user name, wrong password, a token
 * that does not verify), `not-authorized` (authenticated, but not for this: a token for
 * another client identifier, a Will it may not publish, anonymous access off), `server-busy`
 * (too many connections not yet authenticated, or an address or client identifier waiting
 * out its penalty after failures).
 */
export type ConnectRefusal = "bad-credentials" | "not-authorized" | "server-busy";

/**
 * The CONNACK code of a refusal: the 5.0 reason code (5.0 section 3.2.2.2: 0x86 Bad User Name
 * or Password, 0x87 Not authorized, 0x89 Server busy), or the 3.1 / 3.1.1 return code
 * (3.1.1 table 3.1: 4 bad user name or password, 5 not authorized, 3 server unavailable).
 */
export function connackRefusal(protocolVersion: ProtocolVersion, refusal: ConnectRefusal): number {
  if (protocolVersion === 5) {
    switch (refusal) {
      case "bad-credentials":
        return ReasonCode.BadUserNameOrPassword;
      case "not-authorized":
        return ReasonCode.NotAuthorized;
      case "server-busy":
        return ReasonCode.ServerBusy;
    }
  }
  switch (refusal) {
    case "bad-credentials":
      return ConnectReturnCode311.BadUserNameOrPassword;
    case "not-authorized":
      return ConnectReturnCode311.NotAuthorized;
    case "server-busy":
      return ConnectReturnCode311.ServerUnavailable;
  }
}

/**
 * How a CONNECT proves who it is, strongest first: a client certificate mapped to a user
 * (the Worker found it) > a password that is a JSON Web Token (when tokens are configured)
 * > a user name and password > nothing (anonymous). A password without a user name that is
 * not a token is `password` too, never anonymous: the host refuses it as bad credentials.
 */
export function authMethodOf(
  connect: { username?: string; password?: Uint8Array },
  options: { jwt: boolean; certificateUser?: string },
): AuthMethod {
  if (options.certificateUser !== undefined) return "certificate";
  if (options.jwt && connect.password !== undefined && looksLikeJwt(connect.password)) return "jwt";
  if (connect.username !== undefined || connect.password !== undefined) return "password";
  return "anonymous";
}

/** The compact serialisation of a JWS (RFC 7515 section 7.1): three base64url parts, a header naming its `alg`. */
export function looksLikeJwt(password: Uint8Array): boolean {
  if (password.byteLength < 5 || password.byteLength > 16 * 1024) return false;
  const text = new TextDecoder().decode(password);
  const parts = text.split(".");
  if (parts.length !== 3 || parts.some((p) => p === "" || !/^[A-Za-z0-9_-]+$/.test(p))) return false;
  const header = base64UrlDecode(parts[0]!);
  if (!header) return false;
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(header));
    return isRecord(parsed) && typeof parsed.alg === "string";
  } catch {
    return false;
  }
}

export interface ClaimNames {
  /** The claim holding the user name (JWT_USERNAME_CLAIM, `sub` by default). */
  usernameClaim: string;
  /** The claim that, when present, must equal the CONNECT's client identifier (JWT_CLIENTID_CLAIM). */
  clientIdClaim: string;
}

/**
 * The principal of a verified token's payload: the user name from its claim (missing or not
 * a non-empty string: bad credentials); the client identifier claim, when present, must be
 * the CONNECT's (else not authorized); an `acl` claim in EMQX's shape `{ "pub": [...],
 * "sub": [...], "all": [...] }` (topic filters, `%c` / `%u` allowed) restricts publish to
 * `pub` and `all`, subscribe and delivery to `sub` and `all` (a malformed one: not
 * authorized, never ignored); `"admin": true` makes an admin (reads `$SYS`).
 */
export function principalFromClaims(payload: Record<string, unknown>, clientId: string, options: ClaimNames): Principal | ConnectRefusal {
  const username = payload[options.usernameClaim];
  if (typeof username !== "string" || username === "") return "bad-credentials";
  const boundTo = payload[options.clientIdClaim];
  if (boundTo !== undefined && boundTo !== clientId) return "not-authorized";
  const principal: Principal = { clientId, username, method: "jwt" };
  if (payload.admin === true) principal.admin = true;
  if (payload.acl !== undefined) {
    const claims = aclClaims(payload.acl);
    if (claims === undefined) return "not-authorized";
    principal.claims = claims;
  }
  return principal;
}

/** `{ pub, sub, all }` as the principal's claims; undefined when malformed. */
function aclClaims(acl: unknown): Principal["claims"] | undefined {
  if (!isRecord(acl)) return undefined;
  const lists: Record<"pub" | "sub" | "all", string[] | undefined> = { pub: undefined, sub: undefined, all: undefined };
  for (const [key, value] of Object.entries(acl)) {
    if (key !== "pub" && key !== "sub" && key !== "all") return undefined;
    if (!Array.isArray(value) || !value.every((f): f is string => typeof f === "string" && topicFilterProblem(f) === undefined)) {
      return undefined;
    }
    lists[key] = value;
  }
  const claims: NonNullable<Principal["claims"]> = {};
  if (lists.pub || lists.all) claims.publish = [...(lists.pub ?? []), ...(lists.all ?? [])];
  if (lists.sub || lists.all) claims.subscribe = [...(lists.sub ?? []), ...(lists.all ?? [])];
  return claims;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
