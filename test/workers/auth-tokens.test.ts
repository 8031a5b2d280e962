/**
 * JSON Web Tokens as MQTT passwords (worker/security/jwt.ts) and client certificates mapped to
 * user names (worker/security/certificates.ts), inside workerd. Every key is made here with
 * jose; nothing is fetched.
 */
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import { authenticate } from "../../worker/security/authenticate";
import { certificateUser } from "../../worker/security/certificates";
import { CLOCK_TOLERANCE_SECONDS, jwtConfigured, verifyToken } from "../../worker/security/jwt";

const SECRET = "a-test-secret-of-at-least-32-bytes!!";
const secretKey = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function b64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function hs256(payload: JWTPayload, key: Uint8Array = secretKey): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: "HS256" }).sign(key);
}

describe("JWT: HS256 with JWT_SECRET", () => {
  const settings = { JWT_SECRET: SECRET };

  it("accepts a valid token and returns its claims", async () => {
    const token = await hs256({ sub: "dev-1", client_id: "c-1", exp: now() + 600, nbf: now() - 10 });
    const verdict = await verifyToken(token, settings);
    expect(verdict).toMatchObject({ ok: true, payload: { sub: "dev-1", client_id: "c-1" } });
  });

  it("refuses an expired token, and one not yet valid, beyond the clock tolerance", async () => {
    const expired = await hs256({ sub: "dev-1", exp: now() - CLOCK_TOLERANCE_SECONDS - 5 });
    expect(await verifyToken(expired, settings)).toEqual({ ok: false, reason: "token expired" });
    const early = await hs256({ sub: "dev-1", nbf: now() + CLOCK_TOLERANCE_SECONDS + 60 });
    expect(await verifyToken(early, settings)).toEqual({ ok: false, reason: "token not yet valid" });
    // Within the tolerance: accepted (a device clock a few seconds off).
    const justExpired = await hs256({ sub: "dev-1", exp: now() - 5 });
    expect((await verifyToken(justExpired, settings)).ok).toBe(true);
  });

  it("checks the audience and the issuer when they are configured", async () => {
    const strict = { ...settings, JWT_AUDIENCE: "edge-mqtt", JWT_ISSUER: "https://issuer.example" };
    const good = await hs256({ sub: "d", aud: "edge-mqtt", iss: "https://issuer.example" });
    expect((await verifyToken(good, strict)).ok).toBe(true);
    const wrongAudience = await hs256({ sub: "d", aud: "another-service", iss: "https://issuer.example" });
    expect(await verifyToken(wrongAudience, strict)).toMatchObject({ ok: false, reason: expect.stringContaining('"aud"') });
    const noAudience = await hs256({ sub: "d", iss: "https://issuer.example" });
    expect((await verifyToken(noAudience, strict)).ok).toBe(false);
    const wrongIssuer = await hs256({ sub: "d", aud: "edge-mqtt", iss: "https://evil.example" });
    expect(await verifyToken(wrongIssuer, strict)).toMatchObject({ ok: false, reason: expect.stringContaining('"iss"') });
    // Not configured: not checked.
    expect((await verifyToken(wrongAudience, settings)).ok).toBe(true);
  });

  it("refuses a tampered payload, a token signed with another secret, and a truncated signature", async () => {
    const token = await hs256({ sub: "dev-1", admin: false });
    const [header, , signature] = token.split(".");
    const forged = `${header}.${b64url(JSON.stringify({ sub: "dev-1", admin: true }))}.${signature}`;
    expect(await verifyToken(forged, settings)).toEqual({ ok: false, reason: "token signature invalid" });
    const otherSecret = await hs256({ sub: "dev-1" }, enc("another-secret-another-secret-1234"));
    expect(await verifyToken(otherSecret, settings)).toEqual({ ok: false, reason: "token signature invalid" });
    expect((await verifyToken(token.slice(0, -4), settings)).ok).toBe(false);
  });

  it('refuses alg "none" and any algorithm not configured', async () => {
    const unsigned = `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify({ sub: "root", exp: now() + 60 }))}.`;
    expect((await verifyToken(unsigned, settings)).ok).toBe(false);
    const hs512 = await new SignJWT({ sub: "d" }).setProtectedHeader({ alg: "HS512" }).sign(enc(SECRET.repeat(2)));
    expect(await verifyToken(hs512, settings)).toEqual({ ok: false, reason: "token algorithm not allowed" });
  });
});

