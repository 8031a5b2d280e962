// CONNECT authentication decisions (core/policy/authenticate.ts): the method, the refusal
// codes (3.1.1 table 3.1, 5.0 3.2.2.2), the principal of a verified token's claims.
import { describe, expect, it } from "vitest";
import { authMethodOf, connackRefusal, looksLikeJwt, principalFromClaims } from "../../../core/policy";
import { base64UrlEncode } from "../../../core/topics";

const bytes = (s: string) => new TextEncoder().encode(s);
const part = (o: unknown) => base64UrlEncode(bytes(JSON.stringify(o)));
const jwt = (header: unknown = { alg: "HS256", typ: "JWT" }, payload: unknown = { sub: "x" }) => `${part(header)}.${part(payload)}.c2lnbmF0dXJl`;
const names = { usernameClaim: "sub", clientIdClaim: "client_id" };

describe("connackRefusal", () => {
  it("5.0: 0x86, 0x87, 0x89", () => {
    expect(connackRefusal(5, "bad-credentials")).toBe(0x86);
    expect(connackRefusal(5, "not-authorized")).toBe(0x87);
    expect(connackRefusal(5, "server-busy")).toBe(0x89);
  });
  it("3.1.1 and 3.1: return codes 4, 5, 3", () => {
    for (const v of [3, 4] as const) {
      expect(connackRefusal(v, "bad-credentials")).toBe(4);
      expect(connackRefusal(v, "not-authorized")).toBe(5);
      expect(connackRefusal(v, "server-busy")).toBe(3);
    }
  });
});

describe("looksLikeJwt", () => {
  it("three base64url parts, the first a JSON header naming its alg", () => {
    expect(looksLikeJwt(bytes(jwt()))).toBe(true);
    expect(looksLikeJwt(bytes(jwt({ alg: "ES256", kid: "k1" })))).toBe(true);
  });
  it("not a password that merely has dots, nor a header without alg, nor padding or spaces", () => {
    expect(looksLikeJwt(bytes("hunter2"))).toBe(false);
    expect(looksLikeJwt(bytes("a.b.c"))).toBe(false); // "a" is no JSON header
    expect(looksLikeJwt(bytes(`${part({ typ: "JWT" })}.${part({})}.c2ln`))).toBe(false);
    expect(looksLikeJwt(bytes(`${part({ alg: 1 })}.${part({})}.c2ln`))).toBe(false);
    expect(looksLikeJwt(bytes(`${part({ alg: "HS256" })}.${part({})}.`))).toBe(false); // unsigned
    expect(looksLikeJwt(bytes(`${part({ alg: "HS256" })}.${part({})}`))).toBe(false);
    expect(looksLikeJwt(bytes(`${jwt()} `))).toBe(false);
    expect(looksLikeJwt(bytes(`${part({ alg: "HS256" })}==.${part({})}.c2ln`))).toBe(false);
    expect(looksLikeJwt(new Uint8Array([0xff, 0xfe, 0x2e, 0x2e, 0x41]))).toBe(false);
    expect(looksLikeJwt(bytes(`${part(["alg"])}.${part({})}.c2ln`))).toBe(false);
  });
});

describe("authMethodOf", () => {
  const token = bytes(jwt());
  it("certificate > token > password > anonymous", () => {
    expect(authMethodOf({ username: "u", password: token }, { jwt: true, certificateUser: "dev" })).toBe("certificate");
    expect(authMethodOf({ username: "u", password: token }, { jwt: true })).toBe("jwt");
    expect(authMethodOf({ password: token }, { jwt: true })).toBe("jwt"); // 5.0 allows a password alone
    expect(authMethodOf({ username: "u", password: bytes("pw") }, { jwt: true })).toBe("password");
    expect(authMethodOf({}, { jwt: true })).toBe("anonymous");
  });
  it("a token when tokens are not configured is a password; a password alone is never anonymous", () => {
    expect(authMethodOf({ username: "u", password: token }, { jwt: false })).toBe("password");
    expect(authMethodOf({ password: bytes("pw") }, { jwt: true })).toBe("password");
    expect(authMethodOf({ username: "u" }, { jwt: true })).toBe("password");
  });
});

describe("principalFromClaims", () => {
  it("the user name from its claim; method jwt", () => {
    expect(principalFromClaims({ sub: "dev-1" }, "c1", names)).toEqual({ clientId: "c1", username: "dev-1", method: "jwt" });
    expect(principalFromClaims({ name: "n", sub: "s" }, "c1", { ...names, usernameClaim: "name" })).toMatchObject({ username: "n" });
  });
  it("no user name: bad credentials", () => {
    expect(principalFromClaims({}, "c1", names)).toBe("bad-credentials");
    expect(principalFromClaims({ sub: "" }, "c1", names)).toBe("bad-credentials");
    expect(principalFromClaims({ sub: 7 }, "c1", names)).toBe("bad-credentials");
  });
  it("the client identifier claim, when present, must be the CONNECT's", () => {
    expect(principalFromClaims({ sub: "d", client_id: "c1" }, "c1", names)).toMatchObject({ clientId: "c1" });
    expect(principalFromClaims({ sub: "d", client_id: "c2" }, "c1", names)).toBe("not-authorized");
    expect(principalFromClaims({ sub: "d", client_id: 1 }, "1", names)).toBe("not-authorized");
  });
  it("admin only from admin: true", () => {
    expect(principalFromClaims({ sub: "d", admin: true }, "c", names)).toMatchObject({ admin: true });
    expect(principalFromClaims({ sub: "d", admin: "true" }, "c", names)).not.toHaveProperty("admin");
  });
  it("the acl claim in EMQX's shape: pub and all restrict publishing, sub and all subscribing", () => {
    expect(principalFromClaims({ sub: "d", acl: { pub: ["t/%c/#"], sub: ["cmd/+"], all: ["shared/#"] } }, "c", names)).toMatchObject({
      claims: { publish: ["t/%c/#", "shared/#"], subscribe: ["cmd/+", "shared/#"] },
    });
    const onlyPub = principalFromClaims({ sub: "d", acl: { pub: [] } }, "c", names);
    expect(onlyPub).toMatchObject({ claims: { publish: [] } });
    expect((onlyPub as { claims: object }).claims).not.toHaveProperty("subscribe");
  });
  it("a malformed acl claim refuses the token (not authorized), never widens it", () => {
    for (const acl of [[], "t/#", { pub: "t/#" }, { pub: [1] }, { pub: ["a/#/b"] }, { read: ["a"] }, { sub: ["$share/g/a"] }, null]) {
      expect(principalFromClaims({ sub: "d", acl }, "c", names), JSON.stringify(acl)).toBe("not-authorized");
    }
  });
});
