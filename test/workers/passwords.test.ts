/**
 * Password hashes (worker/security/passwords.ts) and the credentials cache over D1
 * (worker/security/credentials.ts), inside workerd: PBKDF2 through Workers' WebCrypto.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createDb, schema } from "../../db";
import { checkPassword, forgetCredential, loadCredential } from "../../worker/security/credentials";
import { hashPassword, iterationsFrom, PBKDF2_MAX_ITERATIONS, verifyPassword } from "../../worker/security/passwords";

let counter = 0;
const unique = (prefix: string): string => `${prefix}-${counter++}-${crypto.randomUUID().slice(0, 8)}`;

/** Few iterations: the tests are about behaviour, not cost (the minimum the setting allows). */
const FAST = 1_000;

async function addCredential(username: string, password: string, admin = false): Promise<void> {
  const hash = await hashPassword(password, FAST);
  await createDb(env.DB).insert(schema.credentials).values({ username, ...hash, admin, createdAt: Date.now() });
}

afterEach(() => vi.restoreAllMocks());

describe("PBKDF2 password hashes", () => {
  it("verifies the password a hash was made from, with a random salt each time", async () => {
    const a = await hashPassword("correct horse", FAST);
    const b = await hashPassword("correct horse", FAST);
    expect(a.algorithm).toBe(`pbkdf2-sha256:${FAST}`);
    expect(a.salt).not.toBe(b.salt);
    expect(a.hash).not.toBe(b.hash);
    expect(atob(a.hash)).toHaveLength(32);
    expect(await verifyPassword("correct horse", a)).toBe(true);
    expect(await verifyPassword("correct horse", b)).toBe(true);
  });

  it("refuses a wrong password, an empty one, one differing in case or by a trailing byte", async () => {
    const stored = await hashPassword("Secret-1", FAST);
    for (const wrong of ["Secret-2", "", "secret-1", "Secret-1 ", "Secret-"]) {
      expect(await verifyPassword(wrong, stored), JSON.stringify(wrong)).toBe(false);
    }
  });

  it("refuses an unknown algorithm or an iteration count out of range, never throwing", async () => {
    const stored = await hashPassword("pw", FAST);
    expect(await verifyPassword("pw", { ...stored, algorithm: "bcrypt" })).toBe(false);
    expect(await verifyPassword("pw", { ...stored, algorithm: "pbkdf2-sha1:1000" })).toBe(false);
    expect(await verifyPassword("pw", { ...stored, algorithm: "pbkdf2-sha256:abc" })).toBe(false);
    expect(await verifyPassword("pw", { ...stored, algorithm: `pbkdf2-sha256:${PBKDF2_MAX_ITERATIONS + 1}` })).toBe(false);
    // The same hash checked with another iteration count does not match.
    expect(await verifyPassword("pw", { ...stored, algorithm: "pbkdf2-sha256:1001" })).toBe(false);
  });

  it("works at the default (and highest) iteration count Workers allow", async () => {
    const stored = await hashPassword("pw", iterationsFrom(undefined));
    expect(stored.algorithm).toBe("pbkdf2-sha256:100000");
    expect(await verifyPassword("pw", stored)).toBe(true);
  });

  it("reads PBKDF2_ITERATIONS within what Workers allow", () => {
    expect(iterationsFrom("")).toBe(PBKDF2_MAX_ITERATIONS);
    expect(iterationsFrom("50000")).toBe(50_000);
    for (const bad of ["999", "100001", "1e9", "abc", "10.5"]) expect(() => iterationsFrom(bad), bad).toThrow(/PBKDF2_ITERATIONS/);
  });
});

describe("credentials from D1, cached per isolate", () => {
  it("accepts the right password, refuses a wrong one and an unknown user", async () => {
    const user = unique("alice");
    await addCredential(user, "right", true);
    expect(await checkPassword(env, user, "right")).toEqual({ ok: true, admin: true });
    expect(await checkPassword(env, user, "wrong")).toEqual({ ok: false, reason: "wrong-password" });
    expect(await checkPassword(env, unique("nobody"), "right")).toEqual({ ok: false, reason: "unknown-user" });
  });

  it("hashes a verified pair once per period; a wrong password every time", async () => {
    const user = unique("storm");
    await addCredential(user, "pw");
    const derive = vi.spyOn(crypto.subtle, "deriveBits");
    for (let i = 0; i < 5; i++) expect((await checkPassword(env, user, "pw")).ok).toBe(true);
    expect(derive).toHaveBeenCalledTimes(1);
    for (let i = 0; i < 3; i++) expect((await checkPassword(env, user, "guess")).ok).toBe(false);
    expect(derive).toHaveBeenCalledTimes(4);
    // Past AUTH_CACHE_SECONDS the password is hashed again.
    const later = Date.now() + 61_000;
    expect((await checkPassword(env, user, "pw", later)).ok).toBe(true);
    expect(derive).toHaveBeenCalledTimes(5);
  });

  it("queries D1 once per user name per period, absent user names too, concurrent lookups sharing one query", async () => {
    const ghost = unique("ghost");
    const prepare = vi.spyOn(env.DB, "prepare");
    const answers = await Promise.all([1, 2, 3, 4].map(() => loadCredential(env, ghost)));
    expect(answers).toEqual([null, null, null, null]);
    expect(await loadCredential(env, ghost)).toBeNull();
    expect(prepare).toHaveBeenCalledTimes(1);
    // Created meanwhile: seen once the cached absence is older than AUTH_CACHE_SECONDS (or forgotten here).
    await addCredential(ghost, "pw");
    expect(await loadCredential(env, ghost)).toBeNull();
    expect(await loadCredential(env, ghost, Date.now() + 61_000)).not.toBeNull();
  });

  it("a changed or deleted credential takes effect once forgotten (the API's isolate) or after the period", async () => {
    const user = unique("rotate");
    await addCredential(user, "old");
    expect((await checkPassword(env, user, "old")).ok).toBe(true);
    await env.DB.prepare("DELETE FROM credentials WHERE username = ?").bind(user).run();
    await addCredential(user, "new");
    // Cached: still the old row within the period.
    expect((await checkPassword(env, user, "old")).ok).toBe(true);
    forgetCredential(user);
    expect(await checkPassword(env, user, "old")).toEqual({ ok: false, reason: "wrong-password" });
    expect((await checkPassword(env, user, "new")).ok).toBe(true);
    await env.DB.prepare("DELETE FROM credentials WHERE username = ?").bind(user).run();
    expect(await checkPassword(env, user, "new", Date.now() + 61_000)).toEqual({ ok: false, reason: "unknown-user" });
  });
});
