/**
 * Who a CONNECT is, decided before anything of its client's session is touched. The methods,
 * in order (docs/security.md):
 *
 * 1. a client certificate that CLIENT_CERT_USERS maps to a user name (the Worker found it at
 *    the upgrade; the CONNECT's user name and password are then not looked at);
 * 2. a password that is a JSON Web Token, when JWT_SECRET or JWT_JWKS is set (the user name,
 *    the client identifier and allowed topics come from its claims);
 * 3. a user name and password against the credentials of D1 (an unknown user name is refused,
 *    whatever ALLOW_ANONYMOUS says);
 * 4. no user name: anonymous, only while ALLOW_ANONYMOUS is "true".
 *
 * The I/O (D1, PBKDF2, token signatures) is here; the decisions are core/policy/authenticate.ts.
 */
import { authMethodOf, principalFromClaims, type ConnectRefusal } from "../../core/policy/authenticate";
import type { Principal } from "../../core/policy/types";
import type { ConnectPacket } from "../../core/mqtt/packets";
import type { Env } from "../env";
import { checkPassword, loadCredential } from "./credentials";
import { jwtConfigured, verifyToken } from "./jwt";

export type Authentication =
  | { ok: true; principal: Principal }
  | {
      ok: false;
      refusal: ConnectRefusal;
      /** For the log and the 5.0 reason string; names no secret. */
      reason: string;
      /** Refused for its credentials (a wrong password, a bad token, an unknown user): counted as an authentication failure. */
      credentials: boolean;
    };

export interface AuthenticateOptions {
  /** The user name of the verified client certificate, from the Worker (CERT_USER_HEADER). */
  certificateUser?: string;
  remoteAddress?: string;
}

/** Authenticate a CONNECT whose client identifier is final (assigned already if it was empty). */
export async function authenticate(
  env: Env,
  connect: Pick<ConnectPacket, "clientId" | "username" | "password">,
  options: AuthenticateOptions = {},
): Promise<Authentication> {
  const { clientId } = connect;
  const method = authMethodOf(connect, {
    jwt: jwtConfigured(env),
    ...(options.certificateUser !== undefined && { certificateUser: options.certificateUser }),
  });
  switch (method) {
    case "certificate": {
      const username = options.certificateUser!;
      // A certificate user may also have a credential marked admin.
      const credential = await loadCredential(env, username);
      return { ok: true, principal: { clientId, username, method, ...(credential?.admin && { admin: true }) } };
    }
    case "jwt": {
      const verdict = await verifyToken(new TextDecoder().decode(connect.password), env);
      if (!verdict.ok) return refused("bad-credentials", verdict.reason, true);
      const principal = principalFromClaims(verdict.payload as Record<string, unknown>, clientId, {
        usernameClaim: env.JWT_USERNAME_CLAIM || "sub",
        clientIdClaim: env.JWT_CLIENTID_CLAIM || "client_id",
      });
      if (typeof principal === "string") {
        return refused(principal, principal === "bad-credentials" ? "token names no user" : "token not valid for this client identifier", true);
      }
      return { ok: true, principal };
    }
    case "password": {
      const username = connect.username;
      const password = utf8(connect.password);
      // A password without a user name (5.0 allows it) names no credential.
      if (username === undefined || password === undefined) return refused("bad-credentials", "bad user name or password", true);
      const verdict = await checkPassword(env, username, password);
      // Unknown user and wrong password look alike to the client.
      if (!verdict.ok) return refused("bad-credentials", "bad user name or password", true);
      return { ok: true, principal: { clientId, username, method, ...(verdict.admin && { admin: true }) } };
    }
    case "anonymous":
      if (env.ALLOW_ANONYMOUS === "true") return { ok: true, principal: { clientId, method } };
      return refused("not-authorized", "anonymous access is off", false);
    default:
      return refused("not-authorized", `authentication method ${method} not accepted on CONNECT`, false);
  }
}

function refused(refusal: ConnectRefusal, reason: string, credentials: boolean): Authentication {
  return { ok: false, refusal, reason, credentials };
}

/** The password as text; undefined when there is none or it is not UTF-8 (no stored password can match it). */
function utf8(password: Uint8Array | undefined): string | undefined {
  if (password === undefined) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(password);
  } catch {
    return undefined;
  }
}