describe("JWT: RS256 / ES256 against JWT_JWKS", () => {
  async function keySet(alg: "ES256" | "RS256", kid: string) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
    return { privateKey, jwk };
  }

  it("accepts ES256 and RS256 tokens signed by a key of the set (chosen by kid)", async () => {
    const es = await keySet("ES256", "es-1");
    const rs = await keySet("RS256", "rs-1");
    const settings = { JWT_JWKS: JSON.stringify({ keys: [es.jwk, rs.jwk] }) };
    const esToken = await new SignJWT({ sub: "dev-es" }).setProtectedHeader({ alg: "ES256", kid: "es-1" }).setExpirationTime("5m").sign(es.privateKey);
    const rsToken = await new SignJWT({ sub: "dev-rs" }).setProtectedHeader({ alg: "RS256", kid: "rs-1" }).setExpirationTime("5m").sign(rs.privateKey);
    expect(await verifyToken(esToken, settings)).toMatchObject({ ok: true, payload: { sub: "dev-es" } });
    expect(await verifyToken(rsToken, settings)).toMatchObject({ ok: true, payload: { sub: "dev-rs" } });
  });

  it("refuses a token of an unknown key, and an HS256 token when only a JWKS is configured", async () => {
    const known = await keySet("ES256", "known");
    const stranger = await keySet("ES256", "stranger");
    const settings = { JWT_JWKS: JSON.stringify({ keys: [known.jwk] }) };
    const unknownKid = await new SignJWT({ sub: "d" }).setProtectedHeader({ alg: "ES256", kid: "stranger" }).sign(stranger.privateKey);
    expect(await verifyToken(unknownKid, settings)).toEqual({ ok: false, reason: "no configured key matches the token" });
    // Signed by another key under a known kid: the signature does not verify.
    const wrongKey = await new SignJWT({ sub: "d" }).setProtectedHeader({ alg: "ES256", kid: "known" }).sign(stranger.privateKey);
    expect(await verifyToken(wrongKey, settings)).toEqual({ ok: false, reason: "token signature invalid" });
    // Algorithm confusion: the public key's JSON used as an HMAC secret.
    const confused = await hs256({ sub: "d" }, enc(JSON.stringify(known.jwk)));
    expect(await verifyToken(confused, settings)).toEqual({ ok: false, reason: "token algorithm not allowed" });
  });

  it("an unusable JWT_JWKS refuses every token, with the reason", async () => {
    expect(await verifyToken(await hs256({ sub: "d" }), { JWT_JWKS: "{not json" })).toMatchObject({ ok: false, reason: expect.stringContaining("JWT_JWKS") });
    expect(await verifyToken(await hs256({ sub: "d" }), { JWT_JWKS: '{"keys": 3}' })).toMatchObject({ ok: false, reason: expect.stringContaining("JWT_JWKS") });
    expect(jwtConfigured({})).toBe(false);
    expect(jwtConfigured({ JWT_SECRET: " " })).toBe(false);
  });
});

