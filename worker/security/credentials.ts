/**
 * MQTT user names and passwords against the `credentials` table of D1, cached per isolate so a
 * reconnect storm neither queries D1 nor hashes PBKDF2 once per connection:
 *
 * - A row is kept for AUTH_CACHE_SECONDS (default 60), an absent user name too, so an
 *   unknown-user storm costs one D1 query per name per isolate per period, not one per CONNECT.
 * - A verified (user name, password) pair is remembered for the same time as a SHA-256 of the
 *   password under a per-isolate random salt, tied to the stored hash it was verified against:
 *   one PBKDF2 per user per isolate per period. A changed password (a new row) or a deleted user
 *   takes effect within the period, at once on the isolate that made the change (`forgetCredential`).
 *
 * Both maps are bounded (CACHE_MAX_ENTRIES, the oldest entry goes first).
 */
import { eq } from "drizzle-orm";
import { createDb, schema } from "../../db";
import { numberVar } from "../../durable-objects/config";
import type { Env } from "../env";
import { verifyPassword, type PasswordHash } from "./passwords";

/** What authentication needs of a credentials row. */
export interface StoredCredential extends PasswordHash {
  /** May read `$SYS/...` (helper column `admin`). */
  admin: boolean;
}

export type PasswordVerdict = { ok: true; admin: boolean } | { ok: false; reason: "unknown-user" | "wrong-password" };

const CACHE_MAX_ENTRIES = 10_000;
const DEFAULT_AUTH_CACHE_SECONDS = 60;

interface CachedRow {
  row: StoredCredential | null;
  loadedAt: number;
}

interface Verified {
  /** The stored hash the password was checked against: a new password makes this entry void. */
  storedHash: string;
  digest: Uint8Array;
  at: number;
}

const rows = new Map<string, CachedRow>();
/** Loads under way, shared by concurrent CONNECTs of one user name. */
const loading = new Map<string, Promise<CachedRow>>();
const verified = new Map<string, Verified>();
/** Generated on first use: Workers allow no random values at global scope. */
let isolateSalt: Uint8Array | undefined;

function ttlMs(env: Env): number {
  return numberVar(env, "AUTH_CACHE_SECONDS", DEFAULT_AUTH_CACHE_SECONDS) * 1000;
}

/** Forget what this isolate knows of a user name (after changing or deleting its credential here). */
export function forgetCredential(username: string): void {
  rows.delete(username);
  verified.delete(username);
}

/** The credential of a user name (null: none), from the cache while fresh, else from D1. */
export async function loadCredential(env: Env, username: string, now = Date.now()): Promise<StoredCredential | null> {
  const hit = rows.get(username);
  if (hit && now - hit.loadedAt < ttlMs(env)) return hit.row;
  let pending = loading.get(username);
  if (!pending) {
    pending = queryCredential(env, username, now).finally(() => loading.delete(username));
    loading.set(username, pending);
  }
  return (await pending).row;
}

async function queryCredential(env: Env, username: string, now: number): Promise<CachedRow> {
  const [row] = await createDb(env.DB).select().from(schema.credentials).where(eq(schema.credentials.username, username));
  const entry: CachedRow = {
    row: row ? { salt: row.salt, hash: row.hash, algorithm: row.algorithm, admin: row.admin === true } : null,
    loadedAt: now,
  };
  remember(rows, username, entry);
  return entry;
}

/**
 * Whether `password` is the password of `username`. PBKDF2 runs only when this isolate has not
 * verified this pair against the same stored hash within AUTH_CACHE_SECONDS; a wrong password
 * is hashed every time (it is never remembered, so guessing stays slow).
 */
export async function checkPassword(env: Env, username: string, password: string, now = Date.now()): Promise<PasswordVerdict> {
  const stored = await loadCredential(env, username, now);
  if (!stored) return { ok: false, reason: "unknown-user" };
  const digest = await quickDigest(password);
  const seen = verified.get(username);
  if (seen && seen.storedHash === stored.hash && now - seen.at < ttlMs(env) && sameBytes(seen.digest, digest)) {
    return { ok: true, admin: stored.admin };
  }
  if (!(await verifyPassword(password, stored))) return { ok: false, reason: "wrong-password" };
  remember(verified, username, { storedHash: stored.hash, digest, at: now });
  return { ok: true, admin: stored.admin };
}

/** SHA-256 of the password under this isolate's salt: what the verified pairs are compared by. */
async function quickDigest(password: string): Promise<Uint8Array> {
  isolateSalt ??= crypto.getRandomValues(new Uint8Array(32));
  const text = new TextEncoder().encode(password);
  const input = new Uint8Array(isolateSalt.byteLength + text.byteLength);
  input.set(isolateSalt);
  input.set(text, isolateSalt.byteLength);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && crypto.subtle.timingSafeEqual(a, b);
}

/** Insert as the newest entry, evicting the oldest past the bound. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  if (map.size >= CACHE_MAX_ENTRIES) map.delete(map.keys().next().value!);
  map.set(key, value);
}
