/**
 * JSON Web Tokens given as the MQTT password, verified with jose: HS256 with JWT_SECRET,
 * RS256 / ES256 against the keys of JWT_JWKS (a JSON Web Key Set given as JSON text: no key
 * is ever fetched, so verification needs no network). Only the algorithms of what is
 * configured are accepted (never `none`, never HS256 when only a JWKS is configured, so a
 * public key cannot be used as an HMAC secret). `exp` and `nbf` are checked with a clock
 * tolerance of CLOCK_TOLERANCE_SECONDS; `aud` and `iss` when JWT_AUDIENCE / JWT_ISSUER are set.
 */
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from "jose";
import type { Env } from "../env";

/** Seconds of clock skew allowed between the token's issuer and the broker for `exp`, `nbf` and `iat`. */
export const CLOCK_TOLERANCE_SECONDS = 30;

type JwtSettings = Pick<Env, "JWT_SECRET" | "JWT_JWKS" | "JWT_AUDIENCE" | "JWT_ISSUER">;

export type TokenVerdict = { ok: true; payload: JWTPayload } | { ok: false; reason: string };

interface Verifier {
  /** What was parsed, to notice a different env (tests) without parsing again. */
  source: string;
  /** Undefined: nothing configured, or the configuration is unusable (`problem`). */
  getKey?: JWTVerifyGetKey;
  algorithms: string[];
  audience?: string;
  issuer?: string;
  problem?: string;
}

/** The verifier of this isolate's settings: parsed once, not per CONNECT. */
let verifier: Verifier | undefined;

/** Whether tokens can be verified at all (JWT_SECRET or JWT_JWKS set). */
export function jwtConfigured(env: JwtSettings): boolean {
  return nonEmpty(env.JWT_SECRET) !== undefined || nonEmpty(env.JWT_JWKS) !== undefined;
}

/** The token's payload once its signature and claims check out, or why it was refused. */
export async function verifyToken(token: string, env: JwtSettings): Promise<TokenVerdict> {
  const v = verifierFor(env);
  if (v.problem !== undefined || v.getKey === undefined) return { ok: false, reason: v.problem ?? "no JWT_SECRET or JWT_JWKS configured" };
  try {
    const { payload } = await jwtVerify(token, v.getKey, {
      algorithms: v.algorithms,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      ...(v.audience !== undefined && { audience: v.audience }),
      ...(v.issuer !== undefined && { issuer: v.issuer }),
    });
    return { ok: true, payload };
  } catch (e) {
    return { ok: false, reason: refusalReason(e) };
  }
}

function verifierFor(env: JwtSettings): Verifier {
  const source = JSON.stringify([env.JWT_SECRET ?? "", env.JWT_JWKS ?? "", env.JWT_AUDIENCE ?? "", env.JWT_ISSUER ?? ""]);
  if (verifier?.source === source) return verifier;
  verifier = buildVerifier(env, source);
  if (verifier.problem !== undefined) console.error(`JWT settings unusable: ${verifier.problem}`);
  return verifier;
}

function buildVerifier(env: JwtSettings, source: string): Verifier {
  // The secret as given (not trimmed): its bytes are the HMAC key.
  const secret = nonEmpty(env.JWT_SECRET) === undefined ? undefined : env.JWT_SECRET;
  const jwksText = nonEmpty(env.JWT_JWKS);
  const audience = nonEmpty(env.JWT_AUDIENCE);
  const issuer = nonEmpty(env.JWT_ISSUER);
  const claims = { ...(audience !== undefined && { audience }), ...(issuer !== undefined && { issuer }) };
  let jwks: JWTVerifyGetKey | undefined;
  if (jwksText !== undefined) {
    try {
      const set = JSON.parse(jwksText) as JSONWebKeySet;
      if (!Array.isArray(set?.keys)) return { source, algorithms: [], ...claims, problem: 'JWT_JWKS must be a JSON Web Key Set: { "keys": [...] }' };
      jwks = createLocalJWKSet(set);
    } catch (e) {
      return { source, algorithms: [], ...claims, problem: `JWT_JWKS is not a valid JSON Web Key Set (${e instanceof Error ? e.message : String(e)})` };
    }
  }
  const key = secret === undefined ? undefined : new TextEncoder().encode(secret);
  const algorithms = [...(key ? ["HS256"] : []), ...(jwks ? ["RS256", "ES256"] : [])];
  if (algorithms.length === 0) return { source, algorithms, ...claims };
  const getKey: JWTVerifyGetKey = (header, token) => {
    // jose has already refused an `alg` outside `algorithms`.
    if (header.alg === "HS256" && key) return key;
    if (jwks) return jwks(header, token);
    throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
  };
  return { source, getKey, algorithms, ...claims };
}

/** A short, safe explanation (for logs and the 5.0 reason string): never the token itself. */
function refusalReason(e: unknown): string {
  if (e instanceof errors.JWTExpired) return "token expired";
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === "nbf") return "token not yet valid";
    if (e.claim === "iat") return "token issued in the future";
    return `token claim "${e.claim}" refused (${e.reason})`;
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return "token signature invalid";
  if (e instanceof errors.JOSEAlgNotAllowed) return "token algorithm not allowed";
  if (e instanceof errors.JWKSNoMatchingKey) return "no configured key matches the token";
  if (e instanceof errors.JWKSMultipleMatchingKeys) return "several configured keys match the token";
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) return "malformed token";
  if (e instanceof errors.JOSEError) return `token refused (${e.code})`;
  return "token refused";
}

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === "" ? undefined : v;
}