describe("authenticate(): a CONNECT with a token as its password", () => {
  const jwtEnv = { ...env, JWT_SECRET: SECRET, ALLOW_ANONYMOUS: "false" };

  it("takes the user name from the token, and its client identifier claim must match", async () => {
    const token = await hs256({ sub: "meter-7", client_id: "meter-7-c", exp: now() + 60, acl: { pub: ["meters/%u/#"] } });
    const ok = await authenticate(jwtEnv, { clientId: "meter-7-c", username: "ignored", password: enc(token) });
    expect(ok).toEqual({ ok: true, principal: { clientId: "meter-7-c", username: "meter-7", method: "jwt", claims: { publish: ["meters/%u/#"] } } });
    const other = await authenticate(jwtEnv, { clientId: "someone-else", password: enc(token) });
    expect(other).toMatchObject({ ok: false, refusal: "not-authorized", credentials: true });
  });

  it("refuses an expired or tampered token as bad credentials", async () => {
    const expired = await hs256({ sub: "meter-7", exp: now() - 3600 });
    expect(await authenticate(jwtEnv, { clientId: "c", password: enc(expired) })).toMatchObject({ ok: false, refusal: "bad-credentials", reason: "token expired" });
    const [h, , s] = (await hs256({ sub: "meter-7" })).split(".");
    const tampered = `${h}.${b64url(JSON.stringify({ sub: "admin", admin: true }))}.${s}`;
    expect(await authenticate(jwtEnv, { clientId: "c", password: enc(tampered) })).toMatchObject({ ok: false, refusal: "bad-credentials" });
  });

  it("anonymous: only while ALLOW_ANONYMOUS is true; an unknown user name never", async () => {
    expect(await authenticate({ ...env, ALLOW_ANONYMOUS: "false" }, { clientId: "a" })).toMatchObject({ ok: false, refusal: "not-authorized", credentials: false });
    expect(await authenticate({ ...env, ALLOW_ANONYMOUS: "true" }, { clientId: "a" })).toEqual({ ok: true, principal: { clientId: "a", method: "anonymous" } });
    expect(await authenticate({ ...env, ALLOW_ANONYMOUS: "true" }, { clientId: "a", username: "nobody-here", password: enc("x") })).toMatchObject({
      ok: false,
      refusal: "bad-credentials",
      credentials: true,
    });
    // A user name without a password: bad credentials, not anonymous.
    expect(await authenticate({ ...env, ALLOW_ANONYMOUS: "true" }, { clientId: "a", username: "nobody-here" })).toMatchObject({ ok: false, refusal: "bad-credentials" });
  });

  it("a certificate user comes first, whatever the CONNECT's user name and password", async () => {
    const result = await authenticate({ ...env, ALLOW_ANONYMOUS: "false" }, { clientId: "gw", username: "x", password: enc("y") }, { certificateUser: "gateway-2" });
    expect(result).toEqual({ ok: true, principal: { clientId: "gw", username: "gateway-2", method: "certificate" } });
  });
});

describe("client certificates (cf.tlsClientAuth)", () => {
  const FINGERPRINT = "5f1e".padEnd(64, "a");
  const users = JSON.stringify({ [FINGERPRINT.toUpperCase().replace(/(..)(?!$)/g, "$1:")]: "sensor-17", "CN=gateway-2,O=Acme": "gateway-2" });
  const cf = (auth: Record<string, string>) => ({
    tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certRevoked: "0", certFingerprintSHA256: "", certSubjectDN: "", ...auth },
  });

  it("maps a verified certificate by fingerprint (written with colons and capitals in the setting) or by subject", () => {
    expect(certificateUser(cf({ certFingerprintSHA256: FINGERPRINT }), { CLIENT_CERT_USERS: users })).toBe("sensor-17");
    expect(certificateUser(cf({ certSubjectDN: "CN=gateway-2,O=Acme" }), { CLIENT_CERT_USERS: users })).toBe("gateway-2");
    expect(certificateUser(cf({ certFingerprintSHA256: FINGERPRINT, certSubjectDN: "CN=gateway-2,O=Acme" }), { CLIENT_CERT_USERS: users })).toBe("sensor-17");
  });

  it("ignores a certificate not presented, not verified, revoked or not mapped, and a request without cf", () => {
    const settings = { CLIENT_CERT_USERS: users };
    expect(certificateUser(cf({ certPresented: "0", certVerified: "NONE", certFingerprintSHA256: FINGERPRINT }), settings)).toBeUndefined();
    expect(certificateUser(cf({ certVerified: "FAILED:self signed certificate", certFingerprintSHA256: FINGERPRINT }), settings)).toBeUndefined();
    expect(certificateUser(cf({ certRevoked: "1", certFingerprintSHA256: FINGERPRINT }), settings)).toBeUndefined();
    expect(certificateUser(cf({ certFingerprintSHA256: "b".repeat(64), certSubjectDN: "CN=other" }), settings)).toBeUndefined();
    expect(certificateUser(undefined, settings)).toBeUndefined();
    expect(certificateUser({}, settings)).toBeUndefined();
  });

  it("with CLIENT_CERT_USERS unset or malformed, no certificate maps to anyone", () => {
    const verified = cf({ certFingerprintSHA256: FINGERPRINT });
    expect(certificateUser(verified, {})).toBeUndefined();
    expect(certificateUser(verified, { CLIENT_CERT_USERS: "not json" })).toBeUndefined();
    expect(certificateUser(verified, { CLIENT_CERT_USERS: '["a"]' })).toBeUndefined();
    expect(certificateUser(verified, { CLIENT_CERT_USERS: JSON.stringify({ [FINGERPRINT]: 42 }) })).toBeUndefined();
  });
});
