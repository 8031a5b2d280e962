// HTTP API keys under the ACL rules (core/ingest/acl.ts): an ingest item is checked as a
// PUBLISH by user name `key:<key id>`, client identifier the item's device (else the key's,
// else `api-key:<key id>`), its scopes acting as a token's `acl` claim, with the real AclPolicy.
import { describe, expect, it } from "vitest";
import { apiKeyPrincipal, apiKeyUsername, checkBatch, checkDraft, type Draft, type IngestPolicy } from "../../../core/ingest";
import { AclPolicy } from "../../../core/policy/acl";
import type { AclRule } from "../../../core/policy/types";

const limits = { maxPacketSize: 1024, maxTopicLength: 64, maxTopicLevels: 8 };
const draft = (topic: string, device?: string): Draft => ({
  topic,
  payload: new TextEncoder().encode("x"),
  qos: 0,
  retain: false,
  properties: {},
  ...(device !== undefined && { device }),
});

let nextId = 1;
const rule = (r: Partial<AclRule> & Pick<AclRule, "topic" | "action" | "allow">): AclRule => ({ id: nextId++, username: null, clientId: null, ...r });

function policyWith(rules: AclRule[], allowAnonymous: boolean, keyId = "0123456789abcdef", scopes?: string[]): IngestPolicy {
  return {
    limits,
    ...(scopes && { scopes }),
    acl: { authorizer: new AclPolicy(rules, { allowAnonymous }), keyId, ...(scopes && { scopes }) },
  };
}

describe("API key principal", () => {
  it("is user name key:<id>; client identifier the device, else api-key:<id>", () => {
    expect(apiKeyUsername("ab")).toBe("key:ab");
    expect(apiKeyPrincipal("ab", "gw-1")).toEqual({ method: "api-key", username: "key:ab", clientId: "gw-1" });
    expect(apiKeyPrincipal("ab", undefined)).toEqual({ method: "api-key", username: "key:ab", clientId: "api-key:ab" });
    expect(apiKeyPrincipal("ab", "gw-1", ["a/#"])).toEqual({ method: "api-key", username: "key:ab", clientId: "gw-1", claims: { publish: ["a/#"] } });
  });
});

describe("ingest items checked against the ACL", () => {
  it("no rule, no scopes: the default (allowed while anonymous access is on, 403 acl-denied when off)", () => {
    expect(checkDraft(draft("a/b"), policyWith([], true))).toBeUndefined();
    expect(checkDraft(draft("a/b"), policyWith([], false))).toMatchObject({ status: 403, problem: "acl-denied" });
  });

  it("scopes act as a token's claim: inside them allowed where no rule denies, even with anonymous access off", () => {
    const scopes = ["sites/#"];
    expect(checkDraft(draft("sites/berlin"), policyWith([], false, undefined, scopes))).toBeUndefined();
    const deny = [rule({ username: "key:0123456789abcdef", topic: "sites/secret", action: "publish", allow: false })];
    expect(checkDraft(draft("sites/secret"), policyWith(deny, false, undefined, scopes))).toMatchObject({ status: 403, problem: "acl-denied" });
    // An allow rule does not widen a key beyond its scopes (the scope check refuses first).
    const wide = [rule({ username: "key:0123456789abcdef", topic: "#", action: "publish", allow: true })];
    expect(checkDraft(draft("other/x"), policyWith(wide, false, undefined, scopes))).toMatchObject({ status: 403, problem: "out-of-scope" });
  });

  it("a rule naming the key by key:<id> allows it, and only that key", () => {
    const rules = [rule({ username: "key:0123456789abcdef", topic: "sites/#", action: "publish", allow: true })];
    expect(checkDraft(draft("sites/berlin"), policyWith(rules, false))).toBeUndefined();
    expect(checkDraft(draft("other/x"), policyWith(rules, false))).toMatchObject({ status: 403, problem: "acl-denied" });
    expect(checkDraft(draft("sites/berlin"), policyWith(rules, false, "fedcba9876543210"))).toMatchObject({ problem: "acl-denied" });
  });

  it("a deny rule closes a topic even where anonymous access is on; subscribe rules do not govern ingest", () => {
    const rules = [
      rule({ topic: "secret/#", action: "publish", allow: false }),
      rule({ topic: "open/#", action: "subscribe", allow: false }),
    ];
    expect(checkDraft(draft("secret/x"), policyWith(rules, true))).toMatchObject({ status: 403, problem: "acl-denied" });
    expect(checkDraft(draft("open/x"), policyWith(rules, true))).toBeUndefined();
  });

  it("%c is the item's device, %u the key's user name", () => {
    const rules = [
      rule({ topic: "devices/%c/#", action: "all", allow: true }),
      rule({ topic: "keys/%u", action: "publish", allow: true }),
    ];
    const p = policyWith(rules, false);
    expect(checkDraft(draft("devices/gw-1/t", "gw-1"), p)).toBeUndefined();
    expect(checkDraft(draft("devices/gw-2/t", "gw-1"), p)).toMatchObject({ problem: "acl-denied" });
    // No device named: the client identifier is api-key:<id>.
    expect(checkDraft(draft("devices/gw-1/t"), p)).toMatchObject({ problem: "acl-denied" });
    expect(checkDraft(draft("keys/key:0123456789abcdef"), p)).toBeUndefined();
  });

  it("a rule's clientid matches the device the item names", () => {
    const rules = [rule({ clientId: "gw-1", topic: "x", action: "publish", allow: false })];
    expect(checkDraft(draft("x", "gw-1"), policyWith(rules, true))).toMatchObject({ problem: "acl-denied" });
    expect(checkDraft(draft("x", "gw-2"), policyWith(rules, true))).toBeUndefined();
  });

  it("scopes are checked first (out-of-scope), then the ACL; $ topics stay reserved-topic", () => {
    const p = policyWith([], true, undefined, ["a/#"]);
    expect(checkDraft(draft("b/x"), p)).toMatchObject({ status: 403, problem: "out-of-scope" });
    expect(checkDraft(draft("$SYS/x"), policyWith([rule({ topic: "#", action: "all", allow: true })], true))).toMatchObject({ status: 403, problem: "reserved-topic" });
  });

  it("one denied item of a batch is reported by its index", () => {
    const rules = [rule({ topic: "secret/#", action: "publish", allow: false })];
    expect(checkBatch([draft("a"), draft("secret/1"), draft("b")], policyWith(rules, true))).toEqual([
      expect.objectContaining({ index: 1, status: 403, problem: "acl-denied" }),
    ]);
  });

  it("without an acl in the policy (the admin token) nothing is checked against rules", () => {
    expect(checkDraft(draft("a/b"), { limits })).toBeUndefined();
  });
});
