/**
 * Password hashes for MQTT credentials: PBKDF2-HMAC-SHA-256 through WebCrypto, a random
 * 16-byte salt per credential, compared in constant time. Workers' WebCrypto refuses more
 * than 100,000 PBKDF2 iterations, which is therefore both the default and the ceiling
 * (PBKDF2_ITERATIONS lowers it). The iteration count is stored with each hash
 * (`pbkdf2-sha256:<iterations>`), so changing the setting only affects new credentials.
 */

export const PBKDF2_MAX_ITERATIONS = 100_000;
export const PBKDF2_MIN_ITERATIONS = 1_000;
const SALT_BYTES = 16;
const HASH_BITS = 256;
const ALGORITHM_PREFIX = "pbkdf2-sha256:";

/** What D1 keeps of a password (`credentials` row): base64 salt and hash, and the algorithm with its cost. */
export interface PasswordHash {
  salt: string;
  hash: string;
  /** `pbkdf2-sha256:<iterations>` */
  algorithm: string;
}

/** The iteration count of PBKDF2_ITERATIONS, within what Workers allow. */
export function iterationsFrom(setting: string | undefined): number {
  const n = setting === undefined || setting === "" ? PBKDF2_MAX_ITERATIONS : Number(setting);
  if (!Number.isInteger(n) || n < PBKDF2_MIN_ITERATIONS || n > PBKDF2_MAX_ITERATIONS) {
    throw new Error(`PBKDF2_ITERATIONS must be an integer from ${PBKDF2_MIN_ITERATIONS} to ${PBKDF2_MAX_ITERATIONS}, not "${setting}"`);
  }
  return n;
}

export async function hashPassword(password: string, iterations: number): Promise<PasswordHash> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, iterations);
  return { salt: toBase64(salt), hash: toBase64(hash), algorithm: `${ALGORITHM_PREFIX}${iterations}` };
}

/** Whether `password` is the one `stored` was made from. False for an algorithm this broker does not know. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  if (!stored.algorithm.startsWith(ALGORITHM_PREFIX)) return false;
  const iterations = Number(stored.algorithm.slice(ALGORITHM_PREFIX.length));
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > PBKDF2_MAX_ITERATIONS) return false;
  const expected = fromBase64(stored.hash);
  const actual = await derive(password, fromBase64(stored.salt), iterations);
  return actual.byteLength === expected.byteLength && crypto.subtle.timingSafeEqual(actual, expected);
}

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, HASH_BITS);
  return new Uint8Array(bits);
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
