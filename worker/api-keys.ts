/**
 * HTTP API keys: issuing, hashing, verifying (with a per-isolate cache) and the per-key
 * publish rate. A key is `emk_<id>_<secret>`: the id finds the row, the secret (32 random
 * bytes, base64url) is checked against its SHA-256. A secret of 256 random bits cannot be
 * guessed or brute-forced from its hash, so a slow password hash (PBKDF2, as credentials
 * use) would only add latency to every request; the comparison runs in constant time.
 */
import { eq } from "drizzle-orm";
import { TokenBucket } from "../core/policy/rate";
import { createDb, schema } from "../db";
import { numberVar } from "../durable-objects/config";
import type { Env } from "./env";

export const KEY_PREFIX = "emk_";

/** A verified caller of the publish endpoints. */
export interface Publisher {
  /** `admin` for the admin token, else the key's id. */
  id: string;
  /** Topic filters it may publish to; undefined: anywhere (the admin token). */
  scopes?: string[];
  /** The device a key was issued to. */
  device?: string;
  /** `origin` of its messages when they name no device. */
  origin: string;
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function hex(buffer: ArrayBuffer): string {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A new key: its id, the whole key (shown once) and the hash to store. */
export async function newApiKey(): Promise<{ id: string; key: string; hash: string }> {
  const id = hex(crypto.getRandomValues(new Uint8Array(8)).buffer);
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { id, key: `${KEY_PREFIX}${id}_${secret}`, hash: await hashSecret(secret) };
}

export async function hashSecret(secret: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)));
}

/** `emk_<16 hex>_<secret>` split into id and secret, or undefined. */
export function parseApiKey(token: string): { id: string; secret: string } | undefined {
  const m = /^emk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

interface CachedKey {
  /** Null: no such key, or revoked (cached too, so a bad key cannot hammer D1). */
  row: { hash: string; scopes: string[]; deviceId: string | null } | null;
  loadedAt: number;
}

/**
 * Keys read from D1, per isolate, for API_KEY_CACHE_SECONDS: a revocation reaches every
 * isolate within that time (bounded staleness), and D1 is read at most once per key per
 * isolate per period, whatever the request rate. Bounded in entries.
 */
const cache = new Map<string, CachedKey>();
const CACHE_MAX_ENTRIES = 10_000;

/** Forget what this isolate knows of a key (after revoking it here). */
export function forgetApiKey(id: string): void {
  cache.delete(id);
}

async function loadKey(env: Env, id: string, now: number, waitUntil: (p: Promise<unknown>) => void): Promise<CachedKey> {
  const ttl = numberVar(env, "API_KEY_CACHE_SECONDS", 10) * 1000;
  const hit = cache.get(id);
  if (hit && now - hit.loadedAt < ttl) return hit;
  const db = createDb(env.DB);
  const [row] = await db
    .select({ hash: schema.apiKeys.hash, scopes: schema.apiKeys.scopes, deviceId: schema.apiKeys.deviceId, revokedAt: schema.apiKeys.revokedAt })
    .from(schema.apiKeys)
    .where(eq(schema.apiKeys.id, id));
  const entry: CachedKey = {
    row: row && row.revokedAt === null ? { hash: row.hash, scopes: parseScopes(row.scopes), deviceId: row.deviceId } : null,
    loadedAt: now,
  };
  if (entry.row) {
    // last_used_at: written at most once per cache period per isolate, off the answer's path.
    waitUntil(
      db
        .update(schema.apiKeys)
        .set({ lastUsedAt: now })
        .where(eq(schema.apiKeys.id, id))
        .then(() => undefined, (e: unknown) => console.error("api key last_used_at update failed", e)),
    );
  }
  cache.delete(id);
  if (cache.size >= CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  cache.set(id, entry);
  return entry;
}

export function parseScopes(json: string): string[] {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
  } catch {
    return [];
  }
}

/** The key a bearer token stands for, or undefined (unknown, revoked, malformed). */
export async function verifyApiKey(env: Env, token: string, waitUntil: (p: Promise<unknown>) => void, now = Date.now()): Promise<Publisher | undefined> {
  const parsed = parseApiKey(token);
  if (!parsed) return undefined;
  const entry = await loadKey(env, parsed.id, now, waitUntil);
  if (!entry.row) return undefined;
  const presented = new TextEncoder().encode(await hashSecret(parsed.secret));
  const stored = new TextEncoder().encode(entry.row.hash);
  if (presented.byteLength !== stored.byteLength || !crypto.subtle.timingSafeEqual(presented, stored)) return undefined;
  return {
    id: parsed.id,
    scopes: entry.row.scopes,
    ...(entry.row.deviceId !== null && { device: entry.row.deviceId }),
    origin: `http:${parsed.id}`,
  };
}

// ------------------------------------------------------------------------------ rate

/**
 * Publish requests per key per second (HTTP_PUBLISH_RATE), as a token bucket per key in
 * each Worker isolate holding one second of the rate. Per isolate, so it costs no call and
 * no write; the price is precision: a key whose requests land on N isolates gets up to N
 * times the rate (docs/ingest.md). Bounded in entries like the key cache.
 */
const buckets = new Map<string, { bucket: TokenBucket; rate: number }>();

/** Undefined when the request may go, else the seconds to wait (Retry-After). */
export function takePublishToken(env: Env, publisherId: string, now = Date.now()): number | undefined {
  const rate = numberVar(env, "HTTP_PUBLISH_RATE", 100);
  if (rate <= 0) return undefined;
  let entry = buckets.get(publisherId);
  if (!entry || entry.rate !== rate) {
    if (buckets.size >= CACHE_MAX_ENTRIES) buckets.delete(buckets.keys().next().value!);
    entry = { bucket: new TokenBucket(rate, Math.max(1, rate), now), rate };
    buckets.set(publisherId, entry);
  }
  if (entry.bucket.take(1, now)) return undefined;
  // Fewer than one token left: one more arrives within 1/rate s.
  return Math.max(1, Math.ceil(1 / rate));
}

