import type { AdmissionDO, AdmitResult } from "../../durable-objects/admission";
import type { Env } from "../env";

/**
 * The header that carries an upgrade's admission token from the Worker to the object that
 * holds the socket (docs/security.md, "Limits"). The Worker deletes any such header a client
 * sent before it sets its own; the object releases the token exactly once with
 * `releaseAdmission` when CONNECT is accepted or refused, or the socket closes before CONNECT.
 */
export const ADMISSION_HEADER = "X-Edge-Mqtt-Admission";

/** Default ADMISSION_SHARDS. */
export const DEFAULT_ADMISSION_SHARDS = 4;

/** ADMISSION_SHARDS from the environment: a whole number, at least 1. */
export function admissionShardsFromEnv(env: Pick<Env, "ADMISSION_SHARDS">): number {
  const n = Number.parseInt(env.ADMISSION_SHARDS ?? "", 10);
  return Number.isFinite(n) && n >= 1 ? Math.min(n, 256) : DEFAULT_ADMISSION_SHARDS;
}

/**
 * The admission shard of a client address: FNV-1a over its text, so an address always meets
 * its own pending connections and failure penalties in one object.
 */
export function admissionShardOf(address: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

export function admissionObjectName(shard: number): string {
  return `admission-${shard}`;
}

function admissionStub(env: Env, shard: number): DurableObjectStub<AdmissionDO> {
  return env.ADMISSION.get(env.ADMISSION.idFromName(admissionObjectName(shard)));
}

/** LIMITS_EXEMPT_ADDRESSES when unset: loopback, where every local client comes from. */
export const DEFAULT_LIMITS_EXEMPT = "127.0.0.1,::1";

let exempt: { source: string; set: ReadonlySet<string> } | undefined;

/**
 * Whether per-address limits (the rate of upgrades, failure penalties) apply to `address`: not
 * to "" (a request without CF-Connecting-IP: internal, e.g. tests through SELF) nor to the
 * addresses of LIMITS_EXEMPT_ADDRESSES (comma-separated; default loopback, since locally every
 * client is 127.0.0.1, which Cloudflare's edge never reports).
 */
export function addressLimited(env: Pick<Env, "LIMITS_EXEMPT_ADDRESSES">, address: string): boolean {
  if (address === "") return false;
  const source = env.LIMITS_EXEMPT_ADDRESSES ?? DEFAULT_LIMITS_EXEMPT;
  if (exempt?.source !== source) {
    exempt = { source, set: new Set(source.split(",").map((a) => a.trim().toLowerCase()).filter((a) => a !== "")) };
  }
  return !exempt.set.has(address.toLowerCase());
}

/** A token names its shard: `<shard>.<the shard's own token>`, so releasing needs nothing but the token. */
function splitToken(token: string, shards: number): { shard: number; local: string } | undefined {
  const dot = token.indexOf(".");
  if (dot <= 0 || dot === token.length - 1) return undefined;
  const shard = Number(token.slice(0, dot));
  return Number.isInteger(shard) && shard >= 0 && shard < shards ? { shard, local: token.slice(dot + 1) } : undefined;
}

/** What the Worker learns from `admit`: a token for ADMISSION_HEADER, or why not and when to try again (seconds). */
export type Admission = { token: string } | { refused: "pending" | "penalty"; retryAfter: number };

/**
 * Asks the address's admission shard for a pending-connection slot (one RPC per upgrade).
 * `undefined` when the admission object could not answer: the upgrade goes on without a token
 * (a lost count errs on allowing; the rate limit per address still holds).
 */
export async function admit(env: Env, address: string): Promise<Admission | undefined> {
  const shards = admissionShardsFromEnv(env);
  const shard = admissionShardOf(address, shards);
  let result: AdmitResult;
  try {
    // An exempt address is bounded like any other, but has no penalty ("" to the shard).
    result = await admissionStub(env, shard).admit(addressLimited(env, address) ? address : "");
  } catch (e) {
    console.error(`admission shard ${shard} did not answer; upgrade admitted without a token:`, e);
    return undefined;
  }
  return "token" in result ? { token: `${shard}.${result.token}` } : result;
}

/**
 * Frees an upgrade's pending-connection slot (fire and forget): its CONNECT was accepted or
 * refused, or its socket closed first. A token that is empty, malformed or already released
 * is ignored; one never released expires at the CONNECT timeout plus a margin.
 */
export function releaseAdmission(env: Env, token: string): void {
  const parts = splitToken(token, admissionShardsFromEnv(env));
  if (parts === undefined) return;
  admissionStub(env, parts.shard)
    .release(parts.local)
    .catch((e: unknown) => console.error("admission token not released (it expires on its own):", e));
}

/**
 * A failed authentication from a client address (fire and forget): the address's next
 * upgrades are refused (429) for AUTH_FAIL_DELAY seconds, doubling with each further failure
 * up to AUTH_FAIL_DELAY_MAX. Nothing for an exempt address (`addressLimited`).
 */
export function recordAuthFailure(env: Env, address: string): void {
  if (!addressLimited(env, address)) return;
  const shard = admissionShardOf(address, admissionShardsFromEnv(env));
  admissionStub(env, shard)
    .failed(address)
    .catch((e: unknown) => console.error("authentication failure not recorded for its address:", e));
}
